/**
 * Multi-process fault harness for `leaderlock run`: real supervisors (the CLI through tsx, as a user
 * runs it), real etcd, real signals. Every guarded command appends `<ms> <identity> <token> <pid>`
 * to one shared file every 20 ms; the timestamps come from one clock (CLOCK_MONOTONIC, which every
 * process on the host shares), so the overlap of two commands is measured directly from the file.
 *
 * Cleanup is by a marker: every process this harness starts carries its unique temporary directory
 * in its command line (the writer script lives there), so `killAll()` finds the supervisors, their
 * reapers and their commands in /proc — also the ones that escaped their supervisor, which is the
 * very fault under test — and never touches anyone else's process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI entry to test; LEADERLOCK_HARNESS_CLI points elsewhere to measure another build. */
export const CLI = process.env.LEADERLOCK_HARNESS_CLI ?? fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

// The guarded command: appends a line every 20 ms; IGNORE_TERM=1 ignores SIGTERM like a stuck daemon.
// With LEADERLOCK_FENCED_URL it also POSTs each write (stamp, identity, token) to the fenced resource.
const WRITER = `
const fs = require('node:fs');
const [file, id] = process.argv.slice(2);
const url = process.env.LEADERLOCK_FENCED_URL;
if (process.env.IGNORE_TERM === '1') process.on('SIGTERM', () => {});
const line = () => {
  const at = Number(process.hrtime.bigint() / 1000n) / 1000;
  fs.appendFileSync(file, at.toFixed(3) + ' ' + id + ' ' + process.env.LEADERLOCK_TOKEN + ' ' + process.pid + '\\n');
  if (url) fetch(url, { method: 'POST', body: JSON.stringify({ holder: id, token: process.env.LEADERLOCK_TOKEN, pid: process.pid, at }), signal: AbortSignal.timeout(1000) }).catch(() => {});
};
line();
setInterval(line, 20);
`;

/** The plain elector process (EtcdLock + LeaderElector.runWhileLeader doing guarded actions). */
const ELECTOR = fileURLToPath(new URL('./elector-proc.ts', import.meta.url));

export interface Line {
  at: number;
  id: string;
  token: string;
  pid: number;
}

export interface Interval {
  /** identity/token: one term's command. */
  key: string;
  start: number;
  end: number;
  lines: number;
}

export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), 'leaderlock-faults-'));
  readonly log = join(this.dir, 'writes.log');
  readonly writer = join(this.dir, 'writer.cjs');
  readonly #children: ChildProcess[] = [];
  readonly #servers: Server[] = [];
  /** The line file as `killAll()` left it (the directory is gone after). */
  linesSnapshot: Line[] = [];

  constructor() {
    writeFileSync(this.writer, WRITER);
    writeFileSync(this.log, '');
  }

  /** `leaderlock run … -- node writer.cjs <log> <identity>` in a process group of its own. */
  supervisor(identity: string, runArgs: string[], env: Record<string, string> = {}): Supervisor {
    const args = ['--import', 'tsx', CLI, 'run', '--identity', identity, ...runArgs, '--', process.execPath, this.writer, this.log, identity];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBUG: '', ...env }, detached: true });
    this.#children.push(child);
    const s = new Supervisor(identity, child);
    return s;
  }

  /**
   * A plain elector process (test/process/elector-proc.ts) on `key`, acting every 20 ms against
   * `resource` while it leads. Its actions go to the same line file as the commands. Returned as a
   * `Supervisor` handle: it prints the same "elected with token N" / "leadership lost" lines.
   */
  elector(identity: string, opts: { endpoints: readonly string[]; key: string; ttlMs: number; resource: string }): Supervisor {
    const args = ['--conditions=source', '--import', 'tsx', ELECTOR, this.log, identity, opts.resource, opts.key, opts.endpoints.join(','), String(opts.ttlMs)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBUG: '' }, detached: true });
    this.#children.push(child);
    return new Supervisor(identity, child);
  }

  lines(): Line[] {
    return readFileSync(this.log, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const [at, id, token, pid] = l.split(' ');
        return { at: Number(at), id: id!, token: token!, pid: Number(pid) };
      });
  }

  /** One interval per term's command (identity + token), ordered by start. */
  intervals(): Interval[] {
    const by = new Map<string, Interval>();
    for (const l of this.lines()) {
      const key = `${l.id}/${l.token}`;
      const i = by.get(key);
      if (!i) by.set(key, { key, start: l.at, end: l.at, lines: 1 });
      else {
        i.start = Math.min(i.start, l.at);
        i.end = Math.max(i.end, l.at);
        i.lines++;
      }
    }
    return [...by.values()].sort((a, b) => a.start - b.start);
  }

  /** Resolves once `pred` holds for the lines written so far; rejects after `timeoutMs`. */
  async waitLines(pred: (lines: Line[]) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!pred(this.lines())) {
      if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; intervals: ${JSON.stringify(this.intervals())}`);
      await sleep(25);
    }
  }

  /** A TCP forwarder to `target` (host:port) that can be frozen: a hung network path for one process. */
  async forwarder(target: string): Promise<Forwarder> {
    const [host, port] = target.split(':');
    const pairs: Array<[Socket, Socket]> = [];
    let frozen = false;
    const server = createServer((inbound) => {
      const outbound = createConnection({ host: host!, port: Number(port) });
      pairs.push([inbound, outbound]);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      const destroy = (): void => {
        inbound.destroy();
        outbound.destroy();
      };
      inbound.on('error', destroy).on('close', destroy);
      outbound.on('error', destroy).on('close', destroy);
      if (frozen) {
        inbound.pause();
        outbound.pause();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#servers.push(server);
    const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
    return {
      address,
      freeze() {
        frozen = true;
        for (const [a, b] of pairs) {
          a.pause();
          b.pause();
        }
      },
      thaw() {
        frozen = false;
        for (const [a, b] of pairs) {
          a.resume();
          b.resume();
        }
      },
    };
  }

  /** The pid of the reaper (watchdog process) running `identity`'s command, if any. */
  reaperOf(identity: string): number | undefined {
    return marked(this.dir).find((pid) => {
      const argv = cmdline(pid);
      return argv.some((a) => /reaper\.(ts|js)$/.test(a)) && argv.at(-1) === identity;
    });
  }

  /** The pid of the guarded command (the writer) `identity`'s supervisor runs, if any. */
  commandOf(identity: string): number | undefined {
    return marked(this.dir).find((pid) => {
      const argv = cmdline(pid);
      return argv.includes(this.writer) && !argv.some((a) => /reaper\.(ts|js)$/.test(a)) && argv.at(-1) === identity && !argv.includes('run');
    });
  }

  /**
   * SIGKILLs every process whose command line carries this harness's directory (supervisors,
   * reapers, commands — escaped or not), closes the forwarders, removes the directory.
   */
  async killAll(): Promise<void> {
    for (const c of this.#children) if (c.pid && c.exitCode === null && c.signalCode === null) tryKill(-c.pid);
    for (let round = 0; round < 20; round++) {
      const ours = marked(this.dir);
      if (ours.length === 0) break;
      for (const pid of ours) {
        tryKill(pid);
        tryKill(-pid);
      }
      await sleep(25);
    }
    for (const s of this.#servers) s.close();
    this.linesSnapshot = this.lines();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Forwarder {
  readonly address: string;
  freeze(): void;
  thaw(): void;
}

/** One progress line of a supervisor or elector process, stamped on arrival (the writers' clock). */
export interface ProcEvent {
  at: number;
  identity: string;
  text: string;
}

export class Supervisor {
  stderr = '';
  /** Progress lines that matter for a timeline: elected, lost, command exited, warnings. */
  readonly events: ProcEvent[] = [];
  /** The token of the term this process says it holds (from its progress lines), if any. */
  leading: string | undefined;
  /** When (the writers' clock, ms) the line saying it won a term arrived, per token. */
  readonly electedAt = new Map<string, number>();
  readonly exited: Promise<number | null>;
  constructor(
    readonly identity: string,
    readonly child: ChildProcess,
  ) {
    child.stderr!.on('data', (d: Buffer) => {
      const at = monotonicMs();
      this.stderr += d.toString();
      for (const m of d.toString().matchAll(/elected with token (\d+)/g)) if (!this.electedAt.has(m[1]!)) this.electedAt.set(m[1]!, at);
      for (const text of d.toString().split('\n')) {
        const won = /elected with token (\d+)/.exec(text);
        if (won) this.leading = won[1];
        else if (/leadership lost|exited with|waiting to be elected/.test(text)) this.leading = undefined;
        if (/elected|lost|exited|warning|watchdog|cannot/.test(text)) this.events.push({ at, identity, text: text.trim().slice(0, 200) });
      }
    });
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.leading = undefined;
        const last = this.stderr.trim().split('\n').at(-1) ?? '';
        this.events.push({ at: monotonicMs(), identity, text: `process exited (${signal ?? `code ${code}`}); last line: ${last.slice(0, 200)}` });
        resolve(code);
      }),
    );
  }
  get pid(): number {
    return this.child.pid!;
  }
  /** Signals the supervisor process only (not its group: the reaper must survive a kill -9 of it). */
  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }
  async waitStderr(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (performance.now() > until) throw new Error(`timed out waiting for ${pattern} from ${this.identity}; stderr: ${this.stderr}`);
      await sleep(25);
    }
  }
}

/** Gap between consecutive commands (negative: they overlapped), and the worst overlap of any two. */
export function overlapReport(intervals: readonly Interval[]): { gaps: number[]; worstOverlapMs: number; text: string } {
  const gaps: number[] = [];
  let worst = 0;
  for (let i = 1; i < intervals.length; i++) gaps.push(intervals[i]!.start - intervals[i - 1]!.end);
  for (let i = 0; i < intervals.length; i++) {
    for (let j = i + 1; j < intervals.length; j++) {
      const a = intervals[i]!;
      const b = intervals[j]!;
      worst = Math.max(worst, Math.min(a.end, b.end) - Math.max(a.start, b.start));
    }
  }
  const t0 = intervals[0]?.start ?? 0;
  const text = intervals.map((i) => `${i.key} ${((i.start - t0) / 1000).toFixed(3)}–${((i.end - t0) / 1000).toFixed(3)} s (${i.lines} writes)`).join('; ');
  return { gaps, worstOverlapMs: worst, text };
}

function marked(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** CLOCK_MONOTONIC in ms: the clock the writers stamp their lines with. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
