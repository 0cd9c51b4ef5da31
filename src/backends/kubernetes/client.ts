import { EventEmitter } from 'node:events';
import type { Pool } from 'undici';
import { systemClock, type Clock, type Timer } from '../../core/clock.js';
import { AbortedError, BackendUnavailableError, DeadlineExceededError, LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { errorText } from '../../core/retry.js';
import { explicitConfig, inClusterConfig, isInCluster, kubeconfigConfig, type ExplicitConnectionOptions, type KubeConnectionConfig } from './config.js';
import { serviceResolver, type ApiEndpointResolver, type ResolverContext } from './resolver.js';
import { retryAfterMs, statusError } from './status.js';
import { createPool, sendOnce, type OnceResult, type ResponseBody } from './transport.js';
import { parseWatchStream, type WatchEvent } from './watch-stream.js';

const log = logger('k8s:client');

export interface KubeRequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** '/apis/coordination.k8s.io/v1/namespaces/ns/leases/name' */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON-serialised. */
  body?: unknown;
  /** PATCH: 'application/merge-patch+json' (default) | 'application/strategic-merge-patch+json' | 'application/json-patch+json'. */
  contentType?: string;
  /** Non-2xx statuses returned instead of thrown, e.g. [404, 409]. */
  accept?: readonly number[];
  signal?: AbortSignal;
  /** Deadline for the whole call including rotation between API endpoints. Default `requestTimeoutMs`. */
  timeoutMs?: number;
}

export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
}

export interface KubeWatchOptions {
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal: AbortSignal;
  /** End the stream with `DeadlineExceededError` when nothing (not even a bookmark) arrives for this long. Default: no idle limit. */
  idleTimeoutMs?: number;
}

export type { WatchEvent } from './watch-stream.js';

export interface KubeClientOptions extends Partial<ExplicitConnectionOptions> {
  /** Fully resolved connection settings (e.g. from `kubeconfigConfig()`); wins over the fields above. */
  connection?: KubeConnectionConfig;
  /** Which addresses to dial. Default `serviceResolver()`; `endpointsResolver()` bypasses kube-proxy. */
  resolver?: ApiEndpointResolver;
  /** Default deadline of one `request()`, ms. Default 10 000. */
  requestTimeoutMs?: number;
  /** Connections per API endpoint. Default 4. */
  connections?: number;
  userAgent?: string;
  /** Clock for token re-reads and resolver refreshes (request deadlines are real time). */
  clock?: Clock;
}

export interface KubeSwitchEvent {
  from?: URL;
  to: URL;
  reason: string;
}

export interface KubeClientStats {
  requests: number;
  /** Tries that failed at the transport level or with 5xx (each rotates). */
  failedTries: number;
  /** Times a request succeeded on a different endpoint than the previous success (readable by a metrics exporter). */
  switches: number;
  /** The endpoint of the last success. */
  endpoint?: string;
}

/** The structural slice KubernetesLock depends on. */
export type KubeApi = Pick<KubeClient, 'request' | 'watch' | 'namespace'>;

function resolveConnection(options: KubeClientOptions): KubeConnectionConfig {
  if (options.connection) return options.connection;
  if (options.server !== undefined) return explicitConfig({ ...options, server: options.server });
  const clockOpt = options.clock ? { clock: options.clock } : {};
  return isInCluster() ? inClusterConfig(clockOpt) : kubeconfigConfig(clockOpt);
}

/**
 * A small Kubernetes API client on undici: one connection pool per API endpoint, TLS always verified
 * against `servername` (also when dialing a bare API server IP), bearer tokens re-read on 401 (then
 * the request is retried once), `Retry-After` honoured for 429/503 within the deadline, rotation
 * between endpoints by an `ApiEndpointResolver`, and Status bodies turned into typed errors.
 *
 * Emits `warning` (LeaderLockError) and `switch` ({ from?, to, reason }). Tokens never appear in
 * logs or errors.
 */
export class KubeClient extends EventEmitter {
  readonly namespace: string;
  /** The configured server (the service address in a cluster). */
  readonly server: URL;
  readonly servername: string;
  readonly #conn: KubeConnectionConfig;
  readonly #resolver: ApiEndpointResolver;
  readonly #timeoutMs: number;
  readonly #connections: number;
  readonly #userAgent: string;
  readonly #clock: Clock;
  readonly #pools = new Map<string, Pool>();
  readonly #auth: { token: () => Promise<string | undefined>; userAgent: string };
  #lastGood: URL | undefined;
  #lastFailure: string | undefined;
  #closed = false;
  #requests = 0;
  #failedTries = 0;
  #switches = 0;

  constructor(options: KubeClientOptions = {}) {
    super();
    this.#conn = resolveConnection(options);
    this.namespace = options.namespace ?? this.#conn.namespace;
    this.server = this.#conn.server;
    this.servername = this.#conn.servername;
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#connections = options.connections ?? 4;
    this.#userAgent = options.userAgent ?? 'leaderlock';
    this.#clock = options.clock ?? systemClock;
    this.#resolver = options.resolver ?? serviceResolver();
    this.#auth = { token: () => this.#conn.tokenSource.get(), userAgent: this.#userAgent };
    this.#resolver.attach?.(this.#resolverContext());
  }

  /** A client from a kubeconfig file (default `$KUBECONFIG` or `~/.kube/config`) and context (default current). */
  static async fromKubeconfig(path?: string, context?: string, options: Omit<KubeClientOptions, 'connection' | 'server'> = {}): Promise<KubeClient> {
    const connection = kubeconfigConfig({ ...(path ? { path } : {}), ...(context ? { context } : {}), ...(options.clock ? { clock: options.clock } : {}) });
    return new KubeClient({ ...options, connection });
  }

  get stats(): KubeClientStats {
    return {
      requests: this.#requests,
      failedTries: this.#failedTries,
      switches: this.#switches,
      ...(this.#lastGood ? { endpoint: this.#lastGood.href } : {}),
    };
  }

  /**
   * One API call within `timeoutMs`: tries the resolver's candidates in order, each try getting its
   * share of the time left; a refused/reset/TLS/timeout/5xx try rotates to the next. 2xx and the
   * `accept`ed statuses resolve; 401 (after one token re-read) and 403 throw `ForbiddenError`; every
   * endpoint failing throws `BackendUnavailableError` (`DeadlineExceededError` when time ran out);
   * other statuses throw `LeaderLockError` with `status` and `reason`. A write that timed out may
   * have been applied: re-read before deciding.
   */
  async request<T = unknown>(opts: KubeRequestOptions): Promise<KubeResponse<T>> {
    const res = await this.#call(opts, undefined, false);
    return { status: res.status, body: res.body as T };
  }

  /**
   * Watches `path` (`watch=true` is added). Connecting rotates like `request()`; once streaming, the
   * events are yielded as they arrive, `ERROR` events included (e.g. 410 Expired: re-list). Ends when
   * the server ends the stream or `signal` aborts.
   */
  async *watch(opts: KubeWatchOptions): AsyncIterable<WatchEvent> {
    const res = await this.#call(
      { method: 'GET', path: opts.path, query: { ...opts.query, watch: 'true' }, signal: opts.signal },
      undefined,
      true,
      opts.idleTimeoutMs,
    );
    const body = res.stream!;
    try {
      yield* parseWatchStream(body);
    } catch (err) {
      if (opts.signal.aborted) return;
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_BODY_TIMEOUT') {
        throw new DeadlineExceededError(`watch ${opts.path}: nothing received for ${opts.idleTimeoutMs} ms`, { backend: 'kubernetes', cause: err });
      }
      throw new BackendUnavailableError(`watch ${opts.path} broke: ${errorText(err)}`, { backend: 'kubernetes', cause: err });
    } finally {
      body.destroy();
    }
  }

  /** Closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#resolver.close?.();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }

  #resolverContext(): ResolverContext {
    return {
      serviceUrl: this.#conn.server,
      clock: this.#clock,
      read: async (urls, path, query, timeoutMs) => {
        const r = await this.#call({ method: 'GET', path, query, accept: [403, 404], timeoutMs }, urls, false);
        return { status: r.status, body: r.body };
      },
      warn: (err) => this.#warn(err),
    };
  }

  #warn(err: LeaderLockError): void {
    log('warning: %s', err.message);
    if (this.listenerCount('warning') > 0) this.emit('warning', err);
  }

  #pool(url: URL): Pool {
    if (this.#closed) throw new AbortedError('KubeClient is closed', { backend: 'kubernetes' });
    let pool = this.#pools.get(url.origin);
    if (!pool) {
      pool = createPool(url, this.#conn, this.#connections);
      this.#pools.set(url.origin, pool);
    }
    return pool;
  }

  /** Closes pools of endpoints the resolver no longer offers (API servers replaced over time). */
  #prunePools(urls: readonly URL[]): void {
    if (this.#pools.size <= urls.length) return;
    const keep = new Set(urls.map((u) => u.origin));
    for (const origin of [...this.#pools.keys()]) if (!keep.has(origin)) this.#dropPool(new URL(origin));
  }

  #dropPool(url: URL): void {
    const pool = this.#pools.get(url.origin);
    if (!pool) return;
    this.#pools.delete(url.origin);
    // A pool whose request timed out may hold a connection to a blackholed server: never reuse it.
    pool.destroy().catch(() => {});
  }

  #noteSuccess(url: URL): void {
    const from = this.#lastGood;
    if (from && from.href === url.href) return;
    this.#lastGood = url;
    if (from) this.#switches++;
    const reason = from ? (this.#lastFailure ?? 'resolver changed the order') : 'first connection';
    log('using %s (%s)', url.host, reason);
    this.emit('switch', { ...(from ? { from } : {}), to: url, reason } satisfies KubeSwitchEvent);
  }

  async #call(
    opts: KubeRequestOptions,
    fixedUrls: readonly URL[] | undefined,
    stream: boolean,
    idleTimeoutMs?: number,
  ): Promise<{ status: number; body: unknown; stream?: ResponseBody }> {
    if (this.#closed) throw new AbortedError('KubeClient is closed', { backend: 'kubernetes' });
    this.#requests++;
    const what = `${opts.method} ${opts.path}`;
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    // Request deadlines are real time (real servers), whatever clock the caller injected.
    const start = systemClock.now();
    const remaining = (): number => timeoutMs - (systemClock.now() - start);
    let tokenRetried = false;
    let throttled = 0;
    let lastErr: LeaderLockError | undefined;
    for (let round = 0; round < 4 && remaining() > 0; round++) {
      if (round > 0) await this.#sleep(Math.min(25 * 2 ** round, remaining()), opts.signal);
      // The first list of API servers may take the resolver its own refresh timeout (two reads):
      // it must not outlast this request's deadline.
      const urls = fixedUrls ?? (await this.#within(this.#resolver.candidates(), `${what}: the list of API servers`, timeoutMs, remaining(), opts.signal));
      if (!fixedUrls) this.#prunePools(urls);
      for (let i = 0; i < urls.length; i++) {
        const left = remaining();
        if (left <= 0) break;
        if (opts.signal?.aborted) throw new AbortedError(`${what} aborted`, { backend: 'kubernetes', cause: opts.signal.reason });
        const url = urls[i]!;
        const share = left / (urls.length - i);
        // The token (an exec plugin may run up to 30 s, a token file read may hang) is fetched within
        // the request's deadline, before the try: a slow token is not the endpoint's fault.
        const token = await this.#within(this.#auth.token(), `${what}: the credential (token file or exec plugin)`, timeoutMs, left, opts.signal);
        let res: OnceResult;
        try {
          res = await sendOnce(this.#pool(url), url, opts, share, stream, idleTimeoutMs, { token: () => Promise.resolve(token), userAgent: this.#auth.userAgent });
        } catch (err) {
          if (opts.signal?.aborted) throw new AbortedError(`${what} aborted`, { backend: 'kubernetes', cause: opts.signal.reason });
          if (err instanceof LeaderLockError && !(err instanceof BackendUnavailableError)) throw err;
          this.#failedTries++;
          lastErr = err as BackendUnavailableError;
          this.#lastFailure = `${url.host}: ${errorText(err)}`;
          if (err instanceof DeadlineExceededError) this.#dropPool(url);
          this.#resolver.report(url, false, err);
          continue;
        }
        const { status } = res;
        if (status === 401 && !tokenRetried) {
          // The projected token may have been rotated under us: re-read it and retry once.
          tokenRetried = true;
          this.#conn.tokenSource.invalidate();
          res.stream?.destroy();
          i--;
          continue;
        }
        if (status === 429 || status >= 500) {
          res.stream?.destroy();
          const err = statusError(`${what} via ${url.host}`, status, res.body) as BackendUnavailableError;
          lastErr = err;
          const wait = retryAfterMs(res.headers['retry-after'], res.body, this.#clock.date().getTime());
          if (status === 429 || (status === 503 && wait !== undefined)) {
            // Overloaded, not broken: wait as asked if it fits the deadline, then retry (429: the
            // same endpoint, at most 5 times; a Retry-After of 0 still waits 50 ms).
            const ms = Math.max(50, wait ?? 1000);
            if (ms >= remaining() || (status === 429 && ++throttled > 5)) throw err;
            await this.#sleep(ms, opts.signal);
            if (status === 429) i--;
            continue;
          }
          this.#failedTries++;
          this.#lastFailure = `${url.host}: ${status}`;
          this.#resolver.report(url, false, err);
          continue;
        }
        this.#resolver.report(url, true);
        // The resolver's own reads (fixed URLs: the service address it bootstraps from) are not the
        // endpoint our requests use: counting them made a healthy client report a switch at start-up.
        if (!fixedUrls) this.#noteSuccess(url);
        if ((status >= 200 && status < 300) || opts.accept?.includes(status)) {
          return { status, body: res.body, ...(res.stream ? { stream: res.stream } : {}) };
        }
        res.stream?.destroy();
        throw statusError(what, status, res.body);
      }
      if (fixedUrls) break;
    }
    if (opts.signal?.aborted) throw new AbortedError(`${what} aborted`, { backend: 'kubernetes', cause: opts.signal.reason });
    if (remaining() <= 0) {
      throw new DeadlineExceededError(`${what} did not complete within ${timeoutMs} ms${lastErr ? ` (last: ${lastErr.message})` : ''}`, {
        backend: 'kubernetes',
        cause: lastErr,
        ...(lastErr?.status ? { status: lastErr.status } : {}),
      });
    }
    throw lastErr ?? new BackendUnavailableError(`${what}: no API endpoint to try`, { backend: 'kubernetes' });
  }

  /**
   * `work` within `leftMs` (real time) of the request's deadline: `DeadlineExceededError` when time
   * runs out first, `AbortedError` when `signal` aborts. `work` itself keeps running (a token plugin
   * shared with later requests); its late failure is swallowed here.
   */
  async #within<T>(work: Promise<T>, stage: string, timeoutMs: number, leftMs: number, signal: AbortSignal | undefined): Promise<T> {
    work.catch(() => undefined);
    let timer: Timer | undefined;
    let onAbort: (() => void) | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = systemClock.setTimer(
        () => reject(new DeadlineExceededError(`${stage} was not ready within the request's deadline of ${timeoutMs} ms`, { backend: 'kubernetes' })),
        Math.max(0, leftMs),
        { unref: true },
      );
      onAbort = () => reject(new AbortedError(`${stage}: aborted`, { backend: 'kubernetes', cause: signal?.reason }));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    bound.catch(() => undefined);
    try {
      return await Promise.race([work, bound]);
    } finally {
      timer?.cancel();
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await systemClock.sleep(Math.max(0, ms), signal);
    } catch {
      throw new AbortedError('request aborted', { backend: 'kubernetes', cause: signal?.reason });
    }
  }

}
