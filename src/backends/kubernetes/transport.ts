import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Pool } from 'undici';
import { systemClock } from '../../core/clock.js';
import { BackendUnavailableError, DeadlineExceededError, LeaderLockError } from '../../core/errors.js';
import { errorText } from '../../core/retry.js';
import type { KubeConnectionConfig } from './config.js';

/** What one try sends (a subset of `KubeRequestOptions`). */
export interface TryRequest {
  method: string;
  path: string;
  query?: Query | undefined;
  body?: unknown;
  contentType?: string | undefined;
  signal?: AbortSignal | undefined;
}

export type ResponseBody = import('undici').Dispatcher.ResponseData['body'];
export interface OnceResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  stream: ResponseBody | undefined;
}

export type Query = Record<string, string | number | boolean | undefined>;

export function queryString(query: Query | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.append(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function parseBody(text: string, contentType: string | string[] | undefined): unknown {
  const ct = String(contentType ?? '');
  if (text === '') return undefined;
  if (ct.includes('json') || text.startsWith('{') || text.startsWith('[')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/**
 * A connection pool to one API endpoint. TLS is verified against `conn.servername` whatever address
 * is dialed (a bare API server IP included); `rejectUnauthorized` is never turned off.
 */
export function createPool(url: URL, conn: KubeConnectionConfig, connections: number): Pool {
  const expected = conn.servername;
  return new Pool(url.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: {
      rejectUnauthorized: true,
      // SNI only carries DNS names; an IP servername is still checked below.
      ...(isIP(expected) ? {} : { servername: expected }),
      // Verify against the service name whatever address we dialed (a bare API server IP).
      checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(expected, cert),
      ...(conn.ca ? { ca: conn.ca } : {}),
      ...(conn.cert ? { cert: conn.cert } : {}),
      ...(conn.key ? { key: conn.key } : {}),
    },
  });
}


/**
 * One try against one endpoint, bounded by `tryMs` (for a stream: until the headers arrive).
 * Transport failures become `BackendUnavailableError`, the try's deadline `DeadlineExceededError`.
 */
export async function sendOnce(pool: Pool, url: URL, opts: TryRequest, tryMs: number, stream: boolean, idleTimeoutMs: number | undefined, auth: { token: () => Promise<string | undefined>; userAgent: string }): Promise<OnceResult> {
  const what = `${opts.method} ${opts.path} via ${url.host}`;
  const ac = new AbortController();
  let timedOut = false;
  // The try's deadline is real time: it bounds real-server I/O.
  const timer = systemClock.setTimer(() => {
    timedOut = true;
    ac.abort(new DeadlineExceededError(`${what}: no answer within ${Math.round(tryMs)} ms`, { backend: 'kubernetes' }));
  }, Math.max(1, tryMs));
  const onAbort = (): void => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const cleanup = (): void => {
    timer.cancel();
    if (!stream) opts.signal?.removeEventListener('abort', onAbort);
  };
  try {
    const token = await auth.token();
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': auth.userAgent };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? (opts.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json');
    }
    // undici may settle an aborted request only when its connect attempt ends (a blackholed
    // TLS handshake: its connect timeout), so the try's own deadline is raced explicitly.
    const aborted = new Promise<never>((_, reject) => {
      const fail = (): void => reject(ac.signal.reason);
      if (ac.signal.aborted) fail();
      else ac.signal.addEventListener('abort', fail, { once: true });
    });
    aborted.catch(() => {});
    const pending = pool.request({
      path: opts.path + queryString(opts.query),
      method: opts.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: ac.signal,
      ...(stream ? { bodyTimeout: idleTimeoutMs ?? 0 } : {}),
    });
    pending.catch(() => {});
    const res = await Promise.race([pending, aborted]);
    if (stream && res.statusCode === 200) {
      timer.cancel();
      res.body.once('close', () => opts.signal?.removeEventListener('abort', onAbort));
      return { status: res.statusCode, headers: res.headers, body: undefined as unknown, stream: res.body };
    }
    const text = await Promise.race([res.body.text(), aborted]);
    return { status: res.statusCode, headers: res.headers, body: parseBody(text, res.headers['content-type']), stream: undefined };
  } catch (err) {
    if (timedOut) throw new DeadlineExceededError(`${what}: no answer within ${Math.round(tryMs)} ms`, { backend: 'kubernetes', cause: err });
    if (err instanceof LeaderLockError) throw err;
    throw new BackendUnavailableError(`${what}: ${errorText(err)}`, { backend: 'kubernetes', cause: err });
  } finally {
    cleanup();
  }
}
