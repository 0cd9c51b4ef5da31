import type { Clock, Timer } from '../core/clock.js';
import type { Term } from '../core/lock.js';
import { asError } from './as-error.js';

export type Work = (term: Term) => unknown;

/**
 * The guarded work of each term (`runWhileLeader` functions): started once per term, and awaited
 * before a release — at most until the term's `validUntil`, because after that someone else may lead
 * and waiting longer would only delay the successor.
 */
export class TermWork {
  readonly #clock: Clock;
  readonly #running = new Map<Term, Set<Promise<void>>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Runs `fn(term)`; a throw (or rejection) goes to `onFailure`. */
  start(fn: Work, term: Term, onFailure: (err: Error) => void): void {
    const p = (async () => {
      await fn(term);
    })().catch((err: unknown) => onFailure(asError(err)));
    const set = this.#running.get(term) ?? new Set();
    set.add(p);
    this.#running.set(term, set);
    void p.finally(() => {
      set.delete(p);
      if (set.size === 0) this.#running.delete(term);
    });
  }

  /** Waits for the term's work to settle, at most until the term's validUntil. */
  async settle(term: Term): Promise<void> {
    const set = this.#running.get(term);
    if (!set || set.size === 0) return;
    let timer: Timer | undefined;
    const bound = new Promise<void>((resolve) => (timer = this.#clock.setTimer(resolve, Math.max(0, term.validUntil - this.#clock.now()))));
    await Promise.race([Promise.allSettled([...set]), bound]);
    timer?.cancel();
  }
}
