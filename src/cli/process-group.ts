/**
 * Process-group helpers for `leaderlock run`'s watchdog (POSIX only). The guarded command is the
 * leader of its own process group (and session), so one `kill(-pgid, sig)` reaches everything it
 * started that stayed in the group; "the command is dead" means "no process of the group is left".
 */
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Clock } from '../core/clock.js';

/** Signals the process group; false when no process of it is left (ESRCH). */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    // EPERM: a member we may not signal (setuid) — it exists, so the group is not gone.
    return (err as { code?: string }).code !== 'ESRCH';
  }
}

/** Whether any process of the group exists (zombies count until their parent reaps them). */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}

/**
 * Polls until no process of the group is left, every `pollMs`, for at most `boundMs`. Resolves true
 * when the group is gone. SIGKILL takes effect within milliseconds unless a process sleeps
 * uninterruptibly (or is a zombie whose parent does not reap it), hence the bound.
 */
export async function waitGroupGone(pgid: number, clock: Clock, boundMs: number, pollMs = 10): Promise<boolean> {
  const until = clock.now() + boundMs;
  while (groupAlive(pgid)) {
    if (clock.now() >= until) return false;
    await clock.sleep(pollMs);
  }
  return true;
}

/**
 * Where `command` would be executed from (the PATH search `execvp` does), or the errno-style code
 * of why it cannot be: checked before spawning so "not found" stays a clear message even when the
 * command is started through `setpriv`, whose own exec failure would only be an exit code.
 */
export function findExecutable(command: string, path: string | undefined): { ok: true; file: string } | { ok: false; code: 'ENOENT' | 'EACCES' } {
  const candidates = command.includes('/') || isAbsolute(command) ? [command] : (path ?? '/usr/bin:/bin').split(delimiter).map((d) => join(d || '.', command));
  let sawDenied = false;
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
    } catch {
      continue;
    }
    try {
      accessSync(file, fsConstants.X_OK);
      return { ok: true, file };
    } catch {
      sawDenied = true;
    }
  }
  return { ok: false, code: sawDenied ? 'EACCES' : 'ENOENT' };
}

/**
 * util-linux `setpriv`, which can set the parent-death signal (prctl PR_SET_PDEATHSIG) on the
 * command before exec'ing it: the kernel then SIGKILLs the command the moment the reaper dies.
 * Undefined where it is not installed (not Linux, minimal images): the supervisor's own kill of the
 * group when the reaper exits still covers a dead reaper, only not the double fault "reaper and
 * supervisor killed at once".
 */
export function pdeathsigHelper(): string | undefined {
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
}

/**
 * `sh -c GATE_SCRIPT <command> [args…]`: waits for one line on fd 3, then closes fd 3 and execs the
 * command in the same process (so its pid stays the group id the reaper reported). EOF instead of
 * the line — the reaper died before reporting the pid — and the command never runs (exit 125).
 */
export const GATE_SCRIPT = 'read -r go <&3 || exit 125; exec 3<&-; exec "$0" "$@"';
