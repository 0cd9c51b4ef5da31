import type { LockState } from '../../core/lock.js';
import { nominationOf, type KubeObject } from './kinds.js';
import type { LeaderRecord } from '../../core/lock.js';
import { durationMs, recordIdentity, toLeaderRecord, type WireRecord } from './records.js';

/**
 * Observer-side expiry, as client-go (`observedTime`) and Patroni (`_leader_observed_time`) judge it:
 * Kubernetes has no server-side TTL, so a record is live until *this process* has seen it unchanged
 * for its recorded duration, measured on its own monotonic clock. Wall-clock times in the record are
 * never compared with our clock (they may be skewed).
 *
 * "Unchanged" compares the identity of the write (holder, token, renewTime, acquireTime, duration),
 * not `resourceVersion`: another client patching an unrelated field (a label, Patroni's `optime`)
 * must not keep a dead leader alive forever, nor may it cut a live one short.
 *
 * A process that sees a record for the first time starts counting then: a new process waits a full
 * duration before taking over a record it has never seen change, unless the record is released.
 */
export class ObservedValue {
  #identity: string | undefined;
  #seenAt = 0;

  /**
   * Records an observation of `identity` at monotonic `now` and returns when it expires (monotonic ms).
   * The countdown restarts only when the identity changes. `seenAt` lets a writer start the countdown at
   * the send time of its own confirmed write (earlier than now: the conservative side).
   */
  observe(identity: string, durationMs: number, now: number, seenAt: number = now): number {
    if (identity !== this.#identity) {
      this.#identity = identity;
      this.#seenAt = Math.min(seenAt, now);
    }
    return this.#seenAt + durationMs;
  }

  /** Forget what was seen (the object disappeared). */
  reset(): void {
    this.#identity = undefined;
    this.#seenAt = 0;
  }

  get identity(): string | undefined {
    return this.#identity;
  }
}

/** One read of the lock object: the object (undefined on 404) and its parsed record. */
export interface Snapshot {
  obj: KubeObject | undefined;
  wire: WireRecord | undefined;
}

/**
 * This process's judgement of one lock object: the leader record (live or expired) and a handover
 * nomination. A nomination counts only while nobody holds the record, and expires by observation
 * after the observer's own ttl (the released record's duration is client-go's 1 s, not the lease's).
 */
export class LockObserver {
  readonly #leader = new ObservedValue();
  readonly #successor = new ObservedValue();
  /** The last holder this observer judged live, and when its countdown ends: outlives a deletion of the object. */
  #lastLive: { record: LeaderRecord; expiresAt: number } | undefined;
  readonly #ttlMs: number;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** The state now, and when it changes by itself (an expiry), if it will. */
  judge(snap: Snapshot, now: number): { state: LockState; changesAt: number | undefined } {
    const { obj, wire } = snap;
    if (!obj || !wire) {
      this.#leader.reset();
      this.#successor.reset();
      // Deleted (`kubectl delete lease` to force a re-election) while a holder was live: that holder
      // (client-go keeps acting for up to RetryPeriod + RenewDeadline) may still act until its
      // countdown ends, so it stays the live leader for us until then (issue 16, item 1).
      const ghost = this.#lastLive;
      if (ghost && now < ghost.expiresAt) return { state: { leader: { ...ghost.record } }, changesAt: ghost.expiresAt };
      this.#lastLive = undefined;
      return { state: {}, changesAt: undefined };
    }
    const state: LockState = {};
    let changesAt: number | undefined;
    if (wire.holder !== undefined) {
      const expiresAt = this.#leader.observe(recordIdentity(wire), durationMs(wire, this.#ttlMs), now);
      const leader = toLeaderRecord(wire, now < expiresAt, this.#ttlMs);
      if (leader) state.leader = leader;
      if (now < expiresAt) changesAt = expiresAt;
      this.#lastLive = leader && now < expiresAt ? { record: leader, expiresAt } : undefined;
    } else {
      this.#leader.reset();
      this.#lastLive = undefined;
    }
    const successor = nominationOf(obj, wire);
    if (successor !== undefined) {
      const expiresAt = this.#successor.observe(`${successor}\n${recordIdentity(wire)}`, this.#ttlMs, now);
      if (now < expiresAt) {
        state.successor = successor;
        changesAt = Math.min(changesAt ?? Infinity, expiresAt);
      }
    } else this.#successor.reset();
    return { state, changesAt };
  }

  /** Our release was confirmed: the record we held is no longer live, whatever happens to the object next. */
  released(): void {
    this.#lastLive = undefined;
  }

  /** Our own confirmed write: its countdown starts at the write's send time (earlier than now: the safe side). */
  wrote(record: WireRecord, now: number, sentAt: number): void {
    const expiresAt = this.#leader.observe(recordIdentity(record), durationMs(record, this.#ttlMs), now, sentAt);
    const leader = toLeaderRecord(record, now < expiresAt, this.#ttlMs);
    this.#lastLive = leader && now < expiresAt ? { record: leader, expiresAt } : undefined;
    this.#successor.reset();
  }
}
