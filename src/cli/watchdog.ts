/**
 * The watchdog of `leaderlock run`, supervisor side: the command runs in its own process group under
 * a reaper (src/cli/reaper.ts) that holds a socket from this process. What kills the group, and when:
 *
 * | fault                                    | what kills the command's group                         |
 * |------------------------------------------|--------------------------------------------------------|
 * | supervisor killed (kill -9, OOM, crash)  | the reaper, at once (EOF on the socket)                |
 * | supervisor frozen (SIGSTOP) past the term| the reaper, at validUntil (no `deadline` extended it); |
 * |                                          | it has its own session and ignores SIGTSTP, so stopping|
 * |                                          | the supervisor's group does not stop it                |
 * | reaper killed                            | the kernel (command has pdeathsig KILL via setpriv),   |
 * |                                          | and this module (reaper exit → SIGKILL to the group)   |
 * | reaper frozen                            | this module: SIGKILL goes to the group directly        |
 * | reaper and supervisor frozen, host frozen| nothing — fencing tokens cover it                      |
 *
 * A process the command moves out of its group (setsid, setpgid: a daemon that double-forks) is out
 * of reach too; run such daemons in the foreground.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { hostMonotonicMs, systemClock, type Clock } from '../core/clock.js';
import { signalGroup, waitGroupGone } from './process-group.js';
import { decodeFromReaper, encodeToReaper, LineReader, type ToReaper } from './watchdog-protocol.js';

/** Signals only passed on to the command itself (reload, rotate logs, resize); the rest go to its group. */
const TO_LEADER_ONLY: ReadonlySet<string> = new Set(['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']);

export interface WatchOptions {
  /** Time left in the term when the command starts: the reaper SIGKILLs the group then unless extended. */
  deadlineMs: number;
  /** What the command's leftovers get between SIGTERM and SIGKILL once the command itself has exited. */
  graceMs: number;
  /** One line of progress for stderr. */
  log?: (line: string) => void;
  /** For the polls after a dead reaper. Default: the system clock. */
  clock?: Clock;
}

const here = import.meta.url;
/** The reaper next to this module (dist/cli/reaper.js; src/cli/reaper.ts when running from source). */
const REAPER = new URL(here.endsWith('.ts') ? './reaper.ts' : './reaper.js', here);

/** The loader flags this process runs with (tsx from source), so the reaper loads the same way; no --inspect. */
function loaderFlags(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  const withValue = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r', '--conditions', '-C']);
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    const name = a.split('=')[0]!;
    if (!withValue.has(name)) continue;
    out.push(a);
    if (!a.includes('=') && i + 1 < execArgv.length) out.push(execArgv[++i]!);
  }
  return out;
}

/**
 * The guarded command seen through its reaper. Emits `exit` (code, signal) once the command has
 * exited and no process of its group is left — not when the command alone has exited —, `error`
 * when it could not be started (`err.code` ENOENT, EACCES, ...), and `watchdog` (why) before that
 * `exit` when the reaper killed the group on its own (the term ran out with no extension).
 */
export class WatchedCommand extends EventEmitter {
  pid: number | undefined;
  readonly #reaper: ChildProcess;
  readonly #control: Socket;
  readonly #log: (line: string) => void;
  readonly #clock: Clock;
  #done = false;
  #ready = false;
  #extendTo: number | undefined;

  constructor(command: string, args: readonly string[], env: NodeJS.ProcessEnv, opts: WatchOptions) {
    super();
    this.#log = opts.log ?? (() => undefined);
    this.#clock = opts.clock ?? systemClock;
    this.#extendTo = this.#clock.now() + opts.deadlineMs;
    const argv = [...loaderFlags(process.execArgv), fileURLToPath(REAPER), String(Math.round(opts.graceMs)), '--', command, ...args];
    // detached: a session of its own, so stopping the supervisor's process group (Ctrl-Z, kill -STOP
    // -pgid) does not stop the reaper with it.
    this.#reaper = spawn(process.execPath, argv, { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env, detached: true });
    this.#control = this.#reaper.stdio[3] as Socket;
    this.#control.on('error', () => undefined); // EPIPE after the reaper died: 'close' below handles it
    const reader = new LineReader((line) => this.#onLine(line));
    this.#control.on('data', (d: Buffer) => reader.push(d));
    this.#reaper.once('error', (err) => this.#fail(err));
    // 'close': the reaper has exited and its socket is drained, so a final `gone` has been read.
    this.#reaper.once('close', (code, signal) => void this.#onReaperClosed(code, signal));
  }

  /** The reaper's pid (tests kill it to check what covers a dead reaper). */
  get reaperPid(): number | undefined {
    return this.#reaper.pid;
  }

  /**
   * Moves the reaper's deadline to `ms` from now (after a confirmed renew). Until the reaper says
   * `ready` it is still loading and would read the line late, adding its start-up time to the
   * deadline: the latest deadline is kept and sent, recomputed, as the answer to `ready`.
   */
  extend(ms: number): void {
    this.#extendTo = this.#clock.now() + ms;
    if (this.#ready) this.#flushDeadline();
  }

  #flushDeadline(): void {
    if (this.#extendTo === undefined) return;
    this.#send({ type: 'deadline', ms: this.#extendTo - this.#clock.now(), at: hostMonotonicMs() });
    this.#extendTo = undefined;
  }

  /**
   * Signals the command: reload/rotate signals to the command alone, the others (SIGTERM, SIGINT,
   * SIGQUIT, SIGKILL) to its whole group. SIGKILL is also sent straight to the group, so a frozen
   * reaper cannot hold it back.
   */
  kill(signal: NodeJS.Signals): boolean {
    if (this.#done) return false;
    this.#send({ type: 'signal', signal, target: TO_LEADER_ONLY.has(signal) ? 'leader' : 'group' });
    // The group id could only name someone else's group after `gone` (then #done stops us) and a
    // wrap-around of pids within the moment between the two.
    if (signal === 'SIGKILL' && this.pid !== undefined) signalGroup(this.pid, 'SIGKILL');
    return true;
  }

  #send(m: ToReaper): void {
    if (!this.#done && this.#control.writable) this.#control.write(encodeToReaper(m));
  }

  #onLine(line: string): void {
    const m = decodeFromReaper(line);
    if (!m) return;
    if (m.type === 'ready') {
      this.#ready = true;
      this.#flushDeadline();
    } else if (m.type === 'started') this.pid = m.pid;
    else if (m.type === 'spawn-error') this.#fail(Object.assign(new Error(m.code), { code: m.code }));
    else if (m.type === 'killed') {
      this.#log(`the watchdog killed the command's process group (${m.why})`);
      this.emit('watchdog', m.why);
    }
    else if (!this.#done) {
      this.#done = true;
      this.emit('exit', m.code, m.signal);
    }
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.emit('error', err);
  }

  /** The reaper is gone without reporting `gone`: it was killed (or crashed). Kill the group ourselves. */
  async #onReaperClosed(code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (this.#done) return;
    const pgid = this.pid;
    if (pgid === undefined) {
      this.#fail(Object.assign(new Error(`the watchdog process exited (${signal ?? `code ${code}`}) before starting the command`), { code: 'EWATCHDOG' }));
      return;
    }
    this.#log(`the watchdog process died (${signal ?? `code ${code}`}): SIGKILL to the command's process group ${pgid}`);
    signalGroup(pgid, 'SIGKILL');
    if (!(await waitGroupGone(pgid, this.#clock, 2000))) this.#log(`process group ${pgid} still has members 2 s after SIGKILL`);
    if (this.#done) return;
    this.#done = true;
    this.emit('exit', null, 'SIGKILL');
  }
}

/** `spawn` for the supervisor: the command under a watchdog. */
export function spawnWatched(command: string, args: readonly string[], env: NodeJS.ProcessEnv, opts: WatchOptions): WatchedCommand {
  return new WatchedCommand(command, args, env, opts);
}
