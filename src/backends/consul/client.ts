import { EventEmitter } from 'node:events';
import { Agent as HttpsAgent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import Consul from 'consul';
import { AbortedError, BackendUnavailableError, ConfigError, DeadlineExceededError, ForbiddenError, LeaderLockError } from '../../core/errors.js';
import { errorText } from '../../core/retry.js';
import { Problems, checkDurations } from '../../core/options.js';
import { goDuration, resolveConnection, type ConsulConnectionOptions } from './connection.js';

export type { ConsulConnectionOptions } from './connection.js';

/**
 * The narrow, typed slice of Consul's HTTP API leaderlock uses, over the `consul` npm client (whose
 * own typings lack `ctx`, `timeout`, response headers and several options). Nothing typed `any`
 * leaves this file. Errors are mapped once, here: 403/401 → `ForbiddenError`, 5xx / refused / reset
 * → `BackendUnavailableError`, a request past its deadline → `DeadlineExceededError`, the caller's
 * signal → `AbortedError`.
 */

export interface KvPair {
  key: string;
  /** UTF-8 text of the value ('' when empty). */
  value: string;
  session: string | undefined;
  createIndex: bigint;
  modifyIndex: bigint;
  lockIndex: bigint;
  flags: number;
}

export interface KvRead {
  entries: KvPair[];
  /** X-Consul-Index of the read (for the next blocking query). */
  index: bigint;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

export interface SessionSpec {
  name: string;
  /** Go duration, e.g. '15s'. */
  ttl: string;
  /** Go duration, always explicit ('0s'): the `consul` client drops a falsy value and Consul then applies 15 s. */
  lockDelay: string;
  behavior: 'release' | 'delete';
  /** Node checks; [] = none (no serfHealth). */
  checks: readonly string[];
}

export interface ServiceSpec {
  id: string;
  name: string;
  tags: readonly string[];
  address?: string;
  port?: number;
  meta?: Readonly<Record<string, string>>;
  check?: { checkId: string; name: string; ttl: string; deregisterCriticalServiceAfter?: string };
}

/** What ConsulLock and ConsulServiceRegistration need from a Consul client (a structural slice; fakes need no monkeypatching). */
export interface ConsulApi {
  readonly address: string;
  sessionCreate(spec: SessionSpec, o?: CallOptions): Promise<string>;
  /** false: the session no longer exists (404). */
  sessionRenew(id: string, o?: CallOptions): Promise<boolean>;
  sessionDestroy(id: string, o?: CallOptions): Promise<void>;
  /** Blocking when `index` > 0: waits up to `waitMs` for a change. */
  kvGet(key: string, o?: CallOptions & { recurse?: boolean; index?: bigint; waitMs?: number }): Promise<KvRead>;
  /** Throws `LeaderLockError` with reason 'invalid-session' when Consul does not know the session. */
  kvPut(key: string, value: string, o?: CallOptions & { acquire?: string; release?: string; cas?: bigint; flags?: number }): Promise<boolean>;
  kvDelete(key: string, o?: CallOptions & { cas?: bigint }): Promise<boolean>;
  serviceRegister(spec: ServiceSpec, o?: CallOptions): Promise<void>;
  serviceDeregister(id: string, o?: CallOptions): Promise<void>;
  checkPass(id: string, note?: string, o?: CallOptions): Promise<void>;
  checkFail(id: string, note?: string, o?: CallOptions): Promise<void>;
}

// ---- The untyped client, typed as narrowly as we use it -------------------------------------------

/** papi call context: emitting 'cancel' aborts; `includeResponse` makes calls resolve `[res, body]`. */
type Ctx = EventEmitter & { includeResponse?: boolean };
interface RawCommon {
  ctx: Ctx;
  timeout: number;
}
type RawResult<T> = Promise<[IncomingMessage, T | undefined]>;
interface RawKvItem {
  Key: string;
  Value: string | null;
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Flags: number;
}
interface RawConsul {
  session: {
    create(o: RawCommon & { name: string; ttl: string; lockdelay: string; behavior: string; checks: string[] }): RawResult<{ ID: string }>;
    renew(o: RawCommon & { id: string }): RawResult<unknown[]>;
    destroy(o: RawCommon & { id: string }): RawResult<unknown>;
  };
  kv: {
    get(o: RawCommon & { key: string; recurse?: boolean; index?: string; wait?: string }): RawResult<RawKvItem | RawKvItem[]>;
    set(o: RawCommon & { key: string; value: string; acquire?: string; release?: string; cas?: string }): RawResult<boolean>;
    del(o: RawCommon & { key: string; cas?: string }): RawResult<boolean>;
  };
  agent: {
    service: {
      register(o: RawCommon & Record<string, unknown>): RawResult<unknown>;
      deregister(o: RawCommon & { id: string }): RawResult<unknown>;
    };
    check: {
      pass(o: RawCommon & { id: string; note?: string }): RawResult<unknown>;
      fail(o: RawCommon & { id: string; note?: string }): RawResult<unknown>;
    };
  };
  destroy(): void;
}
interface PapiError extends Error {
  isTimeout?: boolean;
  isAbort?: boolean;
  isResponse?: boolean;
  statusCode?: number;
  code?: string;
}

/**
 * A Consul client for leaderlock. Locks that share one `ConsulClient` share one session (one per
 * process, as Patroni); `close()` it once every lock using it is closed.
 */
export class ConsulClient implements ConsulApi {
  readonly address: string;
  readonly #raw: RawConsul;
  readonly #timeoutMs: number;
  #closed = false;

  constructor(options: ConsulConnectionOptions = {}) {
    const p = new Problems();
    checkDurations(p, options);
    const c = resolveConnection(p, options);
    p.throwIfAny('consul');
    this.address = `${c.secure ? 'https' : 'http'}://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
    this.#timeoutMs = c.requestTimeoutMs;
    const agent =
      c.secure && (c.ca !== undefined || c.cert !== undefined)
        ? new HttpsAgent({ keepAlive: true, ...(c.ca !== undefined ? { ca: c.ca } : {}), ...(c.cert !== undefined ? { cert: c.cert, key: c.key } : {}) })
        : undefined;
    const raw: unknown = new Consul({
      host: c.host.includes(':') ? `[${c.host}]` : c.host,
      port: c.port,
      secure: c.secure,
      ...(c.token !== undefined ? { defaults: { token: c.token } } : {}),
      ...(agent ? { agent } : {}),
    });
    this.#raw = raw as RawConsul;
  }

  async sessionCreate(spec: SessionSpec, o: CallOptions = {}): Promise<string> {
    const [, body] = await this.#call('session create', o, (common) =>
      this.#raw.session.create({ ...common, name: spec.name, ttl: spec.ttl, lockdelay: spec.lockDelay, behavior: spec.behavior, checks: [...spec.checks] }),
    );
    if (!body || typeof body.ID !== 'string') throw new BackendUnavailableError('consul session create: reply without ID', { backend: 'consul' });
    return body.ID;
  }

  async sessionRenew(id: string, o: CallOptions = {}): Promise<boolean> {
    try {
      const [, body] = await this.#call('session renew', o, (common) => this.#raw.session.renew({ ...common, id }));
      // Consul answers 404 for an unknown session; an empty list is the same news from older agents.
      return Array.isArray(body) && body.length > 0;
    } catch (err) {
      if (err instanceof LeaderLockError && err.status === 404) return false;
      throw err;
    }
  }

  async sessionDestroy(id: string, o: CallOptions = {}): Promise<void> {
    await this.#call('session destroy', o, (common) => this.#raw.session.destroy({ ...common, id }));
  }

  async kvGet(key: string, o: CallOptions & { recurse?: boolean; index?: bigint; waitMs?: number } = {}): Promise<KvRead> {
    const blocking = o.index !== undefined && o.index > 0n;
    const waitMs = o.waitMs ?? 60_000;
    // A blocking query may legitimately last wait + wait/16 (Consul's jitter); the deadline covers that.
    const timeoutMs = o.timeoutMs ?? (blocking ? waitMs + waitMs / 16 + this.#timeoutMs : this.#timeoutMs);
    const [res, body] = await this.#call('kv get', { ...o, timeoutMs }, (common) =>
      this.#raw.kv.get({
        ...common,
        key,
        ...(o.recurse ? { recurse: true } : {}),
        ...(blocking ? { index: String(o.index), wait: goDuration(Math.ceil(waitMs / 1000) * 1000) } : {}),
      }),
    );
    const header = res.headers['x-consul-index'];
    const index = typeof header === 'string' && /^\d+$/.test(header) ? BigInt(header) : 0n;
    const items = body === undefined ? [] : Array.isArray(body) ? body : [body];
    return { index, entries: items.map(toPair) };
  }

  async kvPut(key: string, value: string, o: CallOptions & { acquire?: string; release?: string; cas?: bigint; flags?: number } = {}): Promise<boolean> {
    const [, body] = await this.#call('kv put', o, (common) =>
      this.#raw.kv.set({
        ...common,
        key,
        value,
        ...(o.acquire !== undefined ? { acquire: o.acquire } : {}),
        ...(o.release !== undefined ? { release: o.release } : {}),
        ...(o.cas !== undefined ? { cas: String(o.cas) } : {}),
        ...(o.flags !== undefined ? { flags: o.flags } : {}),
      }),
    );
    return body === true;
  }

  async kvDelete(key: string, o: CallOptions & { cas?: bigint } = {}): Promise<boolean> {
    const [, body] = await this.#call('kv delete', o, (common) => this.#raw.kv.del({ ...common, key, ...(o.cas !== undefined ? { cas: String(o.cas) } : {}) }));
    return body === true;
  }

  async serviceRegister(spec: ServiceSpec, o: CallOptions = {}): Promise<void> {
    await this.#call('service register', o, (common) =>
      this.#raw.agent.service.register({
        ...common,
        id: spec.id,
        name: spec.name,
        tags: [...spec.tags],
        ...(spec.address !== undefined ? { address: spec.address } : {}),
        ...(spec.port !== undefined ? { port: spec.port } : {}),
        ...(spec.meta !== undefined ? { meta: { ...spec.meta } } : {}),
        ...(spec.check
          ? {
              check: {
                checkid: spec.check.checkId,
                name: spec.check.name,
                ttl: spec.check.ttl,
                ...(spec.check.deregisterCriticalServiceAfter ? { deregistercriticalserviceafter: spec.check.deregisterCriticalServiceAfter } : {}),
              },
            }
          : {}),
      }),
    );
  }

  async serviceDeregister(id: string, o: CallOptions = {}): Promise<void> {
    await this.#call('service deregister', o, (common) => this.#raw.agent.service.deregister({ ...common, id }));
  }

  async checkPass(id: string, note?: string, o: CallOptions = {}): Promise<void> {
    await this.#call('check pass', o, (common) => this.#raw.agent.check.pass({ ...common, id, ...(note ? { note } : {}) }));
  }

  async checkFail(id: string, note?: string, o: CallOptions = {}): Promise<void> {
    await this.#call('check fail', o, (common) => this.#raw.agent.check.fail({ ...common, id, ...(note ? { note } : {}) }));
  }

  /** Idempotent: drops the keep-alive connections. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#raw.destroy();
  }

  async #call<T>(what: string, o: CallOptions, run: (common: RawCommon) => RawResult<T>): Promise<[IncomingMessage, T | undefined]> {
    if (this.#closed) throw new AbortedError(`consul ${what}: client closed`, { backend: 'consul' });
    const signal = o.signal;
    if (signal?.aborted) throw new AbortedError(`consul ${what} aborted`, { backend: 'consul', cause: signal.reason });
    const ctx: Ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const onAbort = (): void => void ctx.emit('cancel');
    signal?.addEventListener('abort', onAbort, { once: true });
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    try {
      return await run({ ctx, timeout: timeoutMs });
    } catch (err) {
      throw mapError(what, err, signal, timeoutMs);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function toPair(item: RawKvItem): KvPair {
  return {
    key: item.Key,
    value: item.Value ?? '',
    session: item.Session || undefined,
    createIndex: BigInt(item.CreateIndex),
    modifyIndex: BigInt(item.ModifyIndex),
    lockIndex: BigInt(item.LockIndex),
    flags: item.Flags,
  };
}

function mapError(what: string, err: unknown, signal: AbortSignal | undefined, timeoutMs: number): LeaderLockError {
  if (err instanceof LeaderLockError) return err;
  const e = err as PapiError;
  const text = errorText(err).replace(/^consul: /, '');
  if (signal?.aborted) return new AbortedError(`consul ${what} aborted`, { backend: 'consul', cause: signal.reason });
  if (e?.isTimeout) return new DeadlineExceededError(`consul ${what} did not complete within ${timeoutMs} ms`, { backend: 'consul', cause: err });
  if (e?.isResponse && typeof e.statusCode === 'number') {
    const status = e.statusCode;
    if (status === 401 || status === 403) return new ForbiddenError(`consul ${what}: ${status} ${text}`, { backend: 'consul', status, cause: err });
    // "Invalid Session TTL" (a TTL out of Consul's range) is a configuration problem, not a session Consul forgot.
    if (status === 500 && /invalid session ttl/i.test(text)) return new ConfigError(`consul ${what}: ${text} (session TTL must be 10 s – 86400 s)`, { backend: 'consul', status, cause: err });
    if (status === 500 && /invalid session/i.test(text)) return new LeaderLockError(`consul ${what}: ${text}`, { backend: 'consul', status, reason: 'invalid-session', cause: err });
    if (status >= 500 || status === 429) return new BackendUnavailableError(`consul ${what}: ${status} ${text}`, { backend: 'consul', status, cause: err });
    return new LeaderLockError(`consul ${what}: ${status} ${text}`, { backend: 'consul', status, cause: err });
  }
  // Refused, reset, DNS, TLS: the agent could not be reached (or the reply was lost).
  return new BackendUnavailableError(`consul ${what} failed: ${text}`, { backend: 'consul', cause: err });
}
