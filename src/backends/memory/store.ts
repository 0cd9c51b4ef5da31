import { systemClock, type Clock, type Timer } from '../../core/clock.js';
import type { LockState } from '../../core/lock.js';
import { Problems } from '../../core/options.js';

/**
 * An in-process DCS with the semantics of the real ones: compare-and-set on a fencing token,
 * server-side TTL expiry on the store's own clock, ordered change notifications and one global
 * revision counter. `MemoryLock` is its client; it reaches these operations through a simulated
 * network (latency, lost messages, partitions), so the methods below are what "the server" does
 * when a request arrives. Calling them directly acts like an operator with direct access to the
 * server (`etcdctl`), bypassing every fault.
 *
 * Revision rules (what makes tokens fencing tokens):
 * - every change of holder or successor — create, delete, expiry, nomination, nomination expiry —
 *   bumps the global `revision` by one;
 * - a record's `token` is the revision its creation produced, so tokens strictly increase across
 *   terms, on every key of the store;
 * - a renew (refresh) only moves `expiresAt`/`renewedAt`; like an etcd lease keep-alive it is not a
 *   change: no new revision and no watch notification.
 *
 * Liveness: a record is live while `clock.now() < expiresAt`. Every operation first removes what has
 * expired, so an operation arriving at exactly `expiresAt` sees the key free even if the expiry timer
 * has not fired yet (several timers due at the same virtual instant fire in creation order).
 */

export interface MemoryStoreOptions {
  /** The server's clock ("true" time for TTLs). Default: the real clock. */
  clock?: Clock;
}

/** A stored leader record, as the server keeps it. */
export interface StoredRecord {
  readonly holder: string;
  readonly token: bigint;
  readonly ttlMs: number;
  /** Store clock, monotonic ms. */
  readonly expiresAt: number;
  readonly acquiredAt: Date;
  readonly renewedAt: Date;
  /**
   * Id of the acquire request that created the record. A client whose acquire failed ambiguously
   * (response lost) re-reads and recognises its own write by this id: the holder name alone cannot
   * tell it apart from another incarnation with the same identity.
   */
  readonly requestId: string | undefined;
  /** Published by the holder with its term (`LeaderRecord.metadata`). */
  readonly metadata?: string;
}

export type CreateResult = { ok: true; token: bigint } | { ok: false; state: LockState };
/** `expired`: no record any more; `taken`: a record with another token (or holder) is there. */
export type CasResult = { ok: true } | { ok: false; reason: 'expired' | 'taken' };
export type StoreListener = (state: LockState) => void;

interface Nomination {
  successor: string;
  expiresAt: number;
  timer: Timer;
}

interface Entry {
  record: (StoredRecord & { timer: Timer }) | undefined;
  nomination: Nomination | undefined;
  listeners: Set<StoreListener>;
}

export class MemoryStore {
  readonly clock: Clock;
  #revision = 0n;
  readonly #entries = new Map<string, Entry>();

  constructor(options: MemoryStoreOptions = {}) {
    const p = new Problems();
    const clock = options.clock ?? systemClock;
    p.check(typeof clock?.now === 'function' && typeof clock?.setTimer === 'function', 'clock must implement Clock (now, date, setTimer, sleep)');
    p.throwIfAny('memory');
    this.clock = clock;
  }

  /** The global revision: how many changes the store has seen. The next record's token is `revision + 1n`. */
  get revision(): bigint {
    return this.#revision;
  }

  /** The state of `key` now, as a consistent read would return it. No faults apply. */
  peek(key = 'leader'): LockState {
    return this.#state(this.#entry(key));
  }

  /** The stored record of `key` (with its expiry and creating request id), or undefined when free. */
  record(key = 'leader'): StoredRecord | undefined {
    const r = this.#entry(key).record;
    if (!r) return undefined;
    const { timer: _timer, ...record } = r;
    return { ...record, acquiredAt: new Date(r.acquiredAt), renewedAt: new Date(r.renewedAt) };
  }

  /** Number of watch subscriptions on `key` (for leak assertions). */
  watchers(key = 'leader'): number {
    return this.#entries.get(key)?.listeners.size ?? 0;
  }

  /**
   * Create the record if no live record exists and no live nomination names someone else.
   * The named successor's create removes the nomination. Token = the new revision.
   */
  create(key: string, holder: string, ttlMs: number, requestId?: string, metadata?: string): CreateResult {
    const e = this.#entry(key);
    if (e.record || (e.nomination && e.nomination.successor !== holder)) return { ok: false, state: this.#state(e) };
    if (e.nomination) this.#dropNomination(e);
    const token = ++this.#revision;
    const now = this.clock.date();
    e.record = { holder, token, ttlMs, expiresAt: 0, acquiredAt: now, renewedAt: now, requestId, ...(metadata === undefined ? {} : { metadata }), timer: { cancel() {} } };
    this.#armRecord(key, e, ttlMs);
    this.#notify(e);
    return { ok: true, token };
  }

  /** Compare-and-refresh: if the record still has `token` (and `holder`), it lives `ttlMs` from now. */
  refresh(key: string, token: bigint, holder: string, ttlMs: number): CasResult {
    const e = this.#entry(key);
    if (!e.record) return { ok: false, reason: 'expired' };
    if (e.record.token !== token || e.record.holder !== holder) return { ok: false, reason: 'taken' };
    e.record = { ...e.record, ttlMs, renewedAt: this.clock.date() };
    this.#armRecord(key, e, ttlMs);
    return { ok: true };
  }

  /**
   * Compare-and-delete on `token`. With `nominate`, writes a successor nomination in the same change;
   * it expires `nominate.ttlMs` from now on the store clock and is never renewed.
   */
  delete(key: string, token: bigint, holder: string, nominate?: { successor: string; ttlMs: number }): CasResult {
    const e = this.#entry(key);
    if (!e.record) return { ok: false, reason: 'expired' };
    if (e.record.token !== token || e.record.holder !== holder) return { ok: false, reason: 'taken' };
    e.record.timer.cancel();
    e.record = undefined;
    if (nominate) {
      if (e.nomination) e.nomination.timer.cancel();
      const expiresAt = this.clock.now() + nominate.ttlMs;
      const timer = this.clock.setTimer(() => this.#entry(key), nominate.ttlMs, { unref: true });
      e.nomination = { successor: nominate.successor, expiresAt, timer };
    }
    this.#revision++;
    this.#notify(e);
    return { ok: true };
  }

  /** Operator action: remove `key`'s record whoever holds it (as `etcdctl del`). Returns whether there was one. */
  forceDelete(key = 'leader'): boolean {
    const e = this.#entry(key);
    if (!e.record) return false;
    e.record.timer.cancel();
    e.record = undefined;
    this.#revision++;
    this.#notify(e);
    return true;
  }

  /** Subscribe to changes of `key`: the listener gets the new state synchronously, after every change, in order. */
  subscribe(key: string, listener: StoreListener): () => void {
    const e = this.#entry(key);
    e.listeners.add(listener);
    return () => void e.listeners.delete(listener);
  }

  /** The entry of `key` after removing what has expired by now (each removal is a change). */
  #entry(key: string): Entry {
    let e = this.#entries.get(key);
    if (!e) {
      e = { record: undefined, nomination: undefined, listeners: new Set() };
      this.#entries.set(key, e);
    }
    const now = this.clock.now();
    if (e.record && e.record.expiresAt <= now) {
      e.record.timer.cancel();
      e.record = undefined;
      this.#revision++;
      this.#notify(e);
    }
    if (e.nomination && e.nomination.expiresAt <= now) {
      this.#dropNomination(e);
      this.#revision++;
      this.#notify(e);
    }
    return e;
  }

  #dropNomination(e: Entry): void {
    e.nomination?.timer.cancel();
    e.nomination = undefined;
  }

  #armRecord(key: string, e: Entry, ttlMs: number): void {
    const r = e.record!;
    r.timer.cancel();
    // The timer only triggers the sweep in #entry, which is what decides (and is exact at any instant).
    const timer = this.clock.setTimer(() => this.#entry(key), ttlMs, { unref: true });
    e.record = { ...r, expiresAt: this.clock.now() + ttlMs, timer };
  }

  #state(e: Entry): LockState {
    const state: LockState = {};
    const r = e.record;
    if (r) {
      state.leader = { holder: r.holder, token: r.token, ttlMs: r.ttlMs, live: true, acquiredAt: new Date(r.acquiredAt), renewedAt: new Date(r.renewedAt) };
      if (r.metadata !== undefined) state.leader.metadata = r.metadata;
    }
    if (e.nomination) state.successor = e.nomination.successor;
    return state;
  }

  #notify(e: Entry): void {
    if (e.listeners.size === 0) return;
    const state = this.#state(e);
    for (const listener of [...e.listeners]) listener(state);
  }
}
