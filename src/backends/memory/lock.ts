import { EventEmitter } from 'node:events';
import { sameTimeline, type Clock } from '../../core/clock.js';
import { AbortedError, ConfigError, LockLostError, isAmbiguous } from '../../core/errors.js';
import { Term, type AcquireOptions, type LeaderLock, type LockState, type ReleaseOptions, type RenewOptions } from '../../core/lock.js';
import { logger } from '../../core/log.js';
import { Problems, assertHolder, assertMetadata, checkDrift, checkIdentity, checkTtl, checkDurations } from '../../core/options.js';
import type { Faults } from './faults.js';
import { Network } from './network.js';
import type { MemoryStore } from './store.js';
import { watchKey } from './watch.js';

const log = logger('memory');
let clients = 0;

export interface MemoryLockOptions {
  /** The key in the store. Default 'leader'. */
  key?: string;
  /** Lease duration, ms. Default 15000. */
  ttlMs?: number;
  /** This client's clock (its process's view of time). Default: the store's clock. */
  clock?: Clock;
  /** Clock-rate tolerance for `validUntil`. Default 0.01. */
  drift?: number;
  /** Client-side deadline of each request, ms: a lost request or response fails with `DeadlineExceededError` after it. Default ttlMs / 5. */
  requestTimeoutMs?: number;
  /** For logs and request ids. Default 'memory-<n>'. */
  name?: string;
  /** Source of randomness for latency jitter, [0, 1). Default Math.random; pass a seeded one for reproducible runs. */
  random?: () => number;
}

interface Resolved {
  key: string;
  ttlMs: number;
  clock: Clock;
  drift: number;
  requestTimeoutMs: number;
  name: string;
  random: () => number;
}

function resolveOptions(store: MemoryStore, options: MemoryLockOptions): Readonly<Resolved> {
  const p = new Problems();
  checkDurations(p, options);
  p.check(typeof store?.create === 'function', 'the first argument must be a MemoryStore');
  const key = options.key ?? 'leader';
  p.check(typeof key === 'string' && key.length > 0, `key must be a non-empty string, got ${JSON.stringify(key)}`);
  const ttlMs = checkTtl(p, options.ttlMs);
  const drift = checkDrift(p, options.drift);
  const clock = options.clock ?? store?.clock;
  if (p.check(typeof clock?.now === 'function' && typeof clock?.setTimer === 'function', 'clock must implement Clock (now, date, setTimer, sleep)') && store?.clock) {
    // A lock on another timeline than its store (system clock vs VirtualClock) would judge TTLs and
    // deadlines against a time that never meets the store's: reject instead of mixing silently.
    p.check(
      sameTimeline(clock!, store.clock),
      "clock is on another timeline than the store's clock (e.g. the system clock with a MemoryStore on a VirtualClock): leave clock out to use the store's, or pass storeClock.child() for a drifting process clock",
    );
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? ttlMs / 5;
  p.check(
    typeof requestTimeoutMs === 'number' && Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0,
    `requestTimeoutMs must be a positive number of milliseconds, got ${String(options.requestTimeoutMs)}`,
  );
  const name = options.name === undefined ? `memory-${clients + 1}` : checkIdentity(p, options.name, 'name');
  const random = options.random ?? Math.random;
  p.check(typeof random === 'function', 'random must be a function returning a number in [0, 1)');
  p.throwIfAny('memory');
  clients++;
  return Object.freeze({ key, ttlMs, clock: clock!, drift, requestTimeoutMs, name, random });
}

/**
 * `LeaderLock` on a `MemoryStore`, through a simulated network with fault injection (`faults`).
 * Each instance is one client — one process in a test. Semantics are those of the real backends:
 *
 * - acquire: create-if-absent; token = the store revision of the creation.
 * - renew: compare-and-refresh on (token, holder); `validUntil` = client clock at SEND time + ttl·(1 − drift).
 * - release: compare-and-delete on (token, holder), optionally nominating a successor.
 * - A lost request/response rejects with `DeadlineExceededError` after `requestTimeoutMs`; the term is
 *   not moved nor ended by it (it expires at `validUntil` unless a later renew succeeds).
 */
export class MemoryLock extends EventEmitter implements LeaderLock {
  readonly backend = 'memory' as const;
  readonly key: string;
  readonly ttlMs: number;
  readonly name: string;
  readonly store: MemoryStore;
  readonly #o: Readonly<Resolved>;
  readonly #net: Network;
  readonly #id: string;
  #seq = 0;
  /**
   * Terms whose record may still be in the store — including ones ended only locally (deadline,
   * local expiry): close() releases them by CAS. Forgotten once the store says they are gone
   * (release, LockLostError) or a newer term of this lock replaced them.
   */
  readonly #terms = new Set<Term>();
  readonly #watchCleanups = new Set<() => void>();
  #closing: Promise<void> | undefined;

  constructor(store: MemoryStore, options: MemoryLockOptions = {}) {
    super();
    this.#o = resolveOptions(store, options);
    this.store = store;
    this.key = this.#o.key;
    this.ttlMs = this.#o.ttlMs;
    this.name = this.#o.name;
    this.#id = `${this.name}/${clients}`;
    this.#net = new Network(this.#o.clock, this.#o.random);
  }

  /** Fault injection for this client; see `Faults`. */
  get faults(): Faults {
    return this.#net.faults;
  }

  /** This client's clock: its Terms run on it (the elector uses it too). */
  get clock(): Clock {
    return this.#o.clock;
  }

  /** Client-side deadline of each request, ms. */
  get requestTimeoutMs(): number {
    return this.#o.requestTimeoutMs;
  }

  /** Clock-rate tolerance applied to `validUntil`. */
  get drift(): number {
    return this.#o.drift;
  }

  /**
   * Create-if-absent. `undefined` when a live record exists (whoever holds it, our own identity
   * included) or a live nomination names another holder.
   *
   * Ambiguous failures: every acquire carries a request id the store keeps in the record it creates.
   * When the response is lost (`DeadlineExceededError`), we re-read once: a record with our request id
   * is our term (token from the record; `validUntil` still counted from the acquire's send time); a
   * record of someone else (or a blocking nomination) means `undefined`; a free key, or a failed
   * re-read, rethrows the original error (the write did not happen, or happened and already expired).
   */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<Term | undefined> {
    assertHolder(holder, 'memory');
    const metadata = assertMetadata(options.metadata, 'memory');
    this.#assertOpen();
    const { store, key } = this;
    const requestId = `${this.#id}#${++this.#seq}`;
    const sentAt = this.#o.clock.now();
    try {
      const r = await this.#request('acquire', () => store.create(key, holder, this.ttlMs, requestId, metadata), options.signal);
      return r.ok ? this.#startTerm(holder, r.token, sentAt) : undefined;
    } catch (err) {
      if (!isAmbiguous(err)) throw err;
      log('%s: acquire %s ambiguous, re-reading', this.name, requestId);
      let seen: { state: LockState; requestId: string | undefined; blocked: boolean };
      try {
        seen = await this.#request('acquire re-read', () => {
          const state = store.peek(key);
          return { state, requestId: store.record(key)?.requestId, blocked: state.successor !== undefined && state.successor !== holder };
        }, options.signal);
      } catch {
        throw err;
      }
      const leader = seen.state.leader;
      if (leader && seen.requestId === requestId) return this.#startTerm(holder, leader.token, sentAt);
      if (leader || seen.blocked) return undefined;
      throw err;
    }
  }

  /**
   * Compare-and-refresh on the term's token. Throws `LockLostError` without a request when the term
   * has ended; throws `LockLostError` and ends the term ('expired': no record; 'taken': another
   * term's record) when the store says it is not ours. A lost request/response throws
   * `DeadlineExceededError` and leaves the term as it is.
   */
  async renew(term: Term, options: RenewOptions = {}): Promise<Term> {
    checkTerm(term);
    this.#assertOpen();
    if (term.ended) throw lost(term, term.endReason ?? 'expired');
    const sentAt = this.#o.clock.now();
    const r = await this.#request('renew', () => this.store.refresh(this.key, term.token, term.holder, this.ttlMs), options.signal);
    if (!r.ok) {
      this.#terms.delete(term);
      term.end(r.reason);
      throw lost(term, r.reason);
    }
    term.extend(sentAt + this.ttlMs * (1 - this.#o.drift));
    // Ended while the renew was in flight (validUntil passed, or stopped): the reply cannot revive it.
    if (term.ended) throw lost(term, term.endReason ?? 'expired');
    return term;
  }

  /**
   * Compare-and-delete on the term's token (works on a term that has already ended locally, e.g. after
   * a deadline). With `successor`, writes a nomination that expires after ttlMs on the store clock.
   * Resolves false, ending the term 'expired' or 'taken', when the record is no longer this term's.
   */
  async release(term: Term, options: ReleaseOptions = {}): Promise<boolean> {
    checkTerm(term);
    const { successor } = options;
    if (successor !== undefined) {
      const p = new Problems();
      checkIdentity(p, successor, 'successor');
      p.throwIfAny('memory');
    }
    const nominate = successor === undefined ? undefined : { successor, ttlMs: this.ttlMs };
    const r = await this.#request('release', () => this.store.delete(this.key, term.token, term.holder, nominate));
    this.#terms.delete(term);
    term.end(r.ok ? (successor === undefined ? 'released' : 'handover') : r.reason);
    return r.ok;
  }

  /** One read through this client's network (faults apply). */
  async get(options: { signal?: AbortSignal } = {}): Promise<LockState> {
    this.#assertOpen();
    return this.#request('get', () => this.store.peek(this.key), options.signal);
  }

  /**
   * The current state first, then the state after every change of the store, in order, each after
   * the client's latency. While partitioned nothing arrives; on heal the latest state does.
   * Ends when `signal` aborts, the consumer stops iterating, or the lock is closed.
   */
  watch(options: { signal: AbortSignal }): AsyncIterable<LockState> {
    const signal = options?.signal;
    if (!(signal instanceof AbortSignal)) throw new ConfigError('watch({ signal }) needs an AbortSignal', { backend: 'memory' });
    this.#assertOpen();
    return watchKey(this.store, this.key, this.#net, signal, this.#watchCleanups);
  }

  /** Idempotent. Releases every term this lock still holds (best effort, bounded by requestTimeoutMs) and ends its watches. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const cleanup of [...this.#watchCleanups]) cleanup();
    const held = [...this.#terms];
    await Promise.all(
      held.map((term) =>
        this.release(term).catch((err: unknown) => {
          term.end('stopped');
          this.emit('warning', err instanceof Error ? err : new Error(String(err)));
        }),
      ),
    );
    this.#net.faults.heal();
  }

  #startTerm(holder: string, token: bigint, sentAt: number): Term {
    const term = new Term({ holder, token, validUntil: sentAt + this.ttlMs * (1 - this.#o.drift), clock: this.#o.clock, backend: 'memory' });
    this.#terms.clear(); // the key now has a newer token: older terms of ours are gone from the store
    this.#terms.add(term);
    if (this.#closing) {
      // Closed while the acquire was in flight: give the key back rather than hold it from a closed lock.
      void this.release(term).catch(() => term.end('stopped'));
      throw new AbortedError('memory lock is closed', { backend: 'memory' });
    }
    log('%s: %s acquired token %s', this.name, holder, token);
    return term;
  }

  #request<T>(what: string, serve: () => T, signal?: AbortSignal): Promise<T> {
    return this.#net.exchange(serve, { what, timeoutMs: this.#o.requestTimeoutMs, signal });
  }

  #assertOpen(): void {
    if (this.#closing) throw new AbortedError('memory lock is closed', { backend: 'memory' });
  }
}

function checkTerm(term: Term): void {
  if (!(term instanceof Term)) throw new ConfigError('expected a Term returned by acquire()', { backend: 'memory' });
}

function lost(term: Term, reason: string): LockLostError {
  return new LockLostError(`term ${term.token} of ${JSON.stringify(term.holder)} is over: ${reason}`, { backend: 'memory', reason });
}
