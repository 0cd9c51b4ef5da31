import { systemClock, type Clock } from '../../core/clock.js';
import { Problems, checkDrift, checkTtl, checkDurations } from '../../core/options.js';
import { ConsulClient, type ConsulApi } from './client.js';
import { resolveConnection, type ConsulConnectionOptions } from './connection.js';

export interface ConsulLockOptions extends ConsulConnectionOptions {
  /**
   * A client to share: locks on one client share one session (one per process, as Patroni does).
   * Default: a client of this lock's own, closed by `close()`.
   */
  client?: ConsulApi & { close?(): void };
  /** KV key of the lock. Default 'service/leaderlock/leader' (Patroni layout: `service/<scope>/leader`). A leading '/' is dropped, as Patroni does. */
  key?: string;
  /** Lease duration, ms. Default 15000. The session TTL is ceil(ttlMs/1000) s and must be 10–86400 s. */
  ttlMs?: number;
  /**
   * Consul lock-delay after the session is invalidated, ms (whole seconds are sent). Default 0, as
   * Patroni: our holders stop by `validUntil`, before Consul can invalidate the session, so the delay
   * only lengthens crash failover (2 × ttl + lock-delay). Raise it when holders may act after their
   * term (no fencing, long pauses). Consul allows at most 60 s; its own default is 15 s.
   */
  lockDelayMs?: number;
  /** Node health checks bound to the session. Default [] (no serfHealth, which could end it before its TTL). Non-empty needs lockDelayMs ≥ ttlMs. */
  sessionChecks?: readonly string[];
  /** Session name shown in Consul. Default 'leaderlock'. */
  sessionName?: string;
  /** Clock for Term bookkeeping and watch back-off. Default the system clock. */
  clock?: Clock;
  /** Clock-rate tolerance applied to validUntil. Default 0.01. */
  drift?: number;
  /** Longest wait of one blocking query in `watch`, ms (rounded up to whole seconds). Default 60000. */
  watchWaitMs?: number;
}

export interface ResolvedConsulLockOptions {
  key: string;
  successorKey: string;
  /** Leader metadata, `<key>-meta`, held by the holder's session. */
  metaKey: string;
  /** `service/<scope>/failover` on a Patroni layout (the key ends in '/leader'). */
  failoverKey: string | undefined;
  ttlMs: number;
  sessionTtlS: number;
  lockDelayMs: number;
  sessionChecks: readonly string[];
  sessionName: string;
  clock: Clock;
  drift: number;
  watchWaitMs: number;
  requestTimeoutMs: number;
}

/** Longest key we accept, in UTF-8 bytes (as the etcd backend). */
export const MAX_KEY_BYTES = 1536;

export const SESSION_TTL_MIN_S = 10;
export const SESSION_TTL_MAX_S = 86_400;

/** Checks every option at once (one `ConfigError` listing every broken rule); never mutates `o`. */
export function resolveConsulLockOptions(o: ConsulLockOptions): { options: Readonly<ResolvedConsulLockOptions>; client: ConsulApi & { close?(): void }; ownClient: boolean } {
  const p = new Problems();
  checkDurations(p, o);
  const conn = o.client ? undefined : resolveConnection(p, o);
  const rawKey = o.key ?? 'service/leaderlock/leader';
  let key = '';
  if (p.check(typeof rawKey === 'string', `key must be a string, got ${typeof rawKey}`)) {
    key = rawKey.replace(/^\/+/, '');
    p.check(key.length > 0, 'key must not be empty');
    p.check(!key.endsWith('/'), `key must not end with '/', got ${JSON.stringify(rawKey)}`);
    p.check(!key.includes('//'), `key must not contain '//', got ${JSON.stringify(rawKey.slice(0, 80))}`);
    // Consul takes keys up to its HTTP request-line limits; every watch and session read carries the
    // key, and '-successor' is appended: bound it as the etcd backend does.
    p.check(Buffer.byteLength(key, 'utf8') <= MAX_KEY_BYTES, `key must be at most ${MAX_KEY_BYTES} bytes (UTF-8), got ${Buffer.byteLength(key, 'utf8')}`);
    // eslint-disable-next-line no-control-regex
    p.check(!/[\u0000-\u001f\u007f?#]/.test(key), `key must not contain control characters, '?' or '#', got ${JSON.stringify(rawKey)}`);
  }
  const ttlMs = checkTtl(p, o.ttlMs);
  const sessionTtlS = Math.ceil(ttlMs / 1000);
  p.check(
    sessionTtlS >= SESSION_TTL_MIN_S && sessionTtlS <= SESSION_TTL_MAX_S,
    `ttlMs must give a Consul session TTL (ceil(ttlMs/1000) s) of ${SESSION_TTL_MIN_S}–${SESSION_TTL_MAX_S} s, got ${sessionTtlS} s from ttlMs ${ttlMs}`,
  );
  const lockDelayMs = o.lockDelayMs ?? 0;
  p.check(typeof lockDelayMs === 'number' && lockDelayMs >= 0 && lockDelayMs <= 60_000, `lockDelayMs must be 0–60000 (Consul's maximum), got ${String(o.lockDelayMs)}`);
  const sessionChecks = [...(o.sessionChecks ?? [])];
  if (sessionChecks.length > 0) {
    p.check(lockDelayMs >= ttlMs, `sessionChecks can end the session before its TTL, so lockDelayMs must be ≥ ttlMs (${ttlMs}), got ${lockDelayMs}`);
  }
  const drift = checkDrift(p, o.drift);
  const watchWaitMs = o.watchWaitMs ?? 60_000;
  p.check(typeof watchWaitMs === 'number' && watchWaitMs >= 1000 && watchWaitMs <= 600_000, `watchWaitMs must be 1000–600000 (Consul caps waits at 10 min), got ${String(o.watchWaitMs)}`);
  const sessionName = o.sessionName ?? 'leaderlock';
  p.check(typeof sessionName === 'string' && sessionName.length > 0, 'sessionName must be a non-empty string');
  p.throwIfAny('consul');
  const options: ResolvedConsulLockOptions = {
    key,
    successorKey: `${key}-successor`,
    metaKey: `${key}-meta`,
    failoverKey: key.endsWith('/leader') ? `${key.slice(0, -'leader'.length)}failover` : undefined,
    ttlMs,
    sessionTtlS,
    lockDelayMs,
    sessionChecks,
    sessionName,
    clock: o.clock ?? systemClock,
    drift,
    watchWaitMs,
    requestTimeoutMs: conn?.requestTimeoutMs ?? o.requestTimeoutMs ?? 5000,
  };
  const client = o.client ?? new ConsulClient(o);
  return { options: Object.freeze(options), client, ownClient: o.client === undefined };
}
