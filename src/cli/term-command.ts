/**
 * The command of one term: started when the term is won, stopped when it ends or runs out.
 *
 * Safety rule: the command must be dead before anyone else can win. Another candidate can win once
 * the record expires on the server, which is no earlier than our `validUntil` (computed from the send
 * time of our last confirmed renew, minus drift). So the command gets SIGTERM at `validUntil − grace`
 * at the latest (earlier when the term ends: deadline, taken, ...) and SIGKILL at `validUntil − lead`
 * (or `grace` after SIGTERM when that is sooner). These timers run on the elector's clock and move
 * with every confirmed renew; the watchdog (watchdog.ts) enforces the same kill time from outside this
 * process, for when this process is dead or frozen.
 *
 * The lead (`killLeadMs`): a timer due at `validUntil` fires late on a loaded host — the process that
 * owns it waits for a core — and the only slack behind `validUntil` is the server's (ttl × drift, 30 ms
 * at a 3 s ttl). Killing a little early costs the tail of a term that is ending anyway; killing late
 * lets the command act beside a successor. The randomized process-fault harness
 * (test/process/random-faults.test.ts) runs on a 2-core host with three etcd members.
 */
import type { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../core/clock.js';
import type { Term } from '../core/lock.js';
import { formatDuration } from './duration.js';

/** The part of a child process the supervisor uses (a `WatchedCommand`, or a fake in unit tests). */
export interface ChildLike extends EventEmitter {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
  /** The watchdog's deadline: SIGKILL `ms` from now unless extended again. */
  extend?(ms: number): void;
}

export interface SpawnOptions {
  /** Time left in the term as the command starts (the watchdog's first deadline). */
  deadlineMs: number;
  graceMs: number;
}

export type SpawnFn = (command: string, args: readonly string[], env: NodeJS.ProcessEnv, opts: SpawnOptions) => ChildLike;

export interface CommandExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be started. */
  error?: unknown;
  /** Whether we had begun stopping it (term ended or running out) before it exited. */
  stoppedByUs: boolean;
}

export interface TermCommandOptions {
  clock: Clock;
  graceMs: number;
  /** The command's name, for progress lines. */
  name: string;
  say: (line: string) => void;
}

/** How long before `validUntil` the command is SIGKILLed: a quarter of the grace, at most 250 ms. */
export function killLeadMs(graceMs: number): number {
  return Math.min(250, graceMs / 4);
}

export class TermCommand {
  /** Resolves once the command is gone (for a watched command: its whole process group). */
  readonly gone: Promise<CommandExit>;
  readonly #child: ChildLike;
  readonly #term: Term;
  readonly #o: TermCommandOptions;
  #termTimer: Timer | undefined;
  #killTimer: Timer | undefined;
  #stopping = false;
  #exited = false;

  constructor(term: Term, child: ChildLike, o: TermCommandOptions) {
    this.#term = term;
    this.#child = child;
    this.#o = o;
    this.gone = new Promise<CommandExit>((resolve) => {
      const done = (exit: Omit<CommandExit, 'stoppedByUs'>): void => {
        if (this.#exited) return;
        this.#exited = true;
        this.#termTimer?.cancel();
        this.#killTimer?.cancel();
        resolve({ ...exit, stoppedByUs: this.#stopping });
      };
      child.once('error', (error: unknown) => done({ code: null, signal: null, error }));
      child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => done({ code, signal }));
      // The reaper killed it at validUntil (this process was frozen past it): the term ran out, the
      // command did not exit on its own.
      child.once('watchdog', () => (this.#stopping = true));
    });
    this.renewed();
    term.signal.addEventListener('abort', () => this.stop(`leadership lost (${term.endReason ?? 'ended'})`), { once: true });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** After a confirmed renew: move the SIGTERM timer and the watchdog's deadline to the new validUntil. */
  renewed(): void {
    if (this.#stopping || this.#exited) return;
    const left = this.#term.validUntil - this.#o.clock.now();
    this.#child.extend?.(left - killLeadMs(this.#o.graceMs));
    this.#termTimer?.cancel();
    this.#termTimer = this.#o.clock.setTimer(() => this.stop(`term ${this.#term.token} is running out (no confirmed renew)`), left - this.#o.graceMs);
  }

  /** SIGTERM now, SIGKILL at validUntil − lead or after grace, whichever is sooner. Idempotent. */
  stop(why: string): void {
    if (this.#stopping || this.#exited) return;
    this.#stopping = true;
    this.#termTimer?.cancel();
    const { clock, graceMs, name, say } = this.#o;
    const killIn = Math.max(0, Math.min(this.#term.validUntil - killLeadMs(graceMs) - clock.now(), graceMs));
    say(`${why}: sending SIGTERM to ${name} (pid ${this.#child.pid ?? '?'}), SIGKILL in ${formatDuration(killIn)}`);
    this.#child.kill('SIGTERM');
    this.#killTimer = clock.setTimer(() => {
      if (this.#exited) return;
      say(`${name} still running at the end of the term: SIGKILL`);
      this.#child.kill('SIGKILL');
    }, killIn);
  }

  /** Passes a signal on; the term's timers stay armed (a command ignoring it still dies at validUntil). */
  signal(sig: NodeJS.Signals): void {
    if (!this.#exited) this.#child.kill(sig);
  }
}
