/**
 * ConsulLock latency against FakeConsulServer (HTTP on loopback, real clock) — figures measured
 * against the fake, not a Consul cluster (none can be installed here): they show the lock's own
 * cost over the raw requests it is made of, not Consul's raft latency. Each operation next to the
 * raw ConsulClient requests it is made of, measured in the same run, interleaved:
 *
 *   acquire  = GET ?recurse (key + nomination) + [session renew ∥ PUT ?acquire] + GET (read back CreateIndex)
 *   renew    = session renew ∥ GET (key still ours)
 *   release  = GET + DELETE ?cas
 *   handover = A: GET + session create + PUT ?acquire (nomination) + PUT failover + DELETE ?cas,
 *              then nominee B: GET ?recurse + [renew ∥ PUT ?acquire] + GET + DELETE nomination
 *   elector handover = elector A.handover('b') → elector B emits 'elected' (B learns of the release
 *              through its blocking query and acquires at once)
 *
 *   node --import tsx bench/consul.ts [--quick] [--iterations N]
 *
 * Prints a markdown table (median, p99, raw-request median, ratio) and writes bench/results/consul.json.
 * Bounded: N rounds (default 200, --quick 30) and at most ~60 s of sampling, whichever comes first.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { LeaderElector, systemClock, type Term } from '../src/index.js';
import { ConsulClient, ConsulLock } from '../src/backends/consul/index.js';
import { FakeConsulServer } from '../src/testing/index.js';
import { printRawComparison, quantile, rawComparisonRow as row, sampleAll, timed, timedHandover, writeResult, type RawComparisonRow as Row } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, iterations: { type: 'string' } } });
const N = args.iterations !== undefined ? Number(args.iterations) : args.quick ? 30 : 200;
const BUDGET_MS = 60_000;
const clock = systemClock;
const KEY = 'service/bench/leader';

/** Resolves when `elector` emits 'elected' (rejects after 5 s: the bench stays bounded). */
function nextElected(elector: LeaderElector): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimer(() => reject(new Error('no election within 5 s')), 5000);
    elector.once('elected', () => {
      timer.cancel();
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const fake = await FakeConsulServer.start();
  const clients = [0, 1, 2, 3, 4].map(() => new ConsulClient({ address: fake.address, env: {} }));
  const [ca, cb, craw, cea, ceb] = clients as [ConsulClient, ConsulClient, ConsulClient, ConsulClient, ConsulClient];
  const a = new ConsulLock({ client: ca, key: KEY, ttlMs: 10_000 });
  const b = new ConsulLock({ client: cb, key: KEY, ttlMs: 10_000 });
  const ea = new LeaderElector(new ConsulLock({ client: cea, key: 'service/elect/leader', ttlMs: 10_000 }), { identity: 'ea' });
  const eb = new LeaderElector(new ConsulLock({ client: ceb, key: 'service/elect/leader', ttlMs: 10_000 }), { identity: 'eb' });
  try {
    await craw.kvPut('bench/raw', 'x');
    let term: Term | undefined;
    await ea.start();
    await eb.start();
    const samples = await sampleAll({
      rawGet: () => timed(() => craw.kvGet('bench/raw')),
      rawPut: () => timed(() => craw.kvPut('bench/raw', 'y')),
      acquire: async () => {
        const start = clock.now();
        term = await a.acquire('node-a');
        const ms = clock.now() - start;
        if (!term) throw new Error('acquire failed in the benchmark');
        return ms;
      },
      renew: () => timed(() => a.renew(term!)),
      release: () => timed(() => a.release(term!)),
      handover: () => timedHandover(a, b),
      electorHandover: async () => {
        const [from, to] = ea.isLeader ? [ea, eb] : [eb, ea];
        const elected = nextElected(to);
        const start = clock.now();
        if (!(await from.handover(to.identity))) throw new Error('handover refused');
        await elected;
        const ms = clock.now() - start;
        // Let the electors' follow-up traffic (watch re-arm, first renew) pass before the next
        // probe, outside the timed window, so the raw baselines are not measured against it.
        await clock.sleep(25);
        // …and wake the process up again (an untimed request), so the next round's first probe
        // does not pay for the idle pause.
        await craw.kvGet('bench/raw');
        return ms;
      },
    }, { rounds: N, budgetMs: BUDGET_MS });
    const s = samples as Record<string, number[]>;
    const g = quantile(s.rawGet!, 0.5);
    const p = quantile(s.rawPut!, 0.5);
    // Raw baselines count requests on the critical path (concurrent pairs count once).
    const rows: Row[] = [
      row('raw GET', 'GET', s.rawGet!, g),
      row('raw PUT', 'PUT', s.rawPut!, p),
      row('acquire', 'GET + PUT + GET', s.acquire!, 2 * g + p),
      row('renew', 'PUT ∥ GET', s.renew!, Math.max(g, p)),
      row('release', 'GET + DELETE', s.release!, g + p),
      row('handover (release → nominee holds)', '4 GET + 5 PUT/DELETE', s.handover!, 4 * g + 5 * p),
      row('elector handover (handover() → elected)', 'handover + blocking-query wake-up + acquire', s.electorHandover!, 5 * g + 6 * p),
    ];
    printRawComparison(`ConsulLock vs raw ConsulClient requests — FakeConsulServer over HTTP on loopback (measured against the fake, not a Consul cluster), ${s.rawGet!.length} rounds${args.quick ? ' (--quick)' : ''}`, rows);
    console.log('\nCrash failover is not sampled (it takes seconds): its bound is 2 × session TTL + lock-delay after the last renew (Consul invalidates a session 1–2 × TTL after it).');
    const out = writeResult('consul', { bench: 'consul', against: 'FakeConsulServer (loopback HTTP)', iterations: N, quick: args.quick, node: process.version, cpus: availableParallelism(), cpu: cpus()[0]?.model, date: new Date().toISOString(), rows });
    console.log(`\nwritten ${out}`);
  } finally {
    await Promise.allSettled([ea.stop(), eb.stop()]);
    await Promise.allSettled([a.close(), b.close()]);
    for (const c of clients) c.close();
    await fake.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
