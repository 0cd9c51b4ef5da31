import type { Clock, Timer } from '../../core/clock.js';
import { AbortedError, DeadlineExceededError } from '../../core/errors.js';
import { Faults, type FaultState } from './faults.js';

/**
 * The simulated network between one `MemoryLock` (a client, i.e. one process) and its `MemoryStore`,
 * with per-client fault injection.
 *
 * Every delay runs on the CLIENT's clock, so a paused `DriftingClock` holds this client's responses
 * and watch deliveries as well as its timers — exactly like a SIGSTOPped process whose sockets fill
 * up while it does not run. A message with no delay is delivered on a microtask instead of a timer,
 * so that code using the memory backend without faults needs nobody to advance a virtual clock;
 * when the client clock reports `paused` (a `DriftingClock`), even such a message goes through
 * `clock.setTimer(…, 0)` and is therefore held until `resume()`.
 */

export interface ExchangeOptions {
  /** For error messages ("acquire"). */
  what: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** @internal The transport used by `MemoryLock`: requests with a client-side deadline, and ordered watch channels. */
export class Network {
  readonly faults: Faults;
  readonly #s: FaultState;
  readonly #clock: Clock;
  readonly #random: () => number;

  constructor(clock: Clock, random: () => number) {
    this.#clock = clock;
    this.#random = random;
    this.#s = {
      latencyMs: 0,
      jitterMs: 0,
      dropRequests: 0,
      dropResponses: 0,
      partitioned: false,
      healTimer: undefined,
      requests: 0,
      dropped: 0,
      healListeners: new Set(),
    };
    this.faults = new Faults(clock, this.#s);
  }

  /**
   * One request/response. `serve` runs when the request arrives at the store (it is applied then,
   * whatever happens to the response). Rejects with `DeadlineExceededError` when no response arrived
   * within `timeoutMs` on the client clock, with `AbortedError` when `signal` aborts first.
   */
  exchange<T>(serve: () => T, options: ExchangeOptions): Promise<T> {
    const s = this.#s;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        timeout.cancel();
        options.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = (): void =>
        finish(() => reject(new AbortedError(`memory ${options.what} aborted`, { backend: 'memory', cause: options.signal?.reason })));
      if (options.signal?.aborted) {
        reject(new AbortedError(`memory ${options.what} aborted`, { backend: 'memory', cause: options.signal.reason }));
        return;
      }
      const timeout = this.#clock.setTimer(
        () => finish(() => reject(new DeadlineExceededError(`memory ${options.what}: no response within ${options.timeoutMs} ms`, { backend: 'memory' }))),
        options.timeoutMs,
      );
      options.signal?.addEventListener('abort', onAbort, { once: true });

      s.requests++;
      if (s.partitioned || this.#take('dropRequests')) {
        s.dropped++;
        return;
      }
      this.#later(() => {
        if (s.partitioned) {
          s.dropped++;
          return;
        }
        let result: T;
        try {
          result = serve();
        } catch (err) {
          this.#later(() => finish(() => reject(err)), this.#delay());
          return;
        }
        if (this.#take('dropResponses') || s.partitioned) {
          s.dropped++;
          return;
        }
        this.#later(() => {
          if (s.partitioned) {
            if (!settled) s.dropped++;
            return;
          }
          finish(() => resolve(result));
        }, this.#delay());
      }, this.#delay());
    });
  }

  /** An ordered channel for one watch: FIFO deliveries with latency, lost while partitioned. */
  channel(): Channel {
    return new Channel(this.#clock, () => this.#delay(), this.#s);
  }

  /** Calls `listener` each time a partition heals; returns the unsubscribe function. */
  onHeal(listener: () => void): () => void {
    this.#s.healListeners.add(listener);
    return () => void this.#s.healListeners.delete(listener);
  }

  #take(kind: 'dropRequests' | 'dropResponses'): boolean {
    if (this.#s[kind] <= 0) return false;
    this.#s[kind]--;
    return true;
  }

  #delay(): number {
    const { latencyMs, jitterMs } = this.#s;
    return latencyMs + (jitterMs > 0 ? this.#random() * jitterMs : 0);
  }

  #later(fn: () => void, ms: number): void {
    if (ms <= 0 && !isPaused(this.#clock)) queueMicrotask(fn);
    else this.#clock.setTimer(fn, ms);
  }
}

/** @internal */
export class Channel {
  readonly #clock: Clock;
  readonly #delay: () => number;
  readonly #s: FaultState;
  readonly #queue: Array<{ due: number; fn: () => void }> = [];
  #lastDue = -Infinity;
  #timer: Timer | undefined;
  #armed = false;
  #closed = false;

  constructor(clock: Clock, delay: () => number, state: FaultState) {
    this.#clock = clock;
    this.#delay = delay;
    this.#s = state;
  }

  /** Deliver `fn` after the current latency, never before anything sent earlier on this channel. */
  send(fn: () => void): void {
    if (this.#closed) return;
    const due = Math.max(this.#clock.now() + this.#delay(), this.#lastDue);
    this.#lastDue = due;
    this.#queue.push({ due, fn });
    if (!this.#armed) this.#arm();
  }

  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(): void {
    const head = this.#queue[0];
    if (!head || this.#closed) return;
    this.#armed = true;
    const wait = head.due - this.#clock.now();
    if (wait <= EPSILON && !isPaused(this.#clock)) queueMicrotask(() => this.#fire());
    else this.#timer = this.#clock.setTimer(() => this.#fire(), Math.max(0, wait));
  }

  #fire(): void {
    this.#armed = false;
    this.#timer = undefined;
    if (this.#closed) return;
    const now = this.#clock.now();
    while (this.#queue.length > 0 && this.#queue[0]!.due <= now + EPSILON) {
      const { fn } = this.#queue.shift()!;
      if (this.#s.partitioned) this.#s.dropped++;
      else fn();
      if (this.#closed) return;
    }
    this.#arm();
  }
}

/** A `DriftingClock` rate makes timer due times inexact in floating point; this much early is "due". */
const EPSILON = 1e-6;

function isPaused(clock: Clock): boolean {
  return (clock as { paused?: unknown }).paused === true;
}
