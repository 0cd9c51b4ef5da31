/**
 * Kubernetes graceful handover across processes on REAL kube-apiservers (the real-server tier's
 * control plane, test/real/harness/kube.ts: three kube-apiservers v1.36 sharing one etcd), next to
 * client-go's own `leaderelection` measured in the same run (issue 15 goal 4).
 *
 * - leaderlock: two processes (bench/_handover-child.ts: KubernetesLock on a Lease, endpointsResolver,
 *   LeaderElector); SIGTERM to the leader (its handler calls elector.stop(), which releases); time
 *   from the signal to the follower process reporting 'elected'. A fresh follower replaces the old
 *   leader after each handover, so who leads alternates.
 * - client-go: two peer processes (test/peers/client-go, ReleaseOnCancel), each on one API server
 *   directly; SIGTERM to the leading one (it releases the Lease on cancel); time from the signal to
 *   the other printing started-leading. client-go has no watch: a follower re-reads the Lease every
 *   RetryPeriod × [1, 2.2) (wait.JitterUntil, JitterFactor 1.2).
 *
 * Both with client-go's defaults (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s — also what
 * our LeaderElector derives from ttlMs 15000) and with a short lease (4 s / 2.5 s / 500 ms, the
 * interop tests' timings), the same values on both sides. Before each signal both sides idle for a
 * random U[100 ms, 100 ms + 2.2 × RetryPeriod], so the signal lands at a random phase of the
 * follower's poll (and of the leader's renew). Rounds alternate in blocks of 5 between the two tools.
 * Time = signal sent (parent) → the successor's line read by the parent (like-for-like); the
 * successors' own stamps are reported too (leaderlock: performance.timeOrigin + performance.now();
 * client-go: its RFC 3339 `t`, wall clock, ms precision here).
 *
 *   node --conditions=source --import tsx bench/handover-kube-real.ts [--quick] [--n 20] [--client-go v0.37.2]
 *
 * Needs the real-server tier (scripts/real/build.sh) and root (ip netns); without them it prints one
 * `skipped:` line and exits 0 without a result file. Writes bench/results/handover-kube-real.json.
 * Bounded: every wait has a deadline, each timing's rounds have a time budget (whole run ≤ 5 min,
 * --quick ≤ 2 min): a block of rounds starts only when one more like the last fits in it.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { realBin, realVersion } from '../test/real/harness/bins.js';
import { clientGoPeerVersions } from '../test/real/harness/peers.js';
import { atExit } from '../test/real/harness/procs.js';
import { startKubeCluster, type KubeCluster } from '../test/real/harness/kube.js';
import { LeaderlockPair, ReportingChild, stepStats, wall, type Sample } from './_handover-procs.js';
import { median, quantile, r2, writeResult, type BaselineRow } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, n: { type: 'string' }, 'client-go': { type: 'string' } } });
const N = args.n !== undefined ? Number(args.n) : args.quick ? 6 : 20;
const BLOCK = args.quick ? 3 : 5;

interface Timing {
  label: string;
  ttlMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Sampling budget (both tools; no block starts that would end after it): the whole run stays ≤ 5 min, --quick ≤ 2 min. */
  budgetMs: number;
}
const TIMINGS: Timing[] = [
  { label: 'client-go defaults: lease 15 s, renew deadline 10 s, retry 2 s', ttlMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000, budgetMs: args.quick ? 60_000 : 160_000 },
  { label: 'short lease: 4 s, renew deadline 2.5 s, retry 500 ms', ttlMs: 4000, renewDeadlineMs: 2500, retryPeriodMs: 500, budgetMs: args.quick ? 30_000 : 80_000 },
];

let goVersion: string;
let goBin: string;
try {
  const versions = clientGoPeerVersions();
  goVersion = args['client-go'] ?? versions.at(-1) ?? '';
  goBin = realBin(`clientgo-peer-${goVersion}`);
  realBin('kube-apiserver');
} catch (err) {
  console.log(`skipped: handover-kube-real needs the real-server tier's servers and client-go peer (${String((err as Error).message).split('\n')[0]})`);
  process.exit(0);
}

interface Pair {
  start(): Promise<void>;
  once(idleMs: number): Promise<Sample>;
  stop(): Promise<void>;
}

/** Two leaderlock processes on one Lease (the shared pair, with this run's timing and endpointsResolver). */
function oursPair(t: Timing, cluster: KubeCluster, lease: string): Pair {
  const kube = cluster.clientOptions();
  const config = (): Record<string, unknown> => ({ backend: 'kubernetes', key: lease, ttlMs: t.ttlMs, renewDeadlineMs: t.renewDeadlineMs, retryPeriodMs: t.retryPeriodMs, kube, kubeResolver: 'endpoints' });
  return new LeaderlockPair(config, { prefix: 'll-', electMs: t.ttlMs + 10_000, atExit });
}

/** Two client-go peers on one Lease, each on one API server; SIGTERM the leader (ReleaseOnCancel), a fresh peer replaces it. */
class GoPair implements Pair {
  #seq = 0;
  #leader!: ReportingChild;
  #follower!: ReportingChild;
  /** Handovers whose release did not land (SIGTERM cancelled an in-flight renew: the release PUT meets 409) — the successor waited out the lease. */
  releaseLost = 0;
  constructor(readonly t: Timing, readonly cluster: KubeCluster, readonly lease: string) {}

  #spawn(): ReportingChild {
    const identity = `go-${this.#seq}`;
    const server = this.cluster.apiServers[this.#seq++ % this.cluster.apiServers.length]!.url;
    const d = (ms: number): string => `${ms}ms`;
    const argv = ['-server', server, '-ca-file', this.cluster.caFile, '-token-file', this.cluster.tokenFile, '-namespace', 'default', '-name', this.lease, '-identity', identity];
    argv.push('-lease-duration', d(this.t.ttlMs), '-renew-deadline', d(this.t.renewDeadlineMs), '-retry-period', d(this.t.retryPeriodMs));
    return new ReportingChild(identity, goBin, argv, { json: true, stdin: true, atExit });
  }

  /** A new follower has read the Lease and seen the leader. */
  async #follow(): Promise<void> {
    const id = this.#leader.identity;
    this.#follower = this.#spawn();
    await this.#follower.waitFor((r) => r.ev === 'new-leader' && r.identity === id, 20_000, `new-leader ${id}`);
  }

  async start(): Promise<void> {
    this.#leader = this.#spawn();
    await this.#leader.waitFor((r) => r.ev === 'started-leading', this.t.ttlMs + 20_000, 'started-leading');
    await this.#follow();
  }

  async once(idleMs: number): Promise<Sample> {
    await sleep(idleMs);
    const leader = this.#leader;
    const follower = this.#follower;
    const t0 = wall();
    leader.proc.kill('SIGTERM');
    const el = await follower.waitFor((r) => r.ev === 'started-leading', this.t.ttlMs + 10_000, 'started-leading');
    await leader.gone(10_000);
    if (el.recvAt - t0 > this.t.ttlMs * 0.75) this.releaseLost++;
    this.#leader = follower;
    await this.#follow();
    return { received: el.recvAt - t0, stamped: el.at! - t0, steps: new Map() };
  }

  async stop(): Promise<void> {
    await Promise.all([this.#leader?.kill(), this.#follower?.kill()]);
  }
}

/** Every figure of this bench is in ms. */
type Row = BaselineRow & { timing: string; unit: 'ms' };
const r3 = (x: number): number => Number(x.toPrecision(3));

async function main(): Promise<void> {
  const began = wall();
  let cluster: KubeCluster;
  try {
    cluster = await startKubeCluster();
  } catch (err) {
    console.log(`skipped: handover-kube-real needs the real-server tier (${String((err as Error).message).split('\n')[0]})`);
    return;
  }
  const clusterS = (wall() - began) / 1000;
  const rows: Row[] = [];
  const traces: Record<string, { step: string; median: number; p99: number }[]> = {};
  const medianTraces: Record<string, string> = {};
  const out: string[] = [];
  try {
    for (const t of TIMINGS) {
      const tag = `${t.ttlMs / 1000}s`;
      const ours = oursPair(t, cluster, `hkr-ll-${t.ttlMs}`);
      const go = new GoPair(t, cluster, `hkr-go-${t.ttlMs}`);
      const a: Sample[] = [];
      const b: Sample[] = [];
      const idle = (): number => 100 + Math.random() * 2.2 * t.retryPeriodMs;
      try {
        await ours.start();
        await go.start();
        const until = wall() + t.budgetMs;
        let blockMs = 0;
        for (let i = 0; i < N && wall() + blockMs < until; i += BLOCK) {
          const blockStart = wall();
          for (let j = 0; j < BLOCK && i + j < N; j++) a.push(await ours.once(idle()));
          for (let j = 0; j < BLOCK && i + j < N; j++) b.push(await go.once(idle()));
          blockMs = wall() - blockStart;
          process.stderr.write(`  ${tag}: ${a.length}/${N} (${Math.round((wall() - began) / 1000)} s)\n`);
        }
      } finally {
        await Promise.all([ours.stop(), go.stop()]);
      }
      const recv = a.map((s) => s.received);
      const goRecv = b.map((s) => s.received);
      const goName = `client-go ${goVersion} leaderelection`;
      const lost = go.releaseLost > 0 ? `; ${go.releaseLost} of ${b.length} client-go releases did not land (SIGTERM cancelled an in-flight renew → its release PUT met 409), the successor waited out the lease` : '';
      rows.push({
        timing: t.label,
        metric: `leaderlock, two processes (${tag} lease): SIGTERM → stop() → successor elected`,
        n: recv.length,
        unit: 'ms',
        median: r2(median(recv)),
        p99: r2(quantile(recv, 0.99)),
        baseline: `${goName}, same timings`,
        baselineMedian: r2(median(goRecv)),
        ratio: r3(median(recv) / median(goRecv)),
        note: `p99 ratio ${r3(quantile(recv, 0.99) / quantile(goRecv, 0.99))}×; client-go takes ${(median(goRecv) / median(recv)).toFixed(0)}× as long at the median${lost}`,
      });
      rows.push({ timing: t.label, metric: `${goName} (${tag} lease, peer, same run): SIGTERM → release on cancel → successor started-leading`, n: goRecv.length, unit: 'ms', median: r2(median(goRecv)), p99: r2(quantile(goRecv, 0.99)) });
      rows.push({ timing: t.label, metric: `leaderlock (${tag} lease): signal → elected, the successor's own stamp`, n: a.length, unit: 'ms', median: r2(median(a.map((s) => s.stamped))), p99: r2(quantile(a.map((s) => s.stamped), 0.99)) });
      rows.push({ timing: t.label, metric: `client-go (${tag} lease): signal → started-leading, the peer's own stamp (ms precision)`, n: b.length, unit: 'ms', median: r2(median(b.map((s) => s.stamped))), p99: r2(quantile(b.map((s) => s.stamped), 0.99)) });
      traces[t.label] = stepStats(a).map((x) => ({ step: x.step, median: r2(x.median), p99: r2(x.p99) }));
      const byMedian = [...a].sort((x, y) => x.received - y.received);
      const mid = byMedian[Math.floor(byMedian.length / 2)];
      medianTraces[t.label] = mid
        ? [...mid.steps.entries()]
            .sort((x, y) => x[1] - y[1])
            .map(([k, v]) => `  ${v.toFixed(2).padStart(8)} ms  ${k}`)
            .join('\n')
        : '';
    }
  } finally {
    await cluster.stop();
  }

  const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  out.push(`Kubernetes handover across processes — ${cluster.version} ×3 (real), Lease, our side on endpointsResolver, client-go ${goVersion} peer on one API server each; up to ${N} rounds per row (fewer when a timing's budget runs out)${args.quick ? ' (--quick)' : ''}; cluster up in ${clusterS.toFixed(0)} s`);
  out.push('');
  out.push('| timings | metric | n | median ms | p99 ms | ratio to client-go (median) | note |');
  out.push('|---|---|---:|---:|---:|---:|---|');
  for (const r of rows) out.push(`| ${r.timing} | ${r.metric} | ${r.n} | ${f(r.median)} | ${f(r.p99)} | ${r.ratio !== undefined ? `${r.ratio}×` : ''} | ${r.note ?? ''} |`);
  for (const t of TIMINGS) {
    out.push('', `leaderlock, ${t.label}: where the time goes (median / p99 ms after the signal was sent)`, '', '| step | median | p99 |', '|---|---:|---:|');
    for (const s of traces[t.label] ?? []) out.push(`| ${s.step} | ${s.median.toFixed(2)} | ${s.p99.toFixed(2)} |`);
    out.push('', `the median handover's trace:`, medianTraces[t.label] ?? '');
  }
  console.log(out.join('\n'));
  const file = writeResult('handover-kube-real', {
    bench: 'handover-kube-real',
    command: `node --conditions=source --import tsx bench/handover-kube-real.ts${args.quick ? ' --quick' : ''}`,
    server: cluster.version,
    clientGo: goVersion,
    clientGoBuild: realVersion(`clientgo-peer-${goVersion}`),
    date: new Date().toISOString(),
    quick: args.quick,
    seconds: Math.round((wall() - began) / 1000),
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model,
    timings: TIMINGS,
    // Rows in the shape bench/run.ts normalises ({ metric, median, p99, baseline, baselineMedian, ratio }).
    rows,
    trace: traces,
  });
  console.log(`\nwrote ${file} in ${Math.round((wall() - began) / 1000)} s`);
}

await main();
