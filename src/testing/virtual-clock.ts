import { MAX_TIMER_MS, flushMicrotasks, setLongTimer, sleepOn, type Clock, type Timer } from '../core/clock.js';

interface Pending {
  due: number;
  seq: number;
  fn: () => void;
}

export interface VirtualClockOptions {
  /** Initial monotonic time in ms. Default 0. */
  startMs?: number;
  /** Wall time at `startMs`. Default 2026-01-01T00:00:00Z, so runs are reproducible. */
  startDate?: Date;
  /** Upper bound on timers fired by one `advance`/`runUntilIdle`, so a runaway loop fails instead of hanging. Default 1,000,000. */
  maxTimersPerAdvance?: number;
}

/**
 * A clock that moves only when told to: `advance(ms)` fires due timers in order and lets the promise
 * continuations each timer starts run before the next timer fires. Exact and instant tests.
 *
 * `child({ rate, offset })` gives a clock on the same timeline that runs fast or slow (clock-rate
 * drift between processes) and can be `pause()`d like a stopped process: its timers wait until `resume()`.
 */
export class VirtualClock implements Clock {
  #now: number;
  readonly #startMs: number;
  readonly #startDate: number;
  readonly #maxTimers: number;
  #seq = 0;
  #fired = 0;
  readonly #pending = new Set<Pending>();

  /** This clock is its own timeline; its `child()` clocks share it. */
  get timeline(): object {
    return this;
  }

  constructor(options: VirtualClockOptions = {}) {
    this.#now = options.startMs ?? 0;
    this.#startMs = this.#now;
    this.#startDate = (options.startDate ?? new Date('2026-01-01T00:00:00Z')).getTime();
    this.#maxTimers = options.maxTimersPerAdvance ?? 1_000_000;
  }

  now(): number {
    return this.#now;
  }

  date(): Date {
    return new Date(this.#startDate + (this.#now - this.#startMs));
  }

  setTimer(fn: () => void, ms: number): Timer {
    return setLongTimer(() => this.#now, (run, delay) => this.#rawTimer(run, delay), fn, Number.isFinite(ms) ? ms : 0);
  }

  /**
   * Node's `setTimeout`, faithfully: a delay above `MAX_TIMER_MS` fires after 1 ms. Only reached
   * through `setLongTimer`, which never asks for more; kept so a clock without chunking shows the bug.
   */
  #rawTimer(fn: () => void, ms: number): Timer {
    const delay = ms > MAX_TIMER_MS ? 1 : Math.max(0, ms);
    const entry: Pending = { due: this.#now + delay, seq: this.#seq++, fn };
    this.#pending.add(entry);
    return { cancel: () => void this.#pending.delete(entry) };
  }

  /** How many timers have fired so far (a test's bound on busy loops: re-armed timers count each time). */
  get firedTimers(): number {
    return this.#fired;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** True when some timer is waiting: lets a test wait until the code under test has gone to sleep. */
  hasWaiters(): boolean {
    return this.#pending.size > 0;
  }

  /** When the next timer fires, or undefined when none is pending. */
  nextTimerAt(): number | undefined {
    return this.#earliest()?.due;
  }

  /** Moves time forward by `ms`, firing every timer that comes due on the way, in order. */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance(ms) needs ms >= 0, got ${ms}`);
    await this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to the absolute monotonic time `t` (no-op if `t` is in the past). */
  async advanceTo(t: number): Promise<void> {
    await flushMicrotasks();
    let fired = 0;
    for (;;) {
      const next = this.#earliest();
      if (!next || next.due > t) break;
      if (++fired > this.#maxTimers) throw new Error(`VirtualClock: more than ${this.#maxTimers} timers fired in one advance (a loop that never sleeps?)`);
      this.#pending.delete(next);
      this.#now = Math.max(this.#now, next.due);
      this.#fired += 1;
      next.fn();
      await flushMicrotasks();
    }
    this.#now = Math.max(this.#now, t);
    await flushMicrotasks();
  }

  /** Fires timers (moving time) until none is pending. Throws when more than `maxTimers` fire. */
  async runUntilIdle(maxTimers = this.#maxTimers): Promise<void> {
    for (let fired = 0; ; fired++) {
      await flushMicrotasks();
      const next = this.#earliest();
      if (!next) return;
      if (fired >= maxTimers) throw new Error(`VirtualClock.runUntilIdle: still busy after ${maxTimers} timers`);
      await this.advanceTo(next.due);
    }
  }

  /** Lets pending promise continuations run without moving time. */
  flush(): Promise<void> {
    return flushMicrotasks();
  }

  /** A clock on this timeline that runs at `rate` × real speed (1.01 = 1 % fast) and can be paused. */
  child(options: { rate?: number; offsetMs?: number } = {}): DriftingClock {
    return new DriftingClock(this, options.rate ?? 1, options.offsetMs ?? 0);
  }

  #earliest(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.#pending) if (!best || p.due < best.due || (p.due === best.due && p.seq < best.seq)) best = p;
    return best;
  }
}

/**
 * A process's view of a shared `VirtualClock`: its monotonic time runs at `rate`, and while
 * `pause()`d (SIGSTOP, a long GC) none of its timers fire; they run, oldest first, on `resume()`.
 */
export class DriftingClock implements Clock {
  readonly #base: VirtualClock;
  readonly #rate: number;
  readonly #origin: number;
  readonly #offset: number;
  #paused = false;
  #held: Array<() => void> = [];

  constructor(base: VirtualClock, rate: number, offsetMs: number) {
    if (!(rate > 0)) throw new RangeError(`rate must be > 0, got ${rate}`);
    this.#base = base;
    this.#rate = rate;
    this.#origin = base.now();
    this.#offset = offsetMs;
  }

  get rate(): number {
    return this.#rate;
  }

  /** The base `VirtualClock`'s timeline. */
  get timeline(): object {
    return this.#base;
  }

  get paused(): boolean {
    return this.#paused;
  }

  now(): number {
    return this.#origin + this.#offset + (this.#base.now() - this.#origin) * this.#rate;
  }

  date(): Date {
    return new Date(this.#base.date().getTime() + (this.now() - this.#base.now()));
  }

  setTimer(fn: () => void, ms: number): Timer {
    let cancelled = false;
    const run = (): void => {
      if (cancelled) return;
      if (this.#paused) this.#held.push(run);
      else fn();
    };
    const inner = this.#base.setTimer(run, Math.max(0, ms) / this.#rate);
    return {
      cancel: () => {
        cancelled = true;
        inner.cancel();
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Stop running this process's timers (they are held, not lost). */
  pause(): void {
    this.#paused = true;
  }

  /** Run the held timers, oldest first, and continue normally. */
  resume(): void {
    this.#paused = false;
    const held = this.#held;
    this.#held = [];
    for (const run of held) run();
  }
}
