/**
 * KubernetesLock on REAL kube-apiservers (the second test tier's harness, test/real/harness/kube.ts:
 * three kube-apiservers sharing one etcd 3.6 in a network namespace, and a kube-proxy-like service
 * address on 127.0.0.1), each figure next to an in-run baseline:
 *
 *   1. acquire / renew / release (Lease) vs the raw KubeClient GET and CAS PUT they are made of,
 *      on the same client (endpointsResolver: one sticky API server);
 *   2. graceful handover in one process: A releases → B's watch hears it → B acquires, vs the raw
 *      requests on that path (PUT + GET + PUT; the watch hop is in the lock figure only);
 *   3. API-server failure: kill -9 (then restart) and SIGSTOP (then SIGCONT) of the API server both
 *      clients are on; time from the fault to the next successful renew (a merge PATCH of a Lease,
 *      every 100 ms, request deadline 800 ms; from the moment the killed process is gone) through the service address (serviceResolver,
 *      connections: 1) and through endpointsResolver, measured in parallel on the same fault.
 *      kube-proxy's view keeps the dead server for the whole measurement (as in kube-failover.ts).
 *
 *   LEADERLOCK_REAL_CACHE=<cache> node --conditions=source --import tsx bench/kube-real.ts [--quick]
 *
 * Needs the tier's servers (scripts/real/build.sh) and root (ip netns). Without them it prints one
 * `skipped:` line and exits 0 without a result file (bench/run.ts records it as skipped).
 * Bounded: row budgets below and at most KILLS kill -9 restarts; a whole run takes ≤ 3 min.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { systemClock, type LockState, type Term } from 'leaderlock';
import { KubeClient, KubernetesLock, endpointsResolver, serviceResolver, type ApiEndpointResolver } from 'leaderlock/kubernetes';
import { startKubeCluster, type ApiServer, type KubeCluster } from '../test/real/harness/kube.js';
import { printRawComparison, quantile, rawComparisonRow as row, sampleAll, timed, writeResult, type RawComparisonRow } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const N = args.quick ? 30 : 150;
const HANDOVERS = args.quick ? 10 : 40;
const KILLS = args.quick ? 2 : 10;
const STOPS = args.quick ? 3 : 15;
const BUDGET_MS = args.quick ? 15_000 : 40_000;
const TICK_MS = 100;
const DEADLINE_MS = 800;
const MAX_OUTAGE_MS = 15_000;
const clock = systemClock;
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

let cluster: KubeCluster;
try {
  cluster = await startKubeCluster();
} catch (err) {
  console.log(`skipped: kube-real needs the real-server tier (${String((err as Error).message).split('\n')[0]})`);
  process.exit(0);
}

const clients: KubeClient[] = [];
function newClient(resolver: ApiEndpointResolver = endpointsResolver({ refreshMs: 1000 }), extra: { connections?: number } = {}): KubeClient {
  const c = new KubeClient({ ...cluster.clientOptions(), resolver, requestTimeoutMs: DEADLINE_MS, ...extra });
  c.on('warning', () => undefined);
  clients.push(c);
  return c;
}

/** Pulls `it` until `pred` holds; bounded. */
async function until(it: AsyncIterator<LockState>, pred: (s: LockState) => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const r = await it.next();
    if (r.done) throw new Error(`watch ended waiting for ${what}`);
    if (pred(r.value)) return;
  }
  throw new Error(`no ${what} in 1000 watch states`);
}

interface FailRow {
  fault: 'kill -9' | 'SIGSTOP';
  via: 'service' | 'endpoints';
  n: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  samples: number[];
}

try {
  // 1. acquire / renew / release vs raw requests.
  const ca = newClient();
  const a = new KubernetesLock({ client: ca, name: 'bench-real', ttlMs: 15_000, requestTimeoutMs: 5000 });
  let rawObj = (await ca.request<{ metadata: { resourceVersion: string } }>({
    method: 'POST',
    path: LEASES,
    body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'bench-real-raw' }, spec: { leaseDurationSeconds: 15, leaseTransitions: 0 } },
  })).body;
  let held: Term | undefined;
  const s = await sampleAll(
    {
      rawGet: () => timed(() => ca.request({ method: 'GET', path: `${LEASES}/bench-real-raw` })),
      rawPut: async () => {
        const start = clock.now();
        rawObj = (await ca.request<{ metadata: { resourceVersion: string } }>({ method: 'PUT', path: `${LEASES}/bench-real-raw`, body: rawObj })).body;
        return clock.now() - start;
      },
      acquire: async () => {
        const start = clock.now();
        held = await a.acquire('node-a');
        const ms = clock.now() - start;
        if (!held) throw new Error('acquire failed in the benchmark');
        return ms;
      },
      renew: () => timed(() => a.renew(held!)),
      release: () => timed(() => a.release(held!)),
    },
    { rounds: N, budgetMs: BUDGET_MS },
  );
  const g = quantile(s.rawGet!, 0.5);
  const p = quantile(s.rawPut!, 0.5);
  const lockRows: RawComparisonRow[] = [row('raw GET', 'GET', s.rawGet!, g), row('raw CAS PUT', 'PUT', s.rawPut!, p), row('acquire', 'GET + PUT', s.acquire!, g + p), row('renew', 'PUT', s.renew!, p), row('release', 'PUT', s.release!, p)];

  // 2. Handover: A releases, B's watch hears the key free, B acquires.
  const b = new KubernetesLock({ client: newClient(), name: 'bench-real', ttlMs: 15_000, requestTimeoutMs: 5000 });
  const stop = new AbortController();
  const watch = b.watch({ signal: stop.signal })[Symbol.asyncIterator]();
  const handovers: number[] = [];
  const hEnd = clock.now() + BUDGET_MS;
  for (let i = 0; i < HANDOVERS + 3 && clock.now() < hEnd; i++) {
    const term = await a.acquire('node-a');
    if (!term) throw new Error('a could not acquire');
    await until(watch, (st) => st.leader?.holder === 'node-a', 'node-a holding');
    const start = clock.now();
    await a.release(term);
    await until(watch, (st) => st.leader === undefined, 'the release');
    const next = await b.acquire('node-b');
    const ms = clock.now() - start;
    if (!next) throw new Error('b could not acquire after the release');
    if (i >= 3) handovers.push(ms); // 3 warm-up rounds
    await b.release(next);
  }
  stop.abort();
  lockRows.push(row('handover (release → watch → acquire)', 'PUT + GET + PUT', handovers.sort((x, y) => x - y), 2 * p + g));
  await Promise.all([a.close(), b.close()]);
  printRawComparison(`KubernetesLock vs raw KubeClient requests — ${cluster.version} ×3 (real), endpointsResolver, ${N} rounds${args.quick ? ' (--quick)' : ''}`, lockRows);

  // 3. API-server failure, both resolvers on the same fault.
  const eps = newClient(endpointsResolver({ refreshMs: 1000 }));
  for (const name of ['via-service', 'via-endpoints']) {
    await eps.request({ method: 'POST', path: LEASES, body: { metadata: { name }, spec: { holderIdentity: name, leaseDurationSeconds: 15 } }, accept: [409] });
  }
  const renew = (c: KubeClient, name: string): Promise<unknown> =>
    c.request({ method: 'PATCH', path: `${LEASES}/${name}`, body: { spec: { renewTime: new Date().toISOString().replace('Z', '000Z') } } });
  const outage = async (c: KubeClient, name: string, t0: number): Promise<number> => {
    while (clock.now() - t0 < MAX_OUTAGE_MS) {
      const start = clock.now();
      try {
        await renew(c, name);
        return clock.now() - t0;
      } catch {
        const next = start + TICK_MS - clock.now();
        if (next > 0) await clock.sleep(next);
      }
    }
    return MAX_OUTAGE_MS;
  };
  const all = cluster.proxy.targets;
  const samples: Record<string, number[]> = {};
  const failEnd = clock.now() + (args.quick ? 60_000 : 110_000);
  for (const fault of ['kill -9', 'SIGSTOP'] as const) {
    for (let i = 0; i < (fault === 'kill -9' ? KILLS : STOPS) && clock.now() < failEnd; i++) {
      await renew(eps, 'via-endpoints');
      const host = new URL(eps.stats.endpoint!).hostname;
      const victim: ApiServer | undefined = cluster.apiServers.find((x) => x.ip === host);
      if (!victim) throw new Error(`endpointsResolver is on ${host}, not an API server`);
      // The service client's one connection lands on the victim; kube-proxy then forwards to all three again.
      cluster.proxy.setTargets(all.filter((t) => t.ip === victim.ip));
      const svc = newClient(serviceResolver(), { connections: 1 });
      await renew(svc, 'via-service');
      cluster.proxy.setTargets(all);
      // t0 once the process is gone (kill -9 waits for the exit): the figure is the clients' recovery, not the kernel's teardown.
      const k0 = clock.now();
      if (fault === 'kill -9') await victim.signal('SIGKILL');
      else victim.proc.child.kill('SIGSTOP');
      const t0 = clock.now();
      (samples[`${fault}|signal`] ??= []).push(t0 - k0);
      try {
        const [ms, me] = await Promise.all([outage(svc, 'via-service', t0), outage(eps, 'via-endpoints', t0)]);
        (samples[`${fault}|service`] ??= []).push(ms);
        (samples[`${fault}|endpoints`] ??= []).push(me);
      } finally {
        if (fault === 'kill -9') await victim.restart();
        else victim.proc.child.kill('SIGCONT');
        await svc.close();
        clients.splice(clients.indexOf(svc), 1);
      }
    }
  }
  const failRows: FailRow[] = [];
  const signalMs: Record<string, number> = {};
  for (const [key, xs] of Object.entries(samples)) {
    const [fault, via] = key.split('|') as [FailRow['fault'], FailRow['via'] | 'signal'];
    if (via === 'signal') {
      signalMs[fault] = quantile(xs, 0.5);
      continue;
    }
    xs.sort((x, y) => x - y);
    failRows.push({ fault, via, n: xs.length, medianMs: quantile(xs, 0.5), p99Ms: quantile(xs, 0.99), maxMs: xs.at(-1)!, samples: xs.map((x) => Math.round(x * 10) / 10) });
  }
  const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  console.log(`\nTime from the fault of the API server both clients use to the next successful renew (renew every ${TICK_MS} ms, request deadline ${DEADLINE_MS} ms, 3 real API servers)\n`);
  console.log(`(median time until the signalled process was gone, not in the figures: ${Object.entries(signalMs).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')})\n`);
  console.log('| fault | via | n | median ms | p99 ms | max ms | ratio to service |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of failRows) {
    const svc = failRows.find((x) => x.fault === r.fault && x.via === 'service')!;
    console.log(`| ${r.fault} | ${r.via === 'service' ? 'service address (kube-proxy)' : 'endpointsResolver'} | ${r.n} | ${f(r.medianMs)} | ${f(r.p99Ms)} | ${f(r.maxMs)} | ${r.via === 'endpoints' ? `${(r.medianMs / svc.medianMs).toFixed(2)}×` : ''} |`);
  }

  const out = writeResult('kube-real', {
    bench: 'kube-real',
    command: `LEADERLOCK_REAL_CACHE=<cache> node --conditions=source --import tsx bench/kube-real.ts${args.quick ? ' --quick' : ''}`,
    server: cluster.version,
    date: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model,
    tickMs: TICK_MS,
    deadlineMs: DEADLINE_MS,
    signalMedianMs: signalMs,
    // Rows in the shapes bench/run.ts normalises: raw comparisons, then { fault, via } rows.
    rows: [...lockRows, ...failRows],
  });
  console.log(`\nwrote ${out}`);
} finally {
  await Promise.allSettled(clients.map((c) => c.close()));
  await cluster.stop();
}
