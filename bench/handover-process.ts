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
 *   process), without a peer row. Kubernetes on the real kube-apiservers next to client-go's
 *   leaderelection is bench/handover-kube-real.ts; no Consul binary can be built on this machine.
 *
 * Every handover also yields a trace (signal received, stop() entered, release sent/acked, watch
 * states at the follower, acquire sent/acked, elected emitted); the table of median step offsets
 * shows where the time goes, and the median handover's own trace is printed.
 *
 *   node --conditions=source --import tsx bench/handover-process.ts [--quick] [--n 30] [--only etcd]
 *
 * Writes bench/results/handover-process.json. Bounded: every wait has a deadline.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { ETCDCTL_BIN, startEtcd } from '../test/helpers/etcd-cluster.js';
import { FakeConsulServer, FakeKubeApiServer } from '../src/testing/index.js';
import { LeaderlockPair, oneTrace, ReportingChild, stepStats, wall, type Sample } from './_handover-procs.js';
import { RESULTS_DIR, median, quantile, r2, writeResult, type BaselineRow } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, n: { type: 'string' }, only: { type: 'string' } } });
const N = args.n !== undefined ? Number(args.n) : args.quick ? 30 : 60;
const BLOCK = 5;

/** `etcdctl elect` ×2: SIGINT the leader (it resigns), time until the waiting candidate prints. */
class EtcdctlPair {
  #seq = 0;
  #leader!: ReportingChild;
  #next!: ReportingChild;
  readonly #kv: Etcd3;
  constructor(readonly endpoint: string) {
    this.#kv = new Etcd3({ hosts: endpoint });
  }
  #spawn(): ReportingChild {
    const name = `p${this.#seq++}`;
    return new ReportingChild(name, ETCDCTL_BIN, ['--endpoints', this.endpoint, 'elect', '/bench/etcdctl', name], { json: false, env: { ...process.env, ETCDCTL_API: '3' } });
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

/** Every figure of this bench is in ms. */
type Row = BaselineRow & { backend: string; unit: 'ms' };
const rows: Row[] = [];

function stepTable(samples: Sample[]): string {
  const lines = ['| step (ms after the signal was sent) | median | p99 |', '|---|---:|---:|'];
  for (const s of stepStats(samples)) lines.push(`| ${s.step} | ${s.median.toFixed(2)} | ${s.p99.toFixed(2)} |`);
  return lines.join('\n');
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
  const ours = new LeaderlockPair(() => ({ backend: 'etcd', endpoints: cluster.endpoints, key: '/bench/handover-process/leader', ttlMs: 15_000 }));
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
  const ours = new LeaderlockPair(() => ({ backend: 'consul', address: fake.address, key: 'service/bench-process/leader', ttlMs: 10_000 }));
  const a: Sample[] = [];
  try {
    await ours.start();
    for (let i = 0; i < N; i++) a.push(await ours.once());
  } finally {
    await ours.stop();
    await fake.close();
  }
  report('consul (FakeConsulServer)', a, undefined, 'no peer row: no Consul binary can be built on this machine (README, second tier); against the fake');
}

async function kubernetes(): Promise<void> {
  const fake = await FakeKubeApiServer.start({ nodes: 1 });
  const ours = new LeaderlockPair(() => ({ backend: 'kubernetes', kube: fake.clientOptions(), key: 'bench-process', ttlMs: 15_000 }));
  const a: Sample[] = [];
  try {
    await ours.start();
    for (let i = 0; i < N; i++) a.push(await ours.once());
  } finally {
    await ours.stop();
    await fake.close();
  }
  report('kubernetes (FakeKubeApiServer)', a, undefined, 'against the fake; on real kube-apiservers next to client-go leaderelection: bench/handover-kube-real.ts');
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
