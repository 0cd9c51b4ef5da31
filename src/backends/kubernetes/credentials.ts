import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { systemClock, type Clock } from '../../core/clock.js';
import { ForbiddenError, LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';

const log = logger('k8s:credentials');

/**
 * Where the bearer token comes from. `get()` may return a cached token; `invalidate()` makes the next
 * `get()` fetch a fresh one (called on a 401). Tokens are never logged and never put into errors.
 */
export interface TokenSource {
  get(): Promise<string | undefined>;
  invalidate(): void;
}

export const TOKEN_REREAD_MS = 60_000;

/**
 * A bearer token goes into an HTTP header: a newline (or any control character) would split the
 * header or be refused by undici far from the option that caused it. Reported as a construction
 * problem, never with the token's text.
 */
export function checkToken(p: { check(ok: boolean, problem: string): boolean }, token: unknown, name = 'token'): void {
  if (token === undefined) return;
  if (!p.check(typeof token === 'string' && token.length > 0, `${name} must be a non-empty string`)) return;
  // eslint-disable-next-line no-control-regex
  p.check(!/[\u0000-\u001f\u007f\u0085\u2028\u2029]/.test(token as string), `${name} must not contain a newline or other control characters (a trailing newline from a file? trim it)`);
}

/** A fixed token (explicit option or a kubeconfig `token`). */
export function staticTokenSource(token: string | undefined): TokenSource {
  return { get: async () => token, invalidate: () => {} };
}

/**
 * A token file (the projected service-account token, or kubeconfig `tokenFile`). Kubelet rotates the
 * projected token in place, so it is re-read every `rereadMs` (60 s, as client-go) and after a 401.
 */
export function fileTokenSource(path: string, options: { clock?: Clock; rereadMs?: number } = {}): TokenSource {
  const clock = options.clock ?? systemClock;
  const rereadMs = options.rereadMs ?? TOKEN_REREAD_MS;
  let cached: string | undefined;
  let readAt = -Infinity;
  return {
    async get() {
      if (cached === undefined || clock.now() - readAt >= rereadMs) {
        try {
          cached = (await readFile(path, 'utf8')).trim();
          readAt = clock.now();
        } catch (err) {
          // Keep serving the last token we had: a transient read error must not fail requests.
          if (cached === undefined) {
            throw new LeaderLockError(`cannot read the token file ${path}: ${(err as Error).message}`, { backend: 'kubernetes', cause: err });
          }
          log('token file %s unreadable, keeping the previous token: %s', path, (err as Error).message);
        }
      }
      return cached;
    },
    invalidate() {
      readAt = -Infinity;
    },
  };
}

/** The `exec` stanza of a kubeconfig user (client.authentication.k8s.io). */
export interface ExecCredentialConfig {
  apiVersion?: string;
  command: string;
  args?: readonly string[];
  env?: readonly { name: string; value: string }[] | null;
  /** Working directory for a relative command (the kubeconfig's directory). */
  cwd?: string;
}

/**
 * A kubeconfig `exec` credential plugin. The plugin's token is cached until its
 * `expirationTimestamp` (minus a 10 s margin, so a request never leaves with a token about to expire)
 * and re-fetched after a 401. Plugins that return client certificates are not supported (documented).
 */
export function execTokenSource(exec: ExecCredentialConfig, options: { clock?: Clock; timeoutMs?: number } = {}): TokenSource {
  const clock = options.clock ?? systemClock;
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  let cached: { token: string; expiresAt: number } | undefined;
  let running: Promise<string> | undefined;

  const run = async (): Promise<string> => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of exec.env ?? []) env[e.name] = e.value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } });
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(exec.command, [...(exec.args ?? [])], { env, cwd: exec.cwd, timeout: options.timeoutMs ?? 30_000, maxBuffer: 1 << 20 }, (err, out) => {
        // The plugin's stderr may contain secrets; we report only the exit status.
        if (err) reject(new ForbiddenError(`exec credential plugin ${exec.command} failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { backend: 'kubernetes' }));
        else resolve(out);
      });
    });
    let cred: { status?: { token?: unknown; expirationTimestamp?: unknown } };
    try {
      cred = JSON.parse(stdout) as typeof cred;
    } catch {
      throw new ForbiddenError(`exec credential plugin ${exec.command} printed something that is not an ExecCredential`, { backend: 'kubernetes' });
    }
    const token = cred.status?.token;
    if (typeof token !== 'string' || token === '') {
      throw new ForbiddenError(`exec credential plugin ${exec.command} returned no status.token (client certificates from plugins are not supported)`, { backend: 'kubernetes' });
    }
    const exp = typeof cred.status?.expirationTimestamp === 'string' ? Date.parse(cred.status.expirationTimestamp) : NaN;
    // Convert the wall-clock expiry into our monotonic clock once, at receipt.
    const lifetime = Number.isFinite(exp) ? exp - clock.date().getTime() - 10_000 : Infinity;
    cached = { token, expiresAt: clock.now() + Math.max(0, lifetime) };
    log('exec plugin %s returned a token valid for %s ms', exec.command, Number.isFinite(lifetime) ? Math.round(lifetime) : 'ever');
    return token;
  };

  return {
    async get() {
      if (cached && clock.now() < cached.expiresAt) return cached.token;
      running ??= run().finally(() => {
        running = undefined;
      });
      return running;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
