import { EventEmitter } from 'node:events';
import type { ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IDuplexStream } from 'etcd3';
import { systemClock, type Clock, type Timer } from '../../core/clock.js';
import { untilAborted } from '../../core/abort.js';
import { AbortedError, DeadlineExceededError, type LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { mapEtcdError } from './errors.js';
import { EtcdMembers, closeStream, connectMembers, type CallOptions, type EtcdRpc, type Member, type MemberSwitch } from './members.js';
import { resolveSessionOptions, type EtcdSessionOptions, type ResolvedSessionOptions } from './options.js';
import { ttlSeconds, type LeaseId } from './wire.js';
import { RenewBatcher } from './renew-batch.js';
import { WatchHub } from './watch-hub.js';
import { TxnBatcher } from './txn-batch.js';

const log = logger('etcd:session');

/** Calls in flight per session; more wait in line (see `call`). */
const MAX_IN_FLIGHT = 256;

/** A confirmed keep-alive: when we sent it and the TTL etcd reset the lease to (0: the lease is gone). */
export interface KeepAliveResult {
  sentAt: number;
  ttlMs: number;
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;
interface Waiter {
  sentAt: number;
  settled: boolean;
  resolve(r: KeepAliveResult): void;
  reject(e: unknown): void;
}

/**
 * One etcd lease shared by every `EtcdLock` that uses this session — one lease per process, as
 * Patroni does. The lease is granted lazily on the first acquire and re-granted after it was lost.
 * While a key rides on it, only the locks' acquire/renew calls refresh it, so a key whose holder
 * stops renewing expires with the lease. While no key rides on it (every lock a follower), the
 * session keeps it alive in the background every ttl/3, so a follower takes over with a single
 * txn instead of a lease grant first. Also owns the connections (one etcd3 client per endpoint,
 * sticky member).
 *
 * `close()` revokes the lease (every key on it disappears at once) and closes the connections;
 * `abandon()` closes the connections and lets the lease expire by itself after its TTL, as a crashed
 * process would. The lease is also revoked when the last lock attached to the session closes.
 */
export class EtcdSession extends EventEmitter<{ warning: [Error]; switch: [MemberSwitch] }> {
  readonly ttlMs: number;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  /** @internal */
  readonly members: EtcdMembers;
  /**
   * @internal The renews of every lock on this session, batched: one keep-alive and one ownership
   * txn per window (ttl/150, 100 ms at the default ttl) while several keys ride on the lease; with
   * one key every renew goes out at once.
   */
  readonly renews: RenewBatcher;
  /** @internal One watch stream per member for the watchers of every lock on this session. */
  readonly watchHub: WatchHub;
  /** @internal The locks' independent txns (acquire's create, the watch's read), batched under load. */
  readonly txns: TxnBatcher;
  readonly #options: ResolvedSessionOptions;
  #lease: LeaseId | undefined;
  #grantedTtlMs: number | undefined;
  #granting: Promise<LeaseId> | undefined;
  #ka: { member: Member; stream: KeepAliveStream; queue: Waiter[] } | undefined;
  #users = 0;
  /** Keys known to ride on the current lease (terms not yet known to be over on the server). */
  #holding = 0;
  /** Monotonic time until which the lease is known to live (last confirmed refresh send + granted TTL). */
  #aliveUntil = 0;
  /** The last confirmed refresh (grant or keep-alive) of the current lease: its send time and TTL. */
  #refreshed: KeepAliveResult | undefined;
  #idleTimer: Timer | undefined;
  #closed = false;
  #inFlight = 0;
  readonly #keepAlives = new Map<LeaseId, Promise<KeepAliveResult>>();
  readonly #queued: Array<() => void> = [];

  constructor(options: EtcdSessionOptions) {
    super();
    this.#options = resolveSessionOptions(options);
    this.ttlMs = this.#options.ttlMs;
    this.requestTimeoutMs = this.#options.requestTimeoutMs;
    this.clock = this.#options.clock ?? systemClock;
    const members: Member[] = this.#options.client
      ? [{ name: 'client', rpc: this.#options.client }]
      : connectMembers({ endpoints: this.#options.endpoints, tls: this.#options.tls, auth: this.#options.auth });
    this.members = new EtcdMembers(members);
    this.renews = new RenewBatcher(this, { windowMs: this.ttlMs / 150 });
    this.watchHub = new WatchHub(this.requestTimeoutMs);
    this.txns = new TxnBatcher(this);
    this.members.on('switch', (s) => this.emit('switch', s));
  }

  /** The current lease ID (decimal string), if one is granted and not known to be lost. */
  get leaseId(): LeaseId | undefined {
    return this.#lease;
  }

  /** The TTL etcd granted (it raises a too-small TTL to its minimum), once a lease was granted. */
  get grantedTtlMs(): number | undefined {
    return this.#grantedTtlMs;
  }

  /** @internal How many terms' keys are known to ride on the lease (0: nothing held). */
  get holding(): number {
    return this.#holding;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one call on the sticky member with rotation, within `requestTimeoutMs` (or `timeoutMs`). */
  call<T>(what: string, fn: (rpc: EtcdRpc, options: CallOptions, member: Member) => Promise<T>, opts: { signal?: AbortSignal | undefined; timeoutMs?: number } = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    if (this.#inFlight < MAX_IN_FLIGHT) return this.#run(what, fn, timeoutMs, opts.signal);
    // Thousands of locks starting at once: queue here rather than start thousands of gRPC calls in
    // one tick, whose deadlines would pass while this process is still sending them. Time spent
    // queued counts against the call's deadline.
    const queuedAt = this.clock.now();
    return new Promise<void>((resolve) => this.#queued.push(resolve)).then(() => {
      const left = timeoutMs - (this.clock.now() - queuedAt);
      if (left <= 0) throw new DeadlineExceededError(`${what} did not start within ${timeoutMs} ms (${MAX_IN_FLIGHT} calls in flight before it)`, { backend: 'etcd' });
      return this.#run(what, fn, left, opts.signal);
    });
  }

  async #run<T>(what: string, fn: (rpc: EtcdRpc, options: CallOptions, member: Member) => Promise<T>, timeoutMs: number, signal: AbortSignal | undefined): Promise<T> {
    this.#inFlight++;
    try {
      return await this.members.call(what, (m, o) => fn(m.rpc, o, m), { timeoutMs, signal });
    } finally {
      this.#inFlight--;
      this.#queued.shift()?.();
    }
  }

  /** The shared lease, granted on first use (single flight). */
  lease(signal?: AbortSignal): Promise<LeaseId> {
    if (this.#closed) return Promise.reject(new AbortedError('etcd session closed', { backend: 'etcd' }));
    // A lease with no key on it that has not been refreshed for its TTL is gone: grant a new one
    // rather than learn that from a failed txn (one round trip saved on takeover).
    if (this.#lease && this.#holding === 0 && this.clock.now() >= this.#aliveUntil) this.leaseLost(this.#lease);
    if (this.#lease) return Promise.resolve(this.#lease);
    const sentAt = this.clock.now();
    this.#granting ??= this.grant(this.ttlMs, signal)
      .then(({ id, ttlMs }) => {
        this.#lease = id;
        this.#grantedTtlMs = ttlMs;
        this.#aliveUntil = sentAt + ttlMs;
        this.#refreshed = { sentAt, ttlMs };
        log('lease %s granted, ttl %d ms', id, ttlMs);
        return id;
      })
      .finally(() => {
        this.#granting = undefined;
      });
    return this.#granting;
  }

  /** A new lease of its own (the handover nomination's, never renewed). */
  async grant(ttlMs: number, signal?: AbortSignal): Promise<{ id: LeaseId; ttlMs: number }> {
    const res = await this.call('etcd lease grant', (rpc, o) => rpc.leaseClient.leaseGrant({ TTL: ttlSeconds(ttlMs) }, o), { signal });
    return { id: String(res.ID), ttlMs: Number(res.TTL) * 1000 };
  }

  /** Forget `lease` if it is the current one (etcd said it is gone); the next acquire grants a new one. */
  leaseLost(lease: LeaseId): void {
    if (this.#lease === lease) {
      log('lease %s lost', lease);
      this.#lease = undefined;
      this.#refreshed = undefined;
    }
  }

  /**
   * One keep-alive of `lease`, confirmed by etcd. `ttlMs: 0` means the lease is gone (and is
   * forgotten). `sentAt` is on `clock`, taken right before the request was written.
   */
  keepAlive(lease: LeaseId, opts: { signal?: AbortSignal | undefined } = {}): Promise<KeepAliveResult> {
    // One keep-alive of a lease in flight at a time: a caller while one is on its way joins it (10,000
    // acquires at once send a handful, not 10,000). Safe: the answer proves the lease lives until that
    // earlier send time + TTL, and every caller bounds its term by the earlier of its own send time
    // and the keep-alive's.
    let shared = this.#keepAlives.get(lease);
    if (!shared) {
      const p = this.call('etcd lease keep-alive', (_rpc, o, member) => this.#keepAliveOn(member, lease, o)).then((result) => {
        if (result.ttlMs <= 0) this.leaseLost(lease);
        else if (lease === this.#lease) {
          this.#aliveUntil = Math.max(this.#aliveUntil, result.sentAt + result.ttlMs);
          if (!this.#refreshed || result.sentAt >= this.#refreshed.sentAt) this.#refreshed = result;
        }
        return result;
      });
      shared = p;
      this.#keepAlives.set(lease, p);
      const forget = (): void => void (this.#keepAlives.get(lease) === p && this.#keepAlives.delete(lease));
      p.then(forget, forget);
    }
    return untilAborted(shared, opts.signal, () => new AbortedError('etcd lease keep-alive aborted', { backend: 'etcd', cause: opts.signal?.reason }));
  }

  /**
   * The last confirmed refresh of `lease` (its grant or a keep-alive): etcd keeps the lease, and every
   * key on it, until at least `sentAt + ttlMs` — it counts the TTL from when it handled the request,
   * which is after we sent it. Undefined when `lease` is not the current lease.
   */
  lastRefresh(lease: LeaseId): KeepAliveResult | undefined {
    return lease === this.#lease ? this.#refreshed : undefined;
  }

  #keepAliveOn(member: Member, lease: LeaseId, o: CallOptions): Promise<KeepAliveResult> {
    // Fast path without an await: the keep-alive goes out in the same tick as the renew's txn.
    if (this.#ka && this.#ka.member === member) return this.#sendKeepAlive(this.#ka, lease, o);
    return this.#streamOn(member).then((ka) => this.#sendKeepAlive(ka, lease, o));
  }

  #sendKeepAlive(ka: { stream: KeepAliveStream; queue: Waiter[] }, lease: LeaseId, o: CallOptions): Promise<KeepAliveResult> {
    return new Promise<KeepAliveResult>((resolve, reject) => {
      let timer: Timer | undefined;
      // Waiters stay queued after a timeout: responses on a stream come in request order, so the
      // n-th response always belongs to the n-th request, and a late reply never confirms a newer send.
      const waiter: Waiter = {
        sentAt: this.clock.now(),
        settled: false,
        resolve: (r) => {
          if (waiter.settled) return;
          waiter.settled = true;
          timer?.cancel();
          resolve(r);
        },
        reject: (e) => {
          if (waiter.settled) return;
          waiter.settled = true;
          timer?.cancel();
          reject(e);
        },
      };
      timer = systemClock.setTimer(
        () => waiter.reject(new DeadlineExceededError('etcd lease keep-alive: no reply in time', { backend: 'etcd' })),
        o.deadline.getTime() - systemClock.date().getTime(),
        { unref: true },
      );
      ka.queue.push(waiter);
      try {
        ka.stream.write({ ID: lease });
      } catch (err) {
        this.#dropStream(ka.stream, err);
      }
    });
  }

  async #streamOn(member: Member): Promise<{ stream: KeepAliveStream; queue: Waiter[] }> {
    if (this.#ka && this.#ka.member === member) return this.#ka;
    if (this.#ka) this.#dropStream(this.#ka.stream, new Error('moved to another etcd member'));
    const stream = await member.rpc.leaseClient.leaseKeepAlive();
    if (this.#ka && this.#ka.member === member) {
      closeStream(stream); // lost a race with a concurrent caller; use theirs
      return this.#ka;
    }
    if (this.#closed) {
      closeStream(stream);
      throw new AbortedError('etcd session closed', { backend: 'etcd' });
    }
    const ka = { member, stream, queue: [] as Waiter[] };
    this.#ka = ka;
    stream.on('data', (res) => {
      const w = ka.queue.shift();
      w?.resolve({ sentAt: w.sentAt, ttlMs: Number(res.TTL) * 1000 });
    });
    stream.on('error', (err) => this.#dropStream(stream, err));
    stream.on('end', () => this.#dropStream(stream, new Error('keep-alive stream ended')));
    return ka;
  }

  #dropStream(stream: KeepAliveStream, cause: unknown): void {
    if (!this.#ka || this.#ka.stream !== stream) return;
    const { queue } = this.#ka;
    this.#ka = undefined;
    closeStream(stream);
    const err: LeaderLockError = mapEtcdError(cause, 'etcd lease keep-alive stream');
    for (const w of queue) w.reject(err);
  }

  /** @internal A lock starts using this session. */
  attach(): void {
    this.#users++;
    this.#armIdle();
  }

  /** @internal A lock stops using this session: the last one revokes the lease (its keys vanish). */
  async detach(): Promise<void> {
    this.#users = Math.max(0, this.#users - 1);
    if (this.#users === 0 && !this.#closed) {
      this.#idleTimer?.cancel();
      this.#idleTimer = undefined;
      await this.#revoke();
    }
  }

  /** @internal How many keys ride on the lease (terms of this session's locks not known to be over). */
  get holdingKeys(): number {
    return this.#holding;
  }

  /** @internal A key now rides on the lease (a term began). */
  retain(): void {
    this.#holding++;
  }

  /** @internal A key is known to be off the lease (released, or etcd said it is not ours). */
  unretain(): void {
    this.#holding = Math.max(0, this.#holding - 1);
  }

  #armIdle(): void {
    if (this.#idleTimer || this.#closed || this.#users === 0) return;
    this.#idleTimer = this.clock.setTimer(() => void this.#idleTick(), this.ttlMs / 3, { unref: true });
  }

  /** Background refresh while no key rides on the lease: keep a follower ready to take over. */
  async #idleTick(): Promise<void> {
    this.#idleTimer = undefined;
    if (this.#closed || this.#users === 0) return;
    if (this.#holding === 0) {
      try {
        const lease = await this.lease();
        if (this.#holding === 0) await this.keepAlive(lease);
      } catch (err) {
        log('idle lease refresh failed: %s', err instanceof Error ? err.message : String(err));
      }
    }
    this.#armIdle();
  }

  async #revoke(): Promise<void> {
    const lease = this.#lease ?? (await this.#granting?.catch(() => undefined));
    this.#lease = undefined;
    if (!lease) return;
    try {
      await this.call('etcd lease revoke', (rpc, o) => rpc.leaseClient.leaseRevoke({ ID: lease }, o));
      log('lease %s revoked', lease);
    } catch (err) {
      // It expires by itself after its TTL; nothing else to do.
      this.emit('warning', mapEtcdError(err, `etcd lease revoke ${lease}`));
    }
  }

  /** Revokes the lease and closes the connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#revoke();
    this.#shutdown();
  }

  /** Closes the connections without revoking: the lease expires after its TTL (simulates a crash). */
  abandon(): void {
    this.#shutdown();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.renews.close(new AbortedError('etcd session closed', { backend: 'etcd' }));
    this.watchHub.close();
    this.txns.close(new AbortedError('etcd session closed', { backend: 'etcd' }));
    this.#idleTimer?.cancel();
    this.#idleTimer = undefined;
    if (this.#ka) this.#dropStream(this.#ka.stream, new Error('etcd session closed'));
    this.members.close();
  }
}
