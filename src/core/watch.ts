import { sameState, type LockState } from './lock.js';

/**
 * The delivery half of every `watch`: a backend pushes states as it learns them; the consumer gets
 * the latest one each time it asks, never the same state twice in a row, never an older one. This is
 * what makes "intermediate states may be coalesced" safe: the consumer always sees the newest truth.
 */
export class StateFeed implements AsyncIterable<LockState> {
  #latest: LockState | undefined;
  #delivered: LockState | undefined;
  #waiter: ((r: IteratorResult<LockState>) => void) | undefined;
  #failWaiter: ((e: unknown) => void) | undefined;
  #done = false;
  #error: unknown;

  constructor(signal: AbortSignal) {
    if (signal.aborted) this.#done = true;
    else signal.addEventListener('abort', () => this.end(), { once: true });
  }

  get closed(): boolean {
    return this.#done;
  }

  /** Offer a state; ignored when it equals what the consumer already has. */
  push(state: LockState): void {
    if (this.#done) return;
    this.#latest = state;
    if (this.#waiter && !sameState(this.#latest, this.#delivered)) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      this.#delivered = state;
      this.#latest = undefined;
      w({ value: state, done: false });
    }
  }

  /** Finish the iteration (normally, or with an error the consumer will see). */
  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const w = this.#waiter;
    const f = this.#failWaiter;
    this.#waiter = this.#failWaiter = undefined;
    if (error !== undefined) f?.(error);
    else w?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<LockState> {
    return {
      next: () => {
        if (this.#latest && !sameState(this.#latest, this.#delivered) && !this.#done) {
          const s = this.#latest;
          this.#delivered = s;
          this.#latest = undefined;
          return Promise.resolve({ value: s, done: false });
        }
        if (this.#done) return this.#error !== undefined ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.#waiter = resolve;
          this.#failWaiter = reject;
        });
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
