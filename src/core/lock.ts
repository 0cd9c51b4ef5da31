import type { EventEmitter } from 'node:events';
import type { Clock, Timer } from './clock.js';
import { systemClock } from './clock.js';
import { LockLostError, type Backend } from './errors.js';

/**
 * The contract every backend implements. Only types and the `Term` class live here; no backend code.
 */

/** What the DCS says about the current holder. */
export interface LeaderRecord {
  /** Never '' (no holder = no record). */
  holder: string;
  /** Fencing token of the holder's term; strictly increasing across terms (see the README, Tokens). */
  token: bigint;
  /** Lease duration the holder recorded, in ms. */
  ttlMs: number;
  /** false: still stored, but judged expired by this observer (Kubernetes: unchanged for ttl on our clock). */
  live: boolean;
  acquiredAt?: Date;
  renewedAt?: Date;
  transitions?: number;
  /**
   * What the holder published with its term (`acquire(holder, { metadata })`, the elector's
   * `metadata` option): its address, say. At most 1 KiB of UTF-8. Stored beside the record (etcd
   * `<key>-meta` on the same lease, Consul `<key>-meta` on the same session, Kubernetes annotation
   * `leaderlock.io/metadata`), so Patroni and client-go read our records unchanged.
   */
  metadata?: string;
}

export interface LockState {
  leader?: LeaderRecord;
  /** Candidate named by a handover that is still in force. */
  successor?: string;
}

export type LostReason = 'expired' | 'deadline' | 'taken' | 'released' | 'stopped' | 'handover' | 'unavailable';

export interface TermInit {
  holder: string;
  token: bigint;
  /** Monotonic time until which the term is valid (send time of the last confirmed refresh + ttl·(1 − drift)). */
  validUntil: number;
  clock?: Clock;
  /** For error messages. */
  backend?: Backend;
}

/**
 * One tenure of one holder. Created by a lock on a successful `acquire`, extended by `renew`, ended
 * once. `signal` aborts when the term ends; `isValid()` recomputes from the clock, so it is right even
 * when the abort has not been delivered yet (after a process pause Node runs pending I/O callbacks
 * before overdue timers). Check it right before acting, and pass `token` to what you protect.
 */
export class Term {
  readonly holder: string;
  readonly token: bigint;
  readonly backend: Backend | undefined;
  readonly #clock: Clock;
  readonly #controller = new AbortController();
  #validUntil: number;
  #timer: Timer | undefined;
  /** The validUntil the pending timer was armed for. */
  #armedFor = 0;
  #endReason: LostReason | undefined;

  constructor(init: TermInit) {
    this.holder = init.holder;
    this.token = init.token;
    this.backend = init.backend;
    this.#clock = init.clock ?? systemClock;
    this.#validUntil = init.validUntil;
    this.#arm();
  }

  /** Aborts once, when the term ends; `signal.reason` is a `LockLostError` whose `reason` is the `LostReason`. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Monotonic ms (the lock's clock). Only confirmed renewals move it, and only forward. */
  get validUntil(): number {
    return this.#validUntil;
  }

  get ended(): boolean {
    return this.#endReason !== undefined;
  }

  /** Why the term ended, once it has. */
  get endReason(): LostReason | undefined {
    return this.#endReason;
  }

  /** Not ended and the local monotonic clock is before `validUntil`. */
  isValid(): boolean {
    return this.#endReason === undefined && this.#clock.now() < this.#validUntil;
  }

  /** Milliseconds of validity left (0 when not valid). */
  remainingMs(): number {
    return this.isValid() ? this.#validUntil - this.#clock.now() : 0;
  }

  /**
   * Called by a lock after a confirmed refresh. Moves `validUntil` forward only; a smaller value is
   * ignored (a late reply to an older renew must not shorten nor lengthen wrongly). No effect once ended.
   */
  extend(validUntil: number): void {
    if (this.#endReason !== undefined || validUntil <= this.#validUntil) return;
    this.#validUntil = validUntil;
    this.#arm();
  }

  /** Idempotent: the first reason wins. Aborts `signal`. */
  end(reason: LostReason): void {
    if (this.#endReason !== undefined) return;
    this.#endReason = reason;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#controller.abort(
      new LockLostError(`term ${this.token} of ${JSON.stringify(this.holder)} ended: ${reason}`, { backend: this.backend, reason }),
    );
  }

  toJSON(): { holder: string; token: string; validUntil: number; ended: LostReason | undefined } {
    return { holder: this.holder, token: this.token.toString(), validUntil: this.#validUntil, ended: this.#endReason };
  }

  #arm(): void {
    // The lock's own guarantee: the term ends at validUntil at the latest, whatever the caller does.
    // A renew only moves validUntil forward, so the armed timer is left alone (no clear + set per
    // renew); when it fires it re-arms for the rest if validUntil moved since it was armed.
    if (this.#timer) return;
    this.#armedFor = this.#validUntil;
    this.#timer = this.#clock.setTimer(this.#fire, this.#validUntil - this.#clock.now(), { unref: true });
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    if (this.#validUntil > this.#armedFor) this.#arm();
    else this.end('expired');
  };
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Published with the term for followers (`LeaderRecord.metadata`); at most `MAX_METADATA_BYTES` of UTF-8, else `ConfigError`. */
  metadata?: string;
}
export interface RenewOptions {
  signal?: AbortSignal;
}
export interface ReleaseOptions {
  /** Name a successor: other leaderlock candidates hold back for ttl, the named one acquires at once. */
  successor?: string;
}

export interface LeaderLockEvents {
  warning: [err: Error];
}

/**
 * One leader key in one DCS. Each method is one logical operation. Errors: `BackendUnavailableError`
 * (and its subclass `DeadlineExceededError`) when the backend cannot be reached, `ForbiddenError`
 * when it refuses us, `ConfigError` for bad arguments. Never emits 'error'; may emit 'warning'.
 */
export interface LeaderLock extends EventEmitter {
  /** Lease duration in ms, fixed at construction (default 15000). */
  readonly ttlMs: number;
  /** Backend name, for logs and metrics labels (optional for users' own locks). */
  readonly backend?: Backend;
  /** The key (or object) this lock guards, for logs and metrics labels. */
  readonly key?: string;
  /** The clock the lock's Terms run on; the elector uses it too so both agree on deadlines. */
  readonly clock?: Clock;
  /** Clock-rate tolerance the lock applies to validUntil (default 0.01). */
  readonly drift?: number;
  /** Deadline of one logical request to the backend, ms; `LeaderElector.explain()` checks it against the renew deadline. */
  readonly requestTimeoutMs?: number;

  /**
   * Atomically create the record for `holder` if nobody live holds it (and no other candidate is the
   * named successor). Resolves a new `Term` on success, `undefined` when another live holder has it —
   * including an earlier incarnation with our own identity. An ambiguous write is re-read before
   * deciding. Throws `MalformedRecordError` when the stored record cannot be parsed (left untouched).
   */
  acquire(holder: string, options?: AcquireOptions): Promise<Term | undefined>;

  /**
   * Prove the key is still ours (CAS on our token) and refresh what keeps it alive; extends and
   * returns the same `Term`. Throws `LockLostError` (and ends the term) when the key is provably not
   * ours; throws `BackendUnavailableError` when that cannot be decided — the term stays as it is and
   * expires at `validUntil` unless a later renew succeeds.
   */
  renew(term: Term, options?: RenewOptions): Promise<Term>;

  /**
   * Compare-and-delete: removes the record only if it is still this term's (token match), so it never
   * deletes a successor's. Works on an already ended term too (the elector ends the term, waits for the
   * guarded work to stop, then releases). Ends the term ('released', or 'handover' with a successor). Resolves false
   * when the record was no longer ours. Throws `BackendUnavailableError` when it could not be decided;
   * the caller may retry with the same term.
   */
  release(term: Term, options?: ReleaseOptions): Promise<boolean>;

  /** One consistent read of the record (and a live successor nomination). */
  get(): Promise<LockState>;

  /**
   * The current state first, then the latest state after every change, in order, never going back.
   * Intermediate states may be coalesced, but every change of holder or token is seen. Ends when
   * `signal` aborts. Transient backend failures are retried inside; warnings are emitted.
   */
  watch(options: { signal: AbortSignal }): AsyncIterable<LockState>;

  /** Idempotent. Releases what it still holds, ends the lease/session when it is the last user. */
  close(): Promise<void>;
}

/** Whether two states differ in what observers care about (holder, token, liveness, successor). */
export function sameState(a: LockState | undefined, b: LockState | undefined): boolean {
  if (!a || !b) return a === b;
  const la = a.leader;
  const lb = b.leader;
  if (a.successor !== b.successor) return false;
  if (!la || !lb) return la === lb;
  return la.holder === lb.holder && la.token === lb.token && la.live === lb.live && la.metadata === lb.metadata;
}
