/**
 * KubernetesLock latency against FakeKubeApiServer (HTTPS on loopback, endpointsResolver, one sticky
 * API node), next to the raw KubeClient requests each operation is made of:
 *
 *   acquire  = GET + CAS PUT            (a released Lease; the token is leaseTransitions + 1)
 *   renew    = CAS PUT                  (on the resourceVersion of our last write: no GET)
 *   release  = CAS PUT                  (holder cleared in place, as client-go's ReleaseOnCancel)
 *   handover = release(successor) by A, then acquire by the nominee B = PUT + GET + PUT
 *
 *   node --conditions=source --import tsx bench/kube-lock.ts [--quick] [--iterations N]
 *
 * Prints a markdown table (median, p99, raw-request median, ratio) and writes
 * bench/results/kube-lock.json. Bounded: N rounds (default 300, --quick 40) of every probe,
 * interleaved, and at most ~60 s of sampling, whichever comes first.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { systemClock, type Term } from 'leaderlock';
import { KubeClient, KubernetesLock, endpointsResolver } from 'leaderlock/kubernetes';
import { FakeKubeApiServer } from 'leaderlock/testing';
import { printRawComparison, quantile, rawComparisonRow as row, sampleAll, timed, timedHandover, writeResult, type RawComparisonRow as Row } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, iterations: { type: 'string' } } });
const N = args.iterations !== undefined ? Number(args.iterations) : args.quick ? 40 : 300;
const ROW_BUDGET_MS = 20_000;
const clock = systemClock;
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

async function main(): Promise<void> {
  const fake = await FakeKubeApiServer.start({ nodes: 3 });
  const clients: KubeClient[] = [];
  const newClient = (): KubeClient => {
    const c = new KubeClient({ ...fake.clientOptions(), resolver: endpointsResolver() });
    clients.push(c);
    return c;
  };
  try {
    const ca = newClient();
    const cb = newClient();
    const a = new KubernetesLock({ client: ca, name: 'bench', ttlMs: 15_000 });
    const b = new KubernetesLock({ client: cb, name: 'bench', ttlMs: 15_000 });

    // Raw requests on an object of our own, the same shape as the lock's.
    const raw = await ca.request<{ metadata: { resourceVersion: string } }>({
      method: 'POST',
      path: LEASES,
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'bench-raw' }, spec: { leaseDurationSeconds: 15, leaseTransitions: 0 } },
    });
    let rawObj = raw.body;
    let renewing: Term | undefined;
    const samples = await sampleAll({
      rawGet: () => timed(() => ca.request({ method: 'GET', path: `${LEASES}/bench-raw` })),
      rawPut: async () => {
        const start = clock.now();
        const res = await ca.request<{ metadata: { resourceVersion: string } }>({ method: 'PUT', path: `${LEASES}/bench-raw`, body: rawObj });
        const ms = clock.now() - start;
        rawObj = res.body;
        return ms;
      },
      acquire: async () => {
        const start = clock.now();
        const term = await a.acquire('node-a');
        const ms = clock.now() - start;
        if (!term) throw new Error('acquire failed in the benchmark');
        renewing = term; // the next round's renew and release use it
        return ms;
      },
      renew: () => timed(() => a.renew(renewing!)),
      release: async () => {
        const ms = await timed(() => a.release(renewing!));
        return ms;
      },
      handover: () => timedHandover(a, b),
    }, { rounds: N, budgetMs: ROW_BUDGET_MS * 3 });
    const { rawGet, rawPut, acquire, renew, release, handover } = samples as Record<string, number[]>;
    const g = quantile(rawGet!, 0.5);
    const p = quantile(rawPut!, 0.5);

    const rows: Row[] = [
      row('raw GET', 'GET', rawGet!, g),
      row('raw CAS PUT', 'PUT', rawPut!, p),
      row('acquire', 'GET + PUT', acquire!, g + p),
      row('renew', 'PUT', renew!, p),
      row('release', 'PUT', release!, p),
      row('handover (release → nominee holds)', 'PUT + GET + PUT', handover!, 2 * p + g),
    ];
    printRawComparison(`KubernetesLock vs raw KubeClient requests — FakeKubeApiServer over HTTPS on loopback, ${N} iterations${args.quick ? ' (--quick)' : ''}`, rows);

    const out = writeResult('kube-lock', { bench: 'kube-lock', iterations: N, quick: args.quick, node: process.version, cpus: availableParallelism(), cpu: cpus()[0]?.model, date: new Date().toISOString(), rows });
    console.log(`\nwritten ${out}`);
    await Promise.all([a.close(), b.close()]);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await fake.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
