import type { Clock, Timer } from '../core/clock.js';
import type { Term } from '../core/lock.js';
import { asError } from './as-error.js';

export type Work = (term: Term) => unknown;

/**
 * The guarded work of each term — `runWhileLeader` functions, and whatever `LeaderElector.guard()`
 * was given (for `leaderlock run`: the command's exit) — awaited before a release, at most until the
 * term's `validUntil`: after that the record may have expired on the server and someone else may
 * lead, so waiting longer would only delay the successor (fencing covers work that outlives it).
 */
export class TermWork {
  readonly #clock: Clock;
  readonly #running = new Map<Term, Set<Promise<unknown>>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Runs `fn(term)`; a throw (or rejection) goes to `onFailure`. */
  start(fn: Work, term: Term, onFailure: (err: Error) => void): void {
    this.track(
      term,
      (async () => {
        await fn(term);
      })().catch((err: unknown) => onFailure(asError(err))),
    );
  }

  /** Counts `work` as running in `term` until it settles (its outcome is the caller's business). */
  track(term: Term, work: PromiseLike<unknown>): void {
    const p = Promise.resolve(work).catch(() => undefined);
    const set = this.#running.get(term) ?? new Set();
    set.add(p);
    this.#running.set(term, set);
    void p.finally(() => {
      set.delete(p);
      if (set.size === 0 && this.#running.get(term) === set) this.#running.delete(term);
    });
  }

  /** Whether any work of `term` has not settled yet. */
  running(term: Term): boolean {
    return (this.#running.get(term)?.size ?? 0) > 0;
  }

  /**
   * Waits until the term's work has settled or its validUntil has passed, whichever is first. Work
   * added while waiting (tracked late) is waited for too.
   */
  async settle(term: Term): Promise<void> {
    if (!this.running(term)) return;
    let timer: Timer | undefined;
    let due = false;
    const bound = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(() => {
        due = true;
        resolve();
      }, Math.max(0, term.validUntil - this.#clock.now()));
    });
    // Bounded: each round ends when the set it saw has settled or at validUntil; a new round only
    // starts for work added meanwhile, and finite code adds finitely many.
    while (!due && this.running(term)) await Promise.race([Promise.allSettled([...this.#running.get(term)!]), bound]);
    timer?.cancel();
  }
}
