import type { Clock } from '../../core/clock.js';
import { Problems, checkDrift, checkTtl, checkDurations } from '../../core/options.js';
import type { EtcdRpc } from './members.js';
import { patroniKey } from './wire.js';

/** PEM contents (not file paths). */
export type Pem = string | Buffer;

export interface EtcdTlsOptions {
  /** CA bundle to verify the members' certificates; default: the system roots. Verification is never turned off. */
  ca?: Pem;
  /** Client certificate and key, for etcd's `--client-cert-auth`. Both or neither. */
  cert?: Pem;
  key?: Pem;
}

/** Connection and lease options; shared by `EtcdSession` and `EtcdLock` (when it creates its own session). */
export interface EtcdSessionOptions {
  /** Member URLs, e.g. `['http://127.0.0.1:2379']` (the default). All `http:` or all `https:`. We stick to one and rotate on failure. */
  endpoints?: string | readonly string[];
  /** Use this client instead of connecting (any object with the `EtcdRpc` slice, e.g. an `Etcd3`). No member rotation then. */
  client?: EtcdRpc;
  tls?: EtcdTlsOptions;
  username?: string;
  password?: string;
  /** Lease TTL in ms, default 15000; etcd gets whole seconds, rounded up, and may raise it to its minimum. */
  ttlMs?: number;
  /** Deadline of one logical etcd call, including rotation between members. Default ttlMs / 5, within [500, 5000]. */
  requestTimeoutMs?: number;
  /** Monotonic clock for keep-alive send times (validUntil). Default the real clock. */
  clock?: Clock;
}

export interface ResolvedSessionOptions {
  endpoints: readonly string[];
  client: EtcdRpc | undefined;
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
  auth: { username: string; password: string } | undefined;
  ttlMs: number;
  requestTimeoutMs: number;
  clock: Clock | undefined;
}

/** `endpoints` as a list of strings; a wrong type is a problem, never a default (null is not "unset"). */
function resolveEndpoints(o: EtcdSessionOptions, p: Problems): string[] {
  const e: unknown = o.endpoints;
  if (e === undefined) return o.client ? [] : ['http://127.0.0.1:2379'];
  if (typeof e === 'string') return [e];
  if (Array.isArray(e) && e.every((x) => typeof x === 'string')) return [...(e as string[])];
  p.add(`endpoints must be a URL string or an array of URL strings (e.g. ['http://127.0.0.1:2379']), got ${e === null ? 'null' : Array.isArray(e) ? 'an array with a non-string' : `${typeof e} ${String(e)}`}`);
  return [];
}

/**
 * Longest leader key we accept, in UTF-8 bytes. etcd itself takes keys up to its request limit
 * (1.5 MiB), but every watcher and every txn carries the key, and `-successor` is appended: a key
 * this long is a mistake, not a name.
 */
export const MAX_KEY_BYTES = 1536;

const toBuffer = (p: Pem | undefined): Buffer | undefined => (p === undefined ? undefined : Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8'));

/** Checks the connection options; throws a `ConfigError` listing every problem unless `problems` collects them for the caller. */
export function resolveSessionOptions(o: EtcdSessionOptions, problems?: Problems): ResolvedSessionOptions {
  const p = problems ?? new Problems();
  checkDurations(p, o);
  const ttlMs = checkTtl(p, o.ttlMs, { minMs: 1000 });
  const endpoints = resolveEndpoints(o, p);
  if (o.client && o.endpoints !== undefined) p.add('give either client or endpoints, not both');
  if (!o.client) p.check(endpoints.length > 0, 'endpoints must list at least one etcd member URL');
  const schemes = new Set<string>();
  for (const e of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(e);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.port || (url.pathname !== '/' && url.pathname !== '')) {
      p.add(`endpoint ${JSON.stringify(e)} must be a URL like http://host:2379 or https://host:2379 (scheme, host and port, no path)`);
      continue;
    }
    // new URL() accepts these, and gRPC would dial port 0 or silently drop the rest.
    if (Number(url.port) < 1 || Number(url.port) > 65535) p.add(`endpoint ${JSON.stringify(e)}: port must be 1–65535, got ${url.port}`);
    if (url.search || url.hash || e.includes('?') || e.includes('#')) p.add(`endpoint ${JSON.stringify(e)} must not have a query string or fragment`);
    if (url.username || url.password) p.add(`endpoint ${JSON.stringify(url.host)} must not carry credentials; use username/password`);
    schemes.add(url.protocol);
  }
  if (schemes.size > 1) p.add('endpoints must be all http: or all https:, not a mix');
  if (o.tls && schemes.has('http:')) p.add('tls is set but the endpoints use http:; use https:// URLs');
  if (o.tls && (o.tls.cert === undefined) !== (o.tls.key === undefined)) p.add('tls.cert and tls.key must be given together');
  if ((o.username === undefined) !== (o.password === undefined)) p.add('username and password must be given together');
  if (o.username !== undefined && (typeof o.username !== 'string' || o.username === '')) p.add('username must be a non-empty string');
  // ttl/5 (as the memory and Kubernetes locks): retryPeriod (2/15 ttl) + two attempts fit in the renew deadline (2/3 ttl).
  let requestTimeoutMs = Math.min(5000, Math.max(500, Math.round(ttlMs / 5)));
  if (o.requestTimeoutMs !== undefined) {
    if (p.check(typeof o.requestTimeoutMs === 'number' && Number.isFinite(o.requestTimeoutMs) && o.requestTimeoutMs > 0, `requestTimeoutMs must be a positive number of milliseconds, got ${String(o.requestTimeoutMs)}`)) {
      p.check(o.requestTimeoutMs < ttlMs, `requestTimeoutMs (${o.requestTimeoutMs}) must be less than ttlMs (${ttlMs})`);
      requestTimeoutMs = o.requestTimeoutMs;
    }
  }
  if (!problems) p.throwIfAny('etcd');
  return {
    endpoints,
    client: o.client,
    tls: o.tls ? { ca: toBuffer(o.tls.ca), cert: toBuffer(o.tls.cert), key: toBuffer(o.tls.key) } : undefined,
    auth: o.username !== undefined && o.password !== undefined ? { username: o.username, password: o.password } : undefined,
    ttlMs,
    requestTimeoutMs,
    clock: o.clock,
  };
}

export interface EtcdLockKeyOptions {
  /** The leader key. Give `key` or `scope`. */
  key?: string;
  /** Patroni layout: the key is `<prefix>/<scope>/leader`. */
  scope?: string;
  /** Prefix for the Patroni layout; default '/service'. */
  prefix?: string;
  /** Clock-rate tolerance applied to validUntil; default 0.01. */
  drift?: number;
}

/** Validates the key options; returns the key and drift. Problems are collected into `p`. */
export function resolveKey(o: EtcdLockKeyOptions, p: Problems): { key: string; drift: number } {
  const drift = checkDrift(p, o.drift);
  let key = '';
  if (o.key !== undefined && o.scope !== undefined) p.add('give either key or scope, not both');
  else if (o.key !== undefined) key = o.key;
  else if (o.scope !== undefined) {
    if (p.check(typeof o.scope === 'string' && o.scope.length > 0 && !o.scope.includes('/'), `scope must be a non-empty name without '/', got ${JSON.stringify(o.scope)}`)) {
      key = patroniKey(o.scope, o.prefix ?? '/service');
    }
  } else p.add("key or scope is required (e.g. key: '/service/demo/leader' or scope: 'demo')");
  if (o.prefix !== undefined && o.scope === undefined) p.add('prefix applies only with scope');
  if (o.key !== undefined) {
    if (typeof key !== 'string' || key.length === 0) p.add('key must be a non-empty string');
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u001f\u007f]/.test(key)) p.add('key must not contain control characters');
    else if (key.endsWith('/')) p.add(`key must not end with '/', got ${JSON.stringify(key)}`);
  }
  if (typeof key === 'string' && Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    p.add(`key must be at most ${MAX_KEY_BYTES} bytes (UTF-8), got ${Buffer.byteLength(key, 'utf8')}${o.scope !== undefined ? ' (from scope and prefix)' : ''}`);
  }
  return { key, drift };
}

