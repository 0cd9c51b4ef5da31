/**
 * What the two-process handover benchmarks (handover-process.ts, handover-kube-real.ts) share: a
 * child whose stdout lines are reports, and a pair of leaderlock processes (bench/_handover-child.ts)
 * whose leader gets SIGTERM while the time to the successor's 'elected' is measured. Clocks:
 * high-resolution wall time (performance.timeOrigin + performance.now()) in every process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { median, quantile } from './_stats.js';

export const wall = (): number => performance.timeOrigin + performance.now();
const CHILD = fileURLToPath(new URL('./_handover-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface Report {
  ev: string;
  /** The process's own stamp of the event (wall ms), when it gives one. */
  at?: number;
  recvAt: number;
  leader?: boolean;
  identity?: string;
  marks?: [string, number][];
}

export interface ChildOptions {
  /** JSON lines (ours: `ev`/`at`; the client-go peer: `event`/`t`); otherwise every line is one `line` report (etcdctl). */
  json: boolean;
  env?: NodeJS.ProcessEnv;
  /** stdin as a pipe kept open (the client-go peer stops when it closes); default ignored. */
  stdin?: boolean;
  /** Registers a kill for when this process exits; returns the unregister function. */
  atExit?: (kill: () => void) => () => void;
}

/** A spawned process and the reports read from its stdout; every wait is bounded. */
export class ReportingChild {
  readonly reports: Report[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  #waiters = new Set<() => void>();
  #stderr = '';

  constructor(readonly identity: string, cmd: string, argv: string[], o: ChildOptions) {
    this.proc = spawn(cmd, argv, { cwd: ROOT, stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
    const drop = o.atExit?.(() => this.proc.kill('SIGKILL'));
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      const recvAt = wall();
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!o.json) {
          this.reports.push({ ev: 'line', recvAt });
          continue;
        }
        try {
          const r = JSON.parse(line) as Record<string, unknown>;
          const at = typeof r.at === 'number' ? r.at : typeof r.t === 'string' ? Date.parse(r.t) : undefined;
          this.reports.push({ ...(r as Partial<Report>), ev: String(r.ev ?? r.event), at, recvAt });
        } catch {
          // not a report (a stray log line)
        }
      }
      for (const w of [...this.#waiters]) w();
    });
    this.proc.stderr!.on('data', (d: Buffer) => void (this.#stderr = (this.#stderr + d.toString()).slice(-2000)));
    // 'close' (not 'exit'): the process is gone and its stdout fully read.
    this.exited = new Promise((resolve) => this.proc.once('close', () => resolve()));
    void this.exited.then(() => {
      drop?.();
      for (const w of [...this.#waiters]) w();
    });
  }

  waitFor(pred: (r: Report) => boolean, ms: number, what = 'a report'): Promise<Report> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const r = this.reports.find(pred);
        if (r) done(() => resolve(r));
        else if (this.proc.exitCode !== null || this.proc.signalCode !== null) done(() => reject(new Error(`${this.identity}: exited before ${what}; stderr: ${this.#stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${this.identity}: no ${what} within ${ms} ms; stderr: ${this.#stderr}`))), ms);
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Bounded wait for the exit after a signal; SIGKILL when it takes longer. */
  async gone(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    await this.kill();
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

export interface Sample {
  /** Signal sent → the parent read the successor's line (like-for-like with a peer's printout). */
  received: number;
  /** Signal sent → the successor's own stamp of the event. */
  stamped: number;
  /** leaderlock only: step → ms after the signal was sent, the leader's and the successor's marks merged. */
  steps: Map<string, number>;
}

/** Two leaderlock processes (bench/_handover-child.ts); SIGTERM the leader, a fresh follower replaces it after each handover. */
export class LeaderlockPair {
  #seq = 0;
  #leader!: ReportingChild;
  #follower!: ReportingChild;
  /**
   * `config(identity)`: the child's JSON configuration. `electMs` bounds the wait for the successor
   * (a lost release costs a whole ttl); `atExit` as for `ReportingChild`.
   */
  constructor(
    readonly config: (identity: string) => Record<string, unknown>,
    readonly o: { prefix?: string; electMs?: number; atExit?: ChildOptions['atExit'] } = {},
  ) {}

  #spawn(): ReportingChild {
    const identity = `${this.o.prefix ?? 'node-'}${this.#seq++}`;
    const argv = ['--conditions=source', '--import', 'tsx', CHILD, JSON.stringify({ ...this.config(identity), identity })];
    return new ReportingChild(identity, process.execPath, argv, { json: true, ...(this.o.atExit ? { atExit: this.o.atExit } : {}) });
  }

  async start(): Promise<void> {
    const a = this.#spawn();
    const sa = await a.waitFor((r) => r.ev === 'started', 30_000, "'started'");
    const b = this.#spawn();
    const sb = await b.waitFor((r) => r.ev === 'started', 30_000, "'started'");
    if (sa.leader === sb.leader) throw new Error('expected exactly one leader');
    [this.#leader, this.#follower] = sa.leader ? [a, b] : [b, a];
  }

  /** One handover after `idleMs` with both idle (the follower's watch established, nothing in flight). */
  async once(idleMs = 100): Promise<Sample> {
    await sleep(idleMs);
    const leader = this.#leader;
    const follower = this.#follower;
    const t0 = wall();
    leader.proc.kill('SIGTERM');
    const el = await follower.waitFor((r) => r.ev === 'elected', this.o.electMs ?? 10_000, "'elected'");
    const ftrace = await follower.waitFor((r) => r.ev === 'trace', 5000, 'trace');
    await leader.gone(10_000);
    const ltrace = leader.reports.filter((r) => r.ev === 'trace').at(-1); // its first trace is from its own election
    const steps = new Map<string, number>();
    const marks = [...(ltrace?.marks ?? []).map(([s, a]): [string, number] => [`leader: ${s}`, a]), ...(ftrace.marks ?? []).map(([s, a]): [string, number] => [`follower: ${s}`, a])];
    for (const [step, at] of marks) if (at >= t0 && !steps.has(step)) steps.set(step, at - t0);
    this.#leader = follower;
    this.#follower = this.#spawn();
    await this.#follower.waitFor((r) => r.ev === 'started', 30_000, "'started'");
    return { received: el.recvAt - t0, stamped: el.at! - t0, steps };
  }

  async stop(): Promise<void> {
    await Promise.all([this.#leader?.kill(), this.#follower?.kill()]);
  }
}

/** Per step of the traces: median and p99 ms after the signal, in order of median. */
export function stepStats(samples: readonly Sample[]): { step: string; median: number; p99: number }[] {
  const names = new Set<string>();
  for (const s of samples) for (const k of s.steps.keys()) names.add(k);
  return [...names]
    .map((step) => {
      const xs = samples.map((s) => s.steps.get(step)).filter((x): x is number => x !== undefined);
      return { step, median: median(xs), p99: quantile(xs, 0.99) };
    })
    .sort((a, b) => a.median - b.median);
}

/** One handover's trace, a line per step. */
export function oneTrace(s: Sample): string {
  return [...s.steps.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([k, v]) => `  ${v.toFixed(2).padStart(8)} ms  ${k}`)
    .join('\n');
}
