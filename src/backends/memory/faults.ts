import type { Clock, Timer } from '../../core/clock.js';
import { Problems } from '../../core/options.js';

/**
 * Per-client fault injection for the memory backend (`lock.faults`). The transport that applies
 * these faults is in network.ts.
 */

export interface LatencyOptions {
  /** One-way delay of every message (request, response, watch delivery), ms. A round trip takes twice this. */
  latencyMs?: number;
  /** Extra one-way delay, uniform in [0, jitterMs), drawn from the lock's `random` option. Requests and responses may then reorder; watch deliveries never do. */
  jitterMs?: number;
}

/** @internal */
export interface FaultState {
  latencyMs: number;
  jitterMs: number;
  dropRequests: number;
  dropResponses: number;
  partitioned: boolean;
  healTimer: Timer | undefined;
  requests: number;
  dropped: number;
  healListeners: Set<() => void>;
}

/**
 * Fault injection for one client (`lock.faults`). Faults apply to messages sent after the call;
 * a partition also loses messages already in flight when they arrive.
 *
 * ```ts
 * lock.faults.set({ latencyMs: 50 });   // every request takes 100 ms round trip, every watch delivery 50 ms
 * lock.faults.dropRequests();            // the next request never reaches the store → DeadlineExceededError after requestTimeoutMs
 * lock.faults.dropResponses();           // the next request is APPLIED but its answer is lost → DeadlineExceededError (ambiguous)
 * lock.faults.partition(5_000);          // nothing gets through for 5 s of the client's clock (or until heal())
 * lock.faults.heal();                    // watches then deliver the latest state
 * ```
 */
export class Faults {
  readonly #s: FaultState;
  readonly #clock: Clock;

  /** @internal Created by `MemoryLock`. */
  constructor(clock: Clock, state: FaultState) {
    this.#clock = clock;
    this.#s = state;
  }

  /** Added latency for messages sent from now on. Negative or non-finite values throw `ConfigError`. */
  set(options: LatencyOptions): void {
    const p = new Problems();
    for (const name of ['latencyMs', 'jitterMs'] as const) {
      const v = options[name];
      if (v !== undefined) p.check(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${name} must be a finite number >= 0, got ${String(v)}`);
    }
    p.throwIfAny('memory');
    if (options.latencyMs !== undefined) this.#s.latencyMs = options.latencyMs;
    if (options.jitterMs !== undefined) this.#s.jitterMs = options.jitterMs;
  }

  /** The next `n` requests never arrive (the store is unchanged); each call fails with `DeadlineExceededError` after `requestTimeoutMs`. */
  dropRequests(n = 1): void {
    this.#s.dropRequests += checkCount(n);
  }

  /** The next `n` requests are applied by the store but their responses are lost: the ambiguous write. */
  dropResponses(n = 1): void {
    this.#s.dropResponses += checkCount(n);
  }

  /**
   * Cut this client off: every request, response and watch delivery is lost until `heal()` or, with
   * `ms`, until `ms` have passed on the client's clock. The store keeps running (and expiring keys).
   */
  partition(ms?: number): void {
    if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) {
      const p = new Problems();
      p.add(`partition(ms) needs a finite number >= 0, got ${String(ms)}`);
      p.throwIfAny('memory');
    }
    this.#s.healTimer?.cancel();
    this.#s.healTimer = undefined;
    this.#s.partitioned = true;
    if (ms !== undefined) this.#s.healTimer = this.#clock.setTimer(() => this.heal(), ms);
  }

  /** End a partition now; each open watch then receives the latest state. No effect when not partitioned. */
  heal(): void {
    this.#s.healTimer?.cancel();
    this.#s.healTimer = undefined;
    if (!this.#s.partitioned) return;
    this.#s.partitioned = false;
    for (const listener of [...this.#s.healListeners]) listener();
  }

  /** Clear every fault (latency, pending drops, partition). Counters are kept. */
  reset(): void {
    this.#s.latencyMs = 0;
    this.#s.jitterMs = 0;
    this.#s.dropRequests = 0;
    this.#s.dropResponses = 0;
    this.heal();
  }

  get partitioned(): boolean {
    return this.#s.partitioned;
  }
  get latencyMs(): number {
    return this.#s.latencyMs;
  }
  get jitterMs(): number {
    return this.#s.jitterMs;
  }
  /** Requests sent so far (each `acquire`/`renew`/`release`/`get` is one; an ambiguous acquire adds a re-read). */
  get requests(): number {
    return this.#s.requests;
  }
  /** Messages lost so far: dropped requests, dropped responses, and messages lost to a partition (watch deliveries included). */
  get dropped(): number {
    return this.#s.dropped;
  }
}

function checkCount(n: number): number {
  const p = new Problems();
  p.check(Number.isInteger(n) && n >= 0, `the number of messages to drop must be an integer >= 0, got ${String(n)}`);
  p.throwIfAny('memory');
  return n;
}

