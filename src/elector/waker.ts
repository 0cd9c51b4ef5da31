import { whenAborted } from '../core/abort.js';
import type { Clock } from '../core/clock.js';

export type WakeResult = 'woken' | 'timeout' | 'aborted';

/**
 * A sleep that something else can cut short. The elector sleeps on it between campaign attempts and
 * renewals; the watch wakes it the moment the lock is free (no polling wait for a handover) or looks
 * taken (check at once). A wake with nobody waiting is remembered for the next wait.
 */
export class Waker {
  #pending: ((r: WakeResult) => void) | undefined;
  #woken = false;

  wake(): void {
    if (this.#pending) this.#pending('woken');
    else this.#woken = true;
  }

  wait(clock: Clock, ms: number, signal: AbortSignal): Promise<WakeResult> {
    if (signal.aborted) return Promise.resolve('aborted');
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve('woken');
    }
    return new Promise<WakeResult>((resolve) => {
      const done = (r: WakeResult): void => {
        timer.cancel();
        waiting.delete(onAbort);
        this.#pending = undefined;
        resolve(r);
      };
      const onAbort = (): void => done('aborted');
      const timer = clock.setTimer(() => done('timeout'), ms);
      const waiting = whenAborted(signal, onAbort);
      this.#pending = done;
    });
  }
}
