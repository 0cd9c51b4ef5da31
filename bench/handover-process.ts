/**
 * Graceful handover across processes, as users deploy it: leader and follower are separate Node
 * processes (bench/_handover-child.ts); the leader gets SIGTERM (its handler calls elector.stop());
 * the time is from the signal to the successor process reporting 'elected'. Clocks: high-resolution
 * wall time (performance.timeOrigin + performance.now()) in every process.
 *
 * - etcd (real etcd child process, data dir on /dev/shm when it exists): next to `etcdctl elect`
 *   with two processes (SIGINT = resign, time until the waiting candidate prints), measured in the
 *   same run, interleaved in blocks of 5.
 * - Consul and Kubernetes: against FakeConsulServer / FakeKubeApiServer (HTTP(S) on loopback, in this
 *   process), without a peer row: `consul lock` and client-go's leaderelection are not on this
 *   machine yet (they come with the real-server test tier).
 *
 * Every handover also yields a trace (signal received, stop() entered, release sent/acked, watch
 * states at the follower, acquire sent/acked, elected emitted); the table of median step offsets
 * shows where the time goes, and the median handover's own trace is printed.
 *
 *   node --conditions=source --import tsx bench/handover-process.ts [--quick] [--n 30] [--only etcd]
 *
 * Writes bench/results/handover-process.json. Bounded: every wait has a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { ETCDCTL_BIN, startEtcd } from '../test/helpers/etcd-cluster.js';
import { FakeConsulServer, FakeKubeApiServer } from '../src/testing/index.js';
import { RESULTS_DIR, median, quantile, writeResult } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, n: { type: 'string' }, only: { type: 'string' } } });
const N = args.n !== undefined ? Number(args.n) : args.quick ? 30 : 60;
const BLOCK = 5;
const CHILD = fileURLToPath(new URL('./_handover-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const wall = (): number => performance.timeOrigin + performance.now();

interface Report {
  ev: string;
  at?: number;
  recvAt: number;
  leader?: boolean;
  marks?: [string, number][];
}

/** A spawned process whose stdout lines are JSON reports (or, for etcdctl, any output). */
class Proc {
  readonly reports: Report[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  #waiters = new Set<() => void>();
  #stderr = '';

  constructor(cmd: string, argv: string[], json: boolean) {
    this.proc = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3' } });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      const recvAt = wall();
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!json) this.reports.push({ ev: 'line', recvAt });
        else {
          try {
            this.reports.push({ ...(JSON.parse(line) as Omit<Report, 'recvAt'>), recvAt });
          } catch {
            continue;
          }
        }
      }
      for (const w of [...this.#waiters]) w();
    });
    this.proc.stderr!.on('data', (d: Buffer) => void (this.#stderr = (this.#stderr + d.toString()).slice(-2000)));
    // 'close' (not 'exit'): the process is gone and its stdout fully read.
    this.exited = new Promise((resolve) => this.proc.once('close', () => resolve()));
    void this.exited.then(() => {
      for (const w of [...this.#waiters]) w();
    });
  }

  waitFor(pred: (r: Report) => boolean, ms: number): Promise<Report> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const r = this.reports.find(pred);
        if (r) done(() => resolve(r));
        else if (this.proc.exitCode !== null || this.proc.signalCode !== null) done(() => reject(new Error(`process exited first; stderr: ${this.#stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no report within ${ms} ms; stderr: ${this.#stderr}`))), ms);
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      this.#waiters.add(check);
      check();
    });
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

interface Sample {
  /** Signal sent (parent) → 'elected' stamped by the successor process. */
  stamped: number;
  /** Signal sent → the parent read the successor's line (like-for-like with etcdctl's printout). */
  received: number;
  /** Step → ms after the signal was sent, the leader's and the successor's marks merged. */
  steps: Map<string, number>;
}

/** Two leaderlock processes; SIGTERM the leader, a fresh follower replaces it after each handover. */
class LeaderlockPair {
  #seq = 0;
  #leader!: Proc;
  #follower!: Proc;
  constructor(readonly config: Record<string, unknown>) {}

  #spawn(): Proc {
    const cfg = { ...this.config, identity: `node-${this.#seq++}` };
    return new Proc(process.execPath, ['--conditions=source', '--import', 'tsx', CHILD, JSON.stringify(cfg)], true);
  }

  async start(): Promise<void> {
    const a = this.#spawn();
    const sa = await a.waitFor((r) => r.ev === 'started', 20_000);
    const b = this.#spawn();
    const sb = await b.waitFor((r) => r.ev === 'started', 20_000);
    if (sa.leader === sb.leader) throw new Error('expected exactly one leader');
    [this.#leader, this.#follower] = sa.leader ? [a, b] : [b, a];
  }

  async once(): Promise<Sample> {
    await sleep(100); // both idle: the follower's watch is established, nothing in flight
    const leader = this.#leader;
    const follower = this.#follower;
    const t0 = wall();
    leader.proc.kill('SIGTERM');
    const el = await follower.waitFor((r) => r.ev === 'elected', 10_000);
    const ftrace = await follower.waitFor((r) => r.ev === 'trace', 10_000);
    await leader.exited;
    const ltrace = leader.reports.filter((r) => r.ev === 'trace').at(-1); // its first trace is from its own election
    const steps = new Map<string, number>();
    for (const [step, at] of [...(ltrace?.marks ?? []).map(([s, a]): [string, number] => [`leader: ${s}`, a]), ...(ftrace.marks ?? []).map(([s, a]): [string, number] => [`follower: ${s}`, a])]) {
      if (at >= t0 && !steps.has(step)) steps.set(step, at - t0);
    }
    this.#leader = follower;
    this.#follower = this.#spawn();
    await this.#follower.waitFor((r) => r.ev === 'started', 20_000);
    return { stamped: el.at! - t0, received: el.recvAt - t0, steps };
  }

  async stop(): Promise<void> {
    await Promise.all([this.#leader?.kill(), this.#follower?.kill()]);
  }
}

/** `etcdctl elect` ×2: SIGINT the leader (it resigns), time until the waiting candidate prints. */
class EtcdctlPair {
  #seq = 0;
  #leader!: Proc;
  #next!: Proc;
  readonly #kv: Etcd3;
  constructor(readonly endpoint: string) {
    this.#kv = new Etcd3({ hosts: endpoint });
  }
  #spawn(): Proc {
    return new Proc(ETCDCTL_BIN, ['--endpoints', this.endpoint, 'elect', '/bench/etcdctl', `p${this.#seq++}`], false);
  }
  /** Both candidates' keys exist: the new one is registered and waits behind the leader. */
  async #registered(): Promise<void> {
    for (let i = 0; i < 400; i++) {
      if ((await this.#kv.getAll().prefix('/bench/etcdctl/').count()) >= 2) return;
      await sleep(5);
    }
    throw new Error('etcdctl candidate did not register within 2 s');
  }
  async start(): Promise<void> {
    this.#leader = this.#spawn();
    await this.#leader.waitFor(() => true, 10_000);
    this.#next = this.#spawn();
    await this.#registered();
  }
  async once(): Promise<Sample> {
    await sleep(100);
    const t0 = wall();
    this.#leader.proc.kill('SIGINT');
    const printed = await this.#next.waitFor(() => true, 10_000);
    await this.#leader.exited;
    this.#leader = this.#next;
    this.#next = this.#spawn();
    await this.#registered();
    return { stamped: Number.NaN, received: printed.recvAt - t0, steps: new Map() };
  }
  async stop(): Promise<void> {
    await Promise.all([this.#leader?.kill(), this.#next?.kill()]);
    this.#kv.close();
  }
}

interface Row {
  backend: string;
  metric: string;
  n: number;
  unit: 'ms';
  median: number;
  p99: number;
  baseline?: string;
  baselineMedian?: number;
  ratio?: number;
  note?: string;
}
const rows: Row[] = [];
const r2 = (x: number): number => Math.round(x * 100) / 100;

function stepTable(samples: Sample[]): string {
  const names = new Set<string>();
  for (const s of samples) for (const k of s.steps.keys()) names.add(k);
  const lines = ['| step (ms after the signal was sent) | median | p99 |', '|---|---:|---:|'];
  const stats = [...names].map((n) => {
    const xs = samples.map((s) => s.steps.get(n)).filter((x): x is number => x !== undefined);
    return { n, med: median(xs), p99: quantile(xs, 0.99) };
  });
  for (const s of stats.sort((a, b) => a.med - b.med)) lines.push(`| ${s.n} | ${s.med.toFixed(2)} | ${s.p99.toFixed(2)} |`);
  return lines.join('\n');
}

function oneTrace(s: Sample): string {
  return [...s.steps.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([k, v]) => `  ${v.toFixed(2).padStart(8)} ms  ${k}`)
    .join('\n');
}

function report(backend: string, ours: Sample[], peer?: { name: string; xs: Sample[] }, note?: string): void {
  const recv = ours.map((s) => s.received);
  const stamped = ours.map((s) => s.stamped);
  const row: Row = { backend, metric: 'leaderlock, two processes: SIGTERM → stop() → successor elected (read by parent)', n: recv.length, unit: 'ms', median: r2(median(recv)), p99: r2(quantile(recv, 0.99)) };
  if (peer) {
    const p = peer.xs.map((s) => s.received);
    row.baseline = peer.name;
    row.baselineMedian = r2(median(p));
    row.ratio = r2(median(recv) / median(p));
    row.note = `p99 ratio ${r2(quantile(recv, 0.99) / quantile(p, 0.99))}×`;
    rows.push({ backend, metric: `${peer.name} (peer, same run)`, n: p.length, unit: 'ms', median: r2(median(p)), p99: r2(quantile(p, 0.99)) });
  } else if (note) row.note = note;
  rows.push(row);
  rows.push({ backend, metric: 'leaderlock, two processes: signal → elected (successor’s own stamp)', n: stamped.length, unit: 'ms', median: r2(median(stamped)), p99: r2(quantile(stamped, 0.99)) });
  const byMedian = [...ours].sort((a, b) => a.received - b.received);
  process.stderr.write(`\n${backend}: where the time goes (${ours.length} handovers)\n${stepTable(ours)}\n`);
  process.stderr.write(`${backend}: the median handover's trace\n${oneTrace(byMedian[Math.floor(byMedian.length / 2)]!)}\n`);
}

async function etcd(): Promise<void> {
  const shm = existsSync('/dev/shm');
  const cluster = await startEtcd();
  const ours = new LeaderlockPair({ backend: 'etcd', endpoints: cluster.endpoints, key: '/bench/handover-process/leader', ttlMs: 15_000 });
  const ctl = new EtcdctlPair(cluster.endpoints[0]!);
  const a: Sample[] = [];
  const b: Sample[] = [];
  try {
    await ours.start();
    await ctl.start();
    for (let i = 0; i < N; i += BLOCK) {
      for (let j = 0; j < BLOCK && i + j < N; j++) a.push(await ours.once());
      for (let j = 0; j < BLOCK && i + j < N; j++) b.push(await ctl.once());
      process.stderr.write(`  etcd: ${a.length}/${N}\n`);
    }
  } finally {
    await ours.stop();
    await ctl.stop();
    await cluster.stop();
  }
  report(`etcd (${shm ? 'data on tmpfs' : 'data on disk: no /dev/shm'})`, a, { name: 'etcdctl elect (SIGINT = resign)', xs: b });
}

async function consul(): Promise<void> {
  const fake = await FakeConsulServer.start();
  const ours = new LeaderlockPair({ backend: 'consul', address: fake.address, key: 'service/bench-process/leader', ttlMs: 10_000 });
  const a: Sample[] = [];
  try {
    await ours.start();
    for (let i = 0; i < N; i++) a.push(await ours.once());
  } finally {
    await ours.stop();
    await fake.close();
  }
  report('consul (FakeConsulServer)', a, undefined, 'no peer row: `consul lock` is not on this machine yet (real-server tier being built); against the fake');
}

async function kubernetes(): Promise<void> {
  const fake = await FakeKubeApiServer.start({ nodes: 1 });
  const ours = new LeaderlockPair({ backend: 'kubernetes', kube: fake.clientOptions(), key: 'bench-process', ttlMs: 15_000 });
  const a: Sample[] = [];
  try {
    await ours.start();
    for (let i = 0; i < N; i++) a.push(await ours.once());
  } finally {
    await ours.stop();
    await fake.close();
  }
  report('kubernetes (FakeKubeApiServer)', a, undefined, 'no peer row: client-go leaderelection is not on this machine yet (real-server tier being built); against the fake');
}

async function main(): Promise<void> {
  const began = wall();
  const only = args.only?.split(',');
  const benches: Record<string, () => Promise<void>> = { etcd, consul, kubernetes };
  for (const [name, fn] of Object.entries(benches)) if (!only || only.includes(name)) await fn();
  const header = '| backend | metric | n | median | p99 | peer (median) | ratio | note |\n|---|---|---|---|---|---|---|---|';
  const lines = rows.map((r) => `| ${r.backend} | ${r.metric} | ${r.n} | ${r.median} ms | ${r.p99} ms | ${r.baseline ? `${r.baseline} (${r.baselineMedian} ms)` : ''} | ${r.ratio !== undefined ? `${r.ratio}×` : ''} | ${r.note ?? ''} |`);
  process.stdout.write(`${header}\n${lines.join('\n')}\n`);
  // With --only, keep the other backends' rows of the previous run (each row carries its own date).
  const date = new Date().toISOString();
  const fresh = rows.map((r) => ({ ...r, metric: `${r.backend}: ${r.metric}`, date }));
  const file = join(RESULTS_DIR, 'handover-process.json');
  const previous = only && existsSync(file) ? ((JSON.parse(readFileSync(file, 'utf8')) as { rows?: (Row & { date?: string })[] }).rows ?? []) : [];
  const kept = previous.filter((r) => !rows.some((x) => x.backend.split(' ')[0] === r.backend.split(' ')[0]));
  writeResult('handover-process', { quick: args.quick, date, seconds: Math.round((wall() - began) / 1000), rows: [...fresh, ...kept] });
}

await main();
