/**
 * Child processes of the real-server tier: every one is registered so a crashed test cannot leave a
 * server behind ('exit' hook: SIGCONT + SIGKILL, then the registered cleanups, e.g. the netns), every
 * wait is bounded, and a process's output goes to a log file whose tail is shown when it fails.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

const live = new Set<ChildProcess>();
const syncCleanups = new Set<() => void>();
process.once('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const c of syncCleanups) {
    try {
      c();
    } catch {
      /* best effort at exit */
    }
  }
});

/** Runs `fn` at process exit unless removed first (the returned function). */
export function atExit(fn: () => void): () => void {
  syncCleanups.add(fn);
  return () => syncCleanups.delete(fn);
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly log: string;
  readonly exited: Promise<number | null>;
  running(): boolean;
  /** Last lines of the log. */
  tail(lines?: number): string;
  /** Signal it; for SIGKILL/SIGTERM waits (bounded) until it is gone. */
  kill(signal?: NodeJS.Signals, waitMs?: number): Promise<void>;
}

export function startProc(name: string, cmd: string, args: string[], opts: { log: string; env?: NodeJS.ProcessEnv; cwd?: string }): Proc {
  const out = createWriteStream(opts.log, { flags: 'a' });
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  live.add(child);
  let alive = true;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      alive = false;
      live.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      alive = false;
      live.delete(child);
      resolve(null);
    });
  });
  const tail = (lines = 30): string => {
    try {
      return readFileSync(opts.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  return {
    name,
    child,
    log: opts.log,
    exited,
    running: () => alive,
    tail,
    async kill(signal: NodeJS.Signals = 'SIGKILL', waitMs = 10_000) {
      if (!alive) return;
      if (signal === 'SIGKILL' || signal === 'SIGTERM') child.kill('SIGCONT');
      child.kill(signal);
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM') return;
      const gone = await Promise.race([exited.then(() => true), delay(waitMs).then(() => false)]);
      if (!gone) {
        child.kill('SIGKILL');
        await Promise.race([exited, delay(5000)]);
      }
    },
  };
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every `everyMs` until it returns true; throws `what` (and `detail()`) after `boundMs`. */
export async function waitFor(what: string, boundMs: number, check: () => Promise<boolean> | boolean, detail?: () => string, everyMs = 250): Promise<void> {
  const start = Date.now();
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() - start > boundMs) throw new Error(`timed out after ${boundMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await delay(everyMs);
  }
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
