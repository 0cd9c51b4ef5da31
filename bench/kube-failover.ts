/**
 * Failover of the Kubernetes API connection: how long a client renewing a Lease every 100 ms goes
 * without a successful request when the API server it talks to dies (connection refused) or is
 * blackholed (accepts, never answers), through the `kubernetes` service (kube-proxy-like: each new
 * connection goes to a random endpoint, the dead one included until the endpoints update) and
 * through `endpointsResolver` (sticky API server IP, rotate within the deadline, service last).
 * Both resolvers are measured in the same run, alternating, against the same FakeKubeApiServer.
 *
 *   node --import tsx bench/kube-failover.ts [--quick] [--runs N] [--deadline MS]
 *
 * Prints a markdown table (median, p99, ratio service/endpoints) and writes
 * bench/results/kube-failover.json. Bounded: N runs per row (default 100, --quick 15) and at most
 * ROW_BUDGET_MS of sampling per row, whichever comes first.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.js';
import { KubeClient, endpointsResolver, serviceResolver } from '../src/backends/kubernetes/index.js';
import { FakeKubeApiServer } from '../src/testing/index.js';
import { quantile, writeResult } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' }, deadline: { type: 'string' } } });
const RUNS = args.runs !== undefined ? Number(args.runs) : args.quick ? 15 : 100;
/** The renew deadline of one request (all rotation included). */
const DEADLINE_MS = args.deadline !== undefined ? Number(args.deadline) : 800;
const ROW_BUDGET_MS = args.quick ? 20_000 : 120_000;
const TICK_MS = 100;
const MAX_OUTAGE_MS = 15_000;
const clock = systemClock;
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

type Fault = 'refused' | 'blackholed';
type Via = 'service' | 'endpoints';

const fake = await FakeKubeApiServer.start({
  nodes: 3,
  // kube-proxy and the endpoint reconciler lag far behind a renew loop: the dead node stays in the
  // service's rotation for the whole measurement, as in the failure this bypass exists for.
  endpointsUpdateDelayMs: 60_000,
});
const base = { ...fake.clientOptions(), requestTimeoutMs: DEADLINE_MS, connections: 1 };
const clients: Record<Via, KubeClient> = {
  service: new KubeClient({ ...base, resolver: serviceResolver(), userAgent: 'bench-service' }),
  endpoints: new KubeClient({ ...base, resolver: endpointsResolver(), userAgent: 'bench-endpoints' }),
};
const names: Record<Via, string> = { service: 'bench-service', endpoints: 'bench-endpoints' };

/** One renew: a CAS-free merge patch of a Lease-sized object. */
async function renew(via: Via): Promise<void> {
  await clients[via].request({ method: 'PATCH', path: `${LEASES}/${via}`, body: { spec: { renewTime: new Date().toISOString().replace('Z', '000Z') } } }); // MicroTime
}

/** The API node that served this client's last request. */
function stickyNode(via: Via) {
  for (let i = fake.requests.length - 1; i >= 0; i--) {
    const r = fake.requests[i]!;
    if (r.userAgent === names[via] && r.status === 200) return fake.nodeByIp(r.node);
  }
  return undefined;
}

async function healAll(): Promise<void> {
  for (const n of fake.nodes) {
    n.heal();
    await n.up();
  }
}

/** Fault the node `via` is using, then renew every TICK_MS until one succeeds; returns the outage, ms. */
async function outage(via: Via, fault: Fault): Promise<number> {
  await renew(via);
  const node = stickyNode(via);
  if (!node) throw new Error(`cannot tell which node ${via} uses`);
  const t0 = clock.now();
  if (fault === 'refused') await node.down();
  else node.blackhole();
  try {
    for (let attempt = 0; clock.now() - t0 < MAX_OUTAGE_MS; attempt++) {
      const start = clock.now();
      try {
        await renew(via);
        return clock.now() - t0;
      } catch {
        const next = start + TICK_MS - clock.now();
        if (next > 0) await clock.sleep(next);
      }
    }
    return MAX_OUTAGE_MS;
  } finally {
    await healAll();
  }
}

for (const via of ['service', 'endpoints'] as const) await clients[via].request({ method: 'POST', path: LEASES, body: { metadata: { name: via }, spec: { holderIdentity: via, leaseDurationSeconds: 15 } }, accept: [409] });

interface Row {
  fault: Fault;
  via: Via;
  n: number;
  medianMs: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Every sample, sorted, ms (rounded to 0.1). */
  samples: number[];
}
const rows: Row[] = [];
for (const fault of ['refused', 'blackholed'] as const) {
  const samples: Record<Via, number[]> = { service: [], endpoints: [] };
  const until = clock.now() + ROW_BUDGET_MS * 2;
  for (let i = 0; i < RUNS && clock.now() < until; i++) {
    for (const via of ['service', 'endpoints'] as const) samples[via].push(await outage(via, fault));
  }
  for (const via of ['service', 'endpoints'] as const) {
    const xs = samples[via].sort((a, b) => a - b);
    rows.push({ fault, via, n: xs.length, medianMs: quantile(xs, 0.5), p90Ms: quantile(xs, 0.9), p99Ms: quantile(xs, 0.99), maxMs: xs.at(-1) ?? NaN, samples: xs.map((x) => Math.round(x * 10) / 10) });
  }
}

await Promise.all(Object.values(clients).map((c) => c.close()));
await fake.close();

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const lines = [
  `Time from the fault to the next successful renew (renew every ${TICK_MS} ms, request deadline ${DEADLINE_MS} ms, 3 API nodes, ${RUNS} runs per row max)`,
  '',
  '| fault | via | runs | median ms | p90 ms | p99 ms | max ms | median ratio service/endpoints |',
  '|---|---|---:|---:|---:|---:|---:|---:|',
];
for (const r of rows) {
  const svc = rows.find((x) => x.fault === r.fault && x.via === 'service')!;
  const ratio = r.via === 'endpoints' ? `${(svc.medianMs / r.medianMs).toFixed(1)}×` : '';
  lines.push(`| ${r.fault} | ${r.via === 'service' ? 'serviceResolver (kube-proxy)' : 'endpointsResolver'} | ${r.n} | ${fmt(r.medianMs)} | ${fmt(r.p90Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ${ratio} |`);
}
console.log(lines.join('\n'));

const out = writeResult('kube-failover', {
  bench: 'kube-failover',
  command: `node --import tsx bench/kube-failover.ts${args.quick ? ' --quick' : ''}${args.runs ? ` --runs ${args.runs}` : ''}${args.deadline ? ` --deadline ${args.deadline}` : ''}`,
  date: new Date().toISOString(),
  node: process.version,
  cpus: availableParallelism(),
  cpuModel: cpus()[0]?.model,
  tickMs: TICK_MS,
  deadlineMs: DEADLINE_MS,
  perTryShareMs: DEADLINE_MS / 4,
  rows,
});
console.log(`\nwrote ${out}`);
