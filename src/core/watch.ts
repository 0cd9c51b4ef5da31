import { sameState, type LockState } from './lock.js';

/**
 * The delivery half of every `watch`: a backend pushes states as it learns them; the consumer gets
 * them in order, never the same state twice in a row, never an older one. States are coalesced only
 * while they keep the same holder and token (a successor or liveness flip is replaced by the newer
 * one), so a consumer slower than the backend still sees every change of holder or token — the watch
 * rule of the contract — and always ends on the newest truth.
 */
export class StateFeed implements AsyncIterable<LockState> {
  /** States not yet taken by the consumer, oldest first; consecutive entries differ in holder or token. */
  readonly #pending: LockState[] = [];
  #delivered: LockState | undefined;
  #waiter: ((r: IteratorResult<LockState>) => void) | undefined;
  #failWaiter: ((e: unknown) => void) | undefined;
  #done = false;
  #error: unknown;

  /**
   * A consumer that stops reading while terms keep changing would make the queue grow without end; past
   * this many undelivered holder/token changes, the newest replaces the last queued one.
   */
  static readonly maxPending = 1024;

  constructor(signal: AbortSignal) {
    if (signal.aborted) this.#done = true;
    else signal.addEventListener('abort', () => this.end(), { once: true });
  }

  get closed(): boolean {
    return this.#done;
  }

  /** Offer a state; ignored when it equals what the consumer already has (or will get next). */
  push(state: LockState): void {
    if (this.#done) return;
    const last = this.#pending.at(-1);
    if (last === undefined) {
      if (sameState(state, this.#delivered)) return;
      if (this.#waiter) {
        const w = this.#waiter;
        this.#waiter = this.#failWaiter = undefined;
        this.#delivered = state;
        w({ value: state, done: false });
        return;
      }
      this.#pending.push(state);
      return;
    }
    if (sameLeader(state, last) || this.#pending.length >= StateFeed.maxPending) {
      // Coalesce: same holder and token as the newest queued state (only successor/liveness differ).
      this.#pending[this.#pending.length - 1] = state;
      const before = this.#pending.length > 1 ? this.#pending.at(-2) : this.#delivered;
      if (sameState(state, before)) this.#pending.pop();
      return;
    }
    this.#pending.push(state);
  }

  /** Finish the iteration (normally, or with an error the consumer will see). */
  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#pending.length = 0;
    const w = this.#waiter;
    const f = this.#failWaiter;
    this.#waiter = this.#failWaiter = undefined;
    if (error !== undefined) f?.(error);
    else w?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<LockState> {
    return {
      next: () => {
        if (!this.#done && this.#pending.length > 0) {
          const s = this.#pending.shift()!;
          this.#delivered = s;
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

/** Same holder and token (or both without a leader): what the watch rule does not let us coalesce away. */
function sameLeader(a: LockState, b: LockState): boolean {
  if (!a.leader || !b.leader) return a.leader === b.leader;
  return a.leader.holder === b.leader.holder && a.leader.token === b.leader.token;
}
