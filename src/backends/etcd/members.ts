import { EventEmitter } from 'node:events';
import { Etcd3, type IOptions, type KVClient, type LeaseClient, type WatchClient } from 'etcd3';
import { untilAborted } from '../../core/abort.js';
import { systemClock } from '../../core/clock.js';
import { AbortedError, DeadlineExceededError, type LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { isRetryable, mapEtcdError } from './errors.js';

const log = logger('etcd:members');

/**
 * The narrow slice of an etcd3 client this backend uses (an `Etcd3` instance satisfies it). Tests and
 * users with their own client pass any object of this shape; no monkeypatching.
 */
export interface EtcdRpc {
  readonly kv: Pick<KVClient, 'range' | 'txn'>;
  readonly leaseClient: Pick<LeaseClient, 'leaseGrant' | 'leaseRevoke' | 'leaseKeepAlive' | 'leaseTimeToLive'>;
  readonly watchClient: Pick<WatchClient, 'watch'>;
}

/** One etcd member we talk to. `close` is set only for clients we created. */
export interface Member {
  readonly name: string;
  readonly rpc: EtcdRpc;
  readonly close?: () => void;
}

export interface MemberSwitch {
  from: string;
  to: string;
  reason: string;
}

/** Per-call options passed to the gRPC call: its deadline (real wall time, as gRPC wants it). */
export interface CallOptions {
  deadline: Date;
}

export interface EtcdConnectOptions {
  endpoints: readonly string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
  auth?: { username: string; password: string } | undefined;
}

// etcd3 retries and circuit-breaks on its own and balances round-robin over its hosts; we want one
// sticky member and our own deadline, so both policies pass calls straight through.
// (async: etcd3's markFailed() chains .catch() on the result.)
// One never-aborted signal for every call (a new AbortController per call cost ~10 µs a renew).
const NEVER_ABORTED = new AbortController().signal;
const passThrough = { execute: async <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => T) => fn({ signal: NEVER_ABORTED, attempt: 0 }) };

/**
 * Closes a gRPC stream we are done with. `end()` first: etcd3's stream error handler treats the
 * CANCELLED error of a still-writable stream as a member failure and tears down every call on that
 * client (including the lease keep-alive stream); a stream that is no longer writable is left alone.
 */
export function closeStream(stream: { end(): void; cancel(): void }): void {
  try {
    stream.end();
    stream.cancel();
  } catch {
    // already closed
  }
}
type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * Names the reason a connection failed, from gRPC's text: refused port, unknown host, a server
 * certificate we do not trust (wrong CA), our client certificate missing or refused. Undefined when
 * the text says none of these.
 */
export function connectionProblem(text: string): string | undefined {
  if (/ECONNREFUSED|connection refused/i.test(text)) return 'connection refused (nothing listens on that port)';
  if (/ENOTFOUND|EAI_AGAIN|name resolution failed|DNS resolution failed|getaddrinfo/i.test(text)) return 'unknown host (name resolution failed)';
  if (/self[- ]signed|unable to (get|verify)|CERT_|certificate verify failed|UNABLE_TO_VERIFY|Hostname\/IP does not match|ERR_TLS_CERT/i.test(text)) {
    return "TLS: the server's certificate is not trusted (wrong tls.ca?)";
  }
  if (/certificate required|bad certificate|alert number 4[0-9]|sslv3 alert|tlsv13 alert|handshake failure/i.test(text)) {
    return 'TLS: the server refused the connection during the handshake (client certificate missing or not trusted? set tls.cert and tls.key)';
  }
  if (/ECONNRESET|socket hang up|Connection dropped/i.test(text)) return 'the connection was reset';
  return undefined;
}

/**
 * The deadline ran out after attempts that failed for a reason (refused, unknown host, TLS, no
 * leader…): say the reason first. Still a `DeadlineExceededError`: the call's time is what ran out.
 */
function diagnosed(err: LeaderLockError, what: string, timeoutMs: number): LeaderLockError {
  const problem = connectionProblem(err.message);
  const text = `${what}: ${problem ? `${problem}; ` : ''}gave up after ${timeoutMs} ms (${err.message})`;
  return new DeadlineExceededError(text, { backend: 'etcd', cause: err, status: err.status });
}

/** One etcd3 client per endpoint, so we decide which member gets each call (Patroni's strategy). */
export function connectMembers(options: EtcdConnectOptions): Member[] {
  return options.endpoints.map((endpoint) => {
    const client = new Etcd3({
      hosts: [endpoint],
      ...(options.tls
        ? { credentials: { rootCertificate: options.tls.ca as Buffer, privateKey: options.tls.key, certChain: options.tls.cert } }
        : {}),
      ...(options.auth ? { auth: { username: options.auth.username, password: options.auth.password } } : {}),
      grpcOptions: {
        // Our own subchannel per client: grpc-js otherwise shares one (and its reconnect backoff,
        // up to 120 s) between clients of the same address, which delays recovery after an etcd restart.
        'grpc.use_local_subchannel_pool': 1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      },
      faultHandling: { host: () => passThrough as unknown as Policy, global: passThrough as unknown as Policy },
    });
    return { name: endpoint, rpc: client, close: () => client.close() };
  });
}

/**
 * Sticky member selection with rotation on failure, all within one caller-given deadline. A call goes
 * to the current member; on unavailability (refused, reset, blackholed past its share of the time) it
 * moves on to the next member and stays there. Each try gets an equal share of the remaining time
 * among the members not yet tried in this call, so a hung member cannot eat the whole deadline.
 */
export class EtcdMembers extends EventEmitter<{ switch: [MemberSwitch] }> {
  readonly #members: readonly Member[];
  #current = 0;
  #closed = false;

  constructor(members: readonly Member[]) {
    super();
    if (members.length === 0) throw new Error('EtcdMembers needs at least one member');
    this.#members = members;
    // Every watch of every lock on the session follows 'switch' (one listener each): no leak warning at 11.
    this.setMaxListeners(0);
  }

  get current(): Member {
    return this.#members[this.#current]!;
  }

  get size(): number {
    return this.#members.length;
  }

  /** Mark `member` failed: the next call goes to the next member (no-op if we already moved on). */
  failed(member: Member, reason: string): void {
    const i = this.#members.indexOf(member);
    if (i !== this.#current || this.#members.length === 1) return;
    this.#current = (i + 1) % this.#members.length;
    log('switch %s -> %s (%s)', member.name, this.current.name, reason);
    this.emit('switch', { from: member.name, to: this.current.name, reason });
  }

  /**
   * Runs `fn` on the current member, rotating on retryable failures until `timeoutMs` has passed.
   * Throws the mapped error (`DeadlineExceededError` when time ran out, with the last failure as cause).
   */
  async call<T>(what: string, fn: (member: Member, options: CallOptions) => Promise<T>, opts: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<T> {
    const start = systemClock.now();
    const tried = new Set<Member>();
    let last: LeaderLockError | undefined;
    /** The most telling failure so far: the latest one that was not a bare deadline. */
    let telling: LeaderLockError | undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new AbortedError(`${what}: etcd client closed`, { backend: 'etcd' });
      if (opts.signal?.aborted) throw new AbortedError(`${what} aborted`, { backend: 'etcd', cause: opts.signal.reason });
      const remaining = opts.timeoutMs - (systemClock.now() - start);
      if (remaining <= 0) {
        // The retries of a connection that cannot be made end in gRPC's "Deadline exceeded … waiting
        // for name resolution", whatever the reason was: report the reason an earlier attempt knew.
        if (telling && !(telling instanceof DeadlineExceededError)) throw diagnosed(telling, what, opts.timeoutMs);
        if (last instanceof DeadlineExceededError) throw last;
        throw new DeadlineExceededError(`${what} did not complete within ${opts.timeoutMs} ms`, { backend: 'etcd', cause: last });
      }
      const member = this.current;
      const untried = Math.max(1, this.#members.length - tried.size);
      const budget = Math.max(Math.min(remaining, 50), remaining / untried);
      tried.add(member);
      try {
        // gRPC deadlines are wall-clock Dates.
        return await untilAborted(fn(member, { deadline: new Date(systemClock.date().getTime() + budget) }), opts.signal, () => new AbortedError(`${what} aborted`, { backend: 'etcd', cause: opts.signal?.reason }));
      } catch (err) {
        const mapped = mapEtcdError(err, `${what} via ${member.name}`);
        if (!isRetryable(mapped)) throw mapped;
        last = mapped;
        if (!(mapped instanceof DeadlineExceededError) || !telling) telling = mapped;
        this.failed(member, mapped.message);
        // One member (or all tried): back off a little before the next try, within the deadline.
        if (this.#members.length === 1 || tried.size >= this.#members.length) {
          const pause = Math.min(25 * 2 ** Math.min(attempt, 4), Math.max(0, opts.timeoutMs - (systemClock.now() - start) - 1));
          if (pause > 0) await systemClock.sleep(pause, opts.signal).catch(() => undefined);
          if (tried.size >= this.#members.length) tried.clear();
        }
      }
    }
  }

  /** Closes the clients we created. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#members) m.close?.();
  }
}
