/**
 * Time. This is the only module that touches real time (`performance.now`, `Date`, `setTimeout`);
 * everything else schedules through a `Clock`, so tests can run it on `VirtualClock`.
 *
 * `now()` is monotonic milliseconds and is what every safety decision uses; `date()` is wall time and
 * is only written into records for humans and foreign readers (Kubernetes `renewTime`), never trusted.
 */

export interface Timer {
  /** Idempotent. */
  cancel(): void;
}

export interface TimerOptions {
  /** Real clock only: do not keep the process alive for this timer. Default false. */
  unref?: boolean;
}

export interface Clock {
  /** Monotonic milliseconds. Never goes backwards. */
  now(): number;
  /** Wall-clock time; may jump. For display and for records foreign readers expect, never for deadlines. */
  date(): Date;
  /** Runs `fn` once, `ms` from now (clamped at 0). */
  setTimer(fn: () => void, ms: number, options?: TimerOptions): Timer;
  /** Resolves after `ms`; rejects with `signal.reason` if the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Optional: an object shared by every clock on the same timeline (real time; one `VirtualClock` and
   * its `child()` clocks). Lets a component that needs two clocks to agree (the memory store and its
   * locks) reject a mix such as a store on a `VirtualClock` and a lock on the system clock.
   */
  readonly timeline?: object;
}

/** Whether two clocks may be mixed: on the same timeline, or one of them does not say. */
export function sameTimeline(a: Clock, b: Clock): boolean {
  return a.timeline === undefined || b.timeline === undefined || a.timeline === b.timeline;
}

/**
 * The longest delay a Node timer honours: 2^31−1 ms (~24.8 days). Node fires a longer `setTimeout`
 * after 1 ms (with a TimeoutOverflowWarning), so a timer armed from a foreign record's huge duration
 * (a Lease with `leaseDurationSeconds: 3000000`) would re-arm every millisecond. Our own duration
 * options are capped at this (`checkDuration`); longer waits go through `setLongTimer`.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs `fn` once, `ms` after `now()`, on a raw timer that only honours delays up to `MAX_TIMER_MS`:
 * a longer wait is armed in chunks of at most `MAX_TIMER_MS` (one firing per ~24.8 days). The one
 * place that handles long timers, for the real clock and `VirtualClock` alike. NaN counts as 0.
 */
export function setLongTimer(now: () => number, raw: (fn: () => void, ms: number) => Timer, fn: () => void, ms: number): Timer {
  const due = now() + (ms > 0 ? ms : 0);
  let cancelled = false;
  let current: Timer | undefined;
  const arm = (): void => {
    if (cancelled) return;
    const left = due - now();
    current = left > MAX_TIMER_MS ? raw(arm, MAX_TIMER_MS) : raw(fn, Math.max(0, left));
  };
  arm();
  return {
    cancel: () => {
      cancelled = true;
      current?.cancel();
    },
  };
}

/** Sleep built on `setTimer`, shared by every clock implementation. */
export function sleepOn(clock: Pick<Clock, 'setTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal!.reason);
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const REAL_TIME = Object.freeze({ name: 'real time' });

class NodeTimer implements Timer {
  readonly #handle: ReturnType<typeof setTimeout>;
  constructor(handle: ReturnType<typeof setTimeout>) {
    this.#handle = handle;
  }
  cancel(): void {
    clearTimeout(this.#handle);
  }
}

class SystemClock implements Clock {
  readonly timeline: object = REAL_TIME;
  now(): number {
    return performance.now();
  }
  date(): Date {
    return new Date();
  }
  setTimer(fn: () => void, ms: number, options?: TimerOptions): Timer {
    // Fast path (every renew arms timers, 1,000 leaders arm thousands a second): one Node timer and
    // one small object, no closures. Same behaviour as setLongTimer for delays Node honours.
    if (!(ms > MAX_TIMER_MS)) {
      const handle = setTimeout(fn, ms > 0 ? ms : 0);
      if (options?.unref) handle.unref();
      return new NodeTimer(handle);
    }
    return setLongTimer(
      () => this.now(),
      (run, delay) => {
        const handle = setTimeout(run, delay);
        if (options?.unref) handle.unref();
        return { cancel: () => clearTimeout(handle) };
      },
      fn,
      ms,
    );
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

/** The real clock: `performance.now()` for monotonic time. */
export const systemClock: Clock = Object.freeze(new SystemClock());

/**
 * The host's monotonic clock in milliseconds (CLOCK_MONOTONIC on Linux, mach_absolute_time on
 * macOS): unlike `performance.now()`, which counts from each process's start, every process on the
 * host reads the same value. Only for timestamps that cross to another process on the same host
 * (the reaper of `leaderlock run`), which must still bound what it derives from them.
 */
export function hostMonotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/**
 * Lets every pending promise continuation run (a macrotask boundary). Used by `VirtualClock` between
 * timers so that async code reacting to one timer runs before the next one fires.
 */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
