/**
 * The reaper: the small process `leaderlock run` puts between itself and the guarded command (the
 * supervisor's side is src/cli/watchdog.ts). Usage, from the supervisor only:
 *
 *   node reaper.js <graceMs> -- <command> [args…]        control socket on fd 3
 *
 * It starts the command as the leader of a new process group (and session) and kills that whole
 * group with SIGKILL
 *   - when the control socket reaches EOF: the supervisor died (kill -9, OOM, crash) — at once;
 *   - at the term's deadline unless the supervisor has moved it (`deadline <ms>` after each
 *     confirmed renew): a supervisor frozen (SIGSTOP, debugger) cannot move it, so its command is
 *     dead at validUntil, before anyone else can win.
 * The first deadline is a handshake (`ready`, then the supervisor's `deadline`), so this process's
 * start-up time is never added to it (see watchdog-protocol.ts).
 *
 * The command is started through `setpriv --pdeathsig KILL` where util-linux has it, so the kernel
 * kills it when the reaper dies, and only after its pid is on the supervisor's socket (the gate in
 * `startCommand`); the supervisor kills the group when the reaper exits. The reaper itself takes no
 * parent-death signal: dying with the supervisor would leave the group behind, while EOF on the
 * socket makes it kill the group first.
 *
 * The reaper runs in a session of its own (so `kill -STOP -<supervisor's pgid>` or Ctrl-Z does not
 * freeze it with the supervisor) and ignores every catchable signal: the supervisor decides what the
 * command gets. When the command exits, what it left in its group gets SIGTERM, then SIGKILL after
 * the grace (or at the deadline); `gone` is reported only once the group is empty, which is when the
 * supervisor may let the term go.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { hostMonotonicMs, systemClock, type Timer } from '../core/clock.js';
import { findExecutable, GATE_SCRIPT, groupAlive, pdeathsigHelper, signalGroup } from './process-group.js';
import { decodeToReaper, encodeFromReaper, LineReader, type FromReaper, type ToReaper } from './watchdog-protocol.js';

/** How long the group may take to disappear after SIGKILL before `gone` is reported anyway. */
const AFTER_KILL_BOUND_MS = 2000;
const CONTROL_FD = 3;

const [graceArg, sep, command, ...commandArgs] = process.argv.slice(2);
if (sep !== '--' || !command || !/^\d+$/.test(graceArg ?? '')) {
  process.stderr.write('leaderlock reaper: started by `leaderlock run` only (usage: reaper <graceMs> -- <command> [args…])\n');
  process.exit(64);
}
const graceMs = Number(graceArg);
const clock = systemClock;

// Only the socket controls this process. SIGTSTP too: Ctrl-Z must not freeze the one process that
// would kill the command at validUntil while the supervisor is stopped.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGPIPE', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'] as const) {
  process.on(sig, () => undefined);
}

const control = new Socket({ fd: CONTROL_FD, readable: true, writable: true });
const send = (m: FromReaper, then?: () => void): void => {
  if (control.writable) control.write(encodeFromReaper(m), then);
};
const say = (line: string): void => void process.stderr.write(`leaderlock: watchdog: ${line}\n`);
const leave = (): void => {
  if (control.writable) control.end(() => process.exit(0));
  else process.exit(0);
  // The supervisor may be frozen with the socket buffer full: do not wait on it for ever.
  clock.setTimer(() => process.exit(0), 1000, { unref: true });
};

/** Before the first `deadline`: when `ready` was sent, which the answer is counted from. */
let readyAt: number | undefined;
let child: ChildProcess | undefined;
let pgid = 0;
let leaderExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
let termSent = false;
let killedAt: number | undefined;
let finishing = false;
let deadline: Timer | undefined;
let graceTimer: Timer | undefined;

function killGroup(why: string): void {
  if (!pgid) return;
  signalGroup(pgid, 'SIGKILL');
  killedAt ??= clock.now();
  if (why === 'deadline') {
    say(`no renew confirmed before the term's validUntil: SIGKILL to ${command} (process group ${pgid})`);
    send({ type: 'killed', why });
  }
}

/**
 * The time left of a `deadline` line, minus what the line spent in transit (measured on the host's
 * monotonic clock, which the supervisor stamped it with); never more than `ms` from now.
 */
function leftOf(m: Extract<ToReaper, { type: 'deadline' }>): number {
  if (m.at === undefined) return m.ms;
  const transit = hostMonotonicMs() - m.at;
  return Math.min(m.ms, Math.max(0, m.ms - transit));
}

function armDeadline(ms: number): void {
  deadline?.cancel();
  deadline = clock.setTimer(() => killGroup('deadline'), ms);
}

/** Reports `gone` once the group is empty (bounded after SIGKILL), then exits. */
async function finish(): Promise<void> {
  if (finishing) return;
  finishing = true;
  // Bounded: every path here has sent SIGKILL (EOF, deadline) or armed it (the grace timer for leftovers).
  while (pgid && groupAlive(pgid)) {
    if (killedAt !== undefined && clock.now() - killedAt > AFTER_KILL_BOUND_MS) {
      say(`process group ${pgid} still has members ${AFTER_KILL_BOUND_MS} ms after SIGKILL (uninterruptible sleep, or zombies nobody reaps)`);
      break;
    }
    await clock.sleep(10);
  }
  deadline?.cancel();
  graceTimer?.cancel();
  const exit = leaderExit ?? { code: null, signal: 'SIGKILL' as const };
  send({ type: 'gone', code: exit.code, signal: exit.signal });
  leave();
}

/** The command exited: what it left in its group gets SIGTERM (unless sent already), SIGKILL after the grace. */
function onLeaderExit(code: number | null, signal: NodeJS.Signals | null): void {
  leaderExit = { code, signal };
  if (groupAlive(pgid)) {
    if (!termSent) signalGroup(pgid, 'SIGTERM');
    termSent = true;
    graceTimer = clock.setTimer(() => killGroup('leftovers'), graceMs);
  }
  void finish();
}

/** The answer to `ready`: start the command, unless the term has run out or it cannot run. */
function onFirstDeadline(ms: number, sentReadyAt: number): void {
  const left = ms - (clock.now() - sentReadyAt);
  if (left <= 0) {
    say(`the term ran out before ${command} could start`);
    send({ type: 'killed', why: 'deadline' });
    send({ type: 'gone', code: null, signal: 'SIGKILL' });
    leave();
    return;
  }
  armDeadline(left);
  const found = findExecutable(command!, process.env.PATH);
  if (!found.ok) {
    send({ type: 'spawn-error', code: found.code });
    leave();
    return;
  }
  startCommand(command!, commandArgs);
}

function onControlLine(line: string): void {
  const m = decodeToReaper(line);
  if (!m || finishing) return;
  if (readyAt !== undefined) {
    // Not started yet: a stop before the start means never starting.
    const at = readyAt;
    if (m.type === 'deadline') {
      readyAt = undefined;
      onFirstDeadline(m.ms, at); // counted from `ready`: no later than the stamp would give
    } else if (m.target === 'group' && ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL'].includes(m.signal)) {
      readyAt = undefined;
      send({ type: 'gone', code: null, signal: m.signal });
      leave();
    }
    return;
  }
  if (m.type === 'deadline') {
    armDeadline(leftOf(m));
    return;
  }
  if (m.target === 'leader' && child && !leaderExit) child.kill(m.signal);
  else if (m.target === 'group' && pgid) {
    signalGroup(pgid, m.signal);
    if (m.signal === 'SIGKILL') killedAt ??= clock.now();
  }
  if (m.signal === 'SIGTERM' || m.signal === 'SIGKILL') termSent = true;
}

/**
 * Starts the command through a gate: `sh` waits for one line on fd 3 before exec'ing it (same pid,
 * so the pid is the group id). The line is written only after `started <pid>` is on the supervisor's
 * socket: were this process killed in between, the command would never run — rather than run with
 * a group id nobody knows. `exec 3<&-` leaves the command no trace of the gate.
 */
function startCommand(cmd: string, cmdArgs: readonly string[]): void {
  const gate = ['/bin/sh', '-c', GATE_SCRIPT, cmd, ...cmdArgs];
  const setpriv = pdeathsigHelper();
  const argv = setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', ...gate] : gate;
  const c = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
  child = c;
  c.once('error', (err: NodeJS.ErrnoException) => {
    if (pgid) return;
    send({ type: 'spawn-error', code: err.code ?? 'UNKNOWN' });
    leave();
  });
  if (c.pid === undefined) return;
  pgid = c.pid;
  c.once('exit', onLeaderExit);
  const open = c.stdio[3] as Socket;
  open.on('error', () => undefined); // the command was killed before reading it
  // Open the gate once `started` has been handed to the kernel (the write callback).
  send({ type: 'started', pid: pgid }, () => open.end('go\n'));
}

const reader = new LineReader(onControlLine);
control.on('data', (d: Buffer) => reader.push(d));
// EOF (or a reset): the supervisor is gone, and with it whoever could extend or end the term.
const onSupervisorGone = (): void => {
  readyAt = undefined;
  killGroup('supervisor gone');
  void finish();
};
control.on('end', onSupervisorGone);
control.on('error', onSupervisorGone);

readyAt = clock.now();
send({ type: 'ready' });
