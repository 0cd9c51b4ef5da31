/**
 * Handover latency on the memory backend, real clock, one process — the floor of what the elector
 * itself costs, with no network in the way. Every figure next to a baseline measured in the same run:
 *
 *   graceful handover = leader A `stop()` → candidate B emits 'elected' (B learns of the release
 *                       from its watch and acquires at once)
 *   named handover    = A `handover('b')` → B 'elected'
 *   polling baseline  = the same release, but the candidate re-tries `acquire()` every retryPeriod
 *                       (client-go style, no watch); it starts at a random phase of its period
 *   renew / acquire   = `MemoryLock` calls vs the `MemoryStore` operations they are made of
 *
 *   node --conditions=source --import tsx bench/memory.ts [--quick] [--iterations N]
 *
 * ttl 3 s, so retryPeriod = 2/15 × ttl = 400 ms (the elector's default ratio) for both contenders.
 * Prints a markdown table and writes bench/results/memory.json. Bounded: N rounds (default 60,
 * --quick 15) and at most ~60 s of sampling.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { LeaderElector, systemClock, type Term } from '../src/index.js';
import { MemoryLock, MemoryStore } from '../src/backends/memory/index.js';
import { quantile, timed, writeResult } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, iterations: { type: 'string' } } });
const N = args.iterations !== undefined ? Number(args.iterations) : args.quick ? 15 : 60;
const BUDGET_MS = 60_000;
const TTL_MS = 3_000;
const RETRY_MS = (TTL_MS * 2) / 15;
const clock = systemClock;
const store = new MemoryStore({ clock });

interface Row {
  op: string;
  n: number;
  medianMs: number;
  p99Ms: number;
  baseline?: string;
  baselineMedianMs?: number;
  ratio?: number;
}

/** Resolves when `elector` emits 'elected'; rejects after 5 s so the bench stays bounded. */
function nextElected(elector: LeaderElector): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimer(() => reject(new Error(`${elector.identity} not elected within 5 s`)), 5000);
    elector.once('elected', () => {
      timer.cancel();
      resolve(clock.now());
    });
  });
}

function elector(key: string, name: string): LeaderElector {
  return new LeaderElector(new MemoryLock(store, { key, ttlMs: TTL_MS, name }), { identity: name });
}

/** A starts and leads, B starts and follows; `release` ends A's term; time until B is elected. */
async function electorRound(key: string, release: (a: LeaderElector) => Promise<unknown>): Promise<number> {
  const a = elector(key, 'a');
  const b = elector(key, 'b');
  try {
    await a.start();
    if (!a.isLeader) throw new Error('a should lead an empty key');
    await b.start();
    const elected = nextElected(b);
    const start = clock.now();
    await release(a);
    return (await elected) - start;
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

/** A leads; a client-go-style candidate polls acquire() every RETRY_MS from a random phase. */
async function pollingRound(key: string): Promise<number> {
  const a = elector(key, 'a');
  const lock = new MemoryLock(store, { key, ttlMs: TTL_MS, name: 'poller' });
  await a.start();
  let won: Term | undefined;
  let wonAt = 0;
  let stop = false;
  const poller = (async () => {
    await clock.sleep(Math.random() * RETRY_MS);
    while (!stop) {
      won = await lock.acquire('poller');
      if (won) {
        wonAt = clock.now();
        return;
      }
      await clock.sleep(RETRY_MS);
    }
  })();
  await clock.sleep(RETRY_MS); // the poller is somewhere in its period
  const start = clock.now();
  await a.stop();
  const bound = clock.now() + 5000;
  while (!won && clock.now() < bound) await clock.sleep(5);
  stop = true;
  await poller;
  if (!won) throw new Error('the poller never acquired');
  await lock.release(won);
  await lock.close();
  return wonAt - start;
}

async function main(): Promise<void> {
  const began = clock.now();
  const until = began + BUDGET_MS;
  const s: Record<string, number[]> = { graceful: [], named: [], polling: [], renew: [], rawRenew: [], acquire: [], rawAcquire: [] };
  const lock = new MemoryLock(store, { key: 'ops', ttlMs: TTL_MS, name: 'ops' });
  const progress = (i: number): void => void process.stderr.write(`\r  memory: round ${i}/${N}   `);
  for (let i = 0; i < N && clock.now() < until; i++) {
    progress(i + 1);
    s.graceful!.push(await electorRound(`g${i}`, (a) => a.stop()));
    s.named!.push(await electorRound(`n${i}`, (a) => a.handover('b')));
    s.polling!.push(await pollingRound(`p${i}`));
    for (let j = 0; j < 20; j++) {
      let term: Term | undefined;
      s.acquire!.push(await timed(async () => (term = await lock.acquire('ops'))));
      s.renew!.push(await timed(() => lock.renew(term!)));
      await lock.release(term!);
      const created = { token: 0n };
      s.rawAcquire!.push(
        await timed(async () => {
          const r = store.create('raw', 'ops', TTL_MS);
          if (r.ok) created.token = r.token;
        }),
      );
      s.rawRenew!.push(await timed(async () => store.refresh('raw', created.token, 'ops', TTL_MS)));
      store.delete('raw', created.token, 'ops');
    }
  }
  process.stderr.write('\n');
  await lock.close();
  const poll = quantile(s.polling!, 0.5);
  const row = (op: string, xs: number[], baseline?: { name: string; xs: number[] }): Row => {
    const medianMs = quantile(xs, 0.5);
    const r: Row = { op, n: xs.length, medianMs, p99Ms: quantile(xs, 0.99) };
    if (baseline) {
      r.baseline = baseline.name;
      r.baselineMedianMs = quantile(baseline.xs, 0.5);
      r.ratio = medianMs / r.baselineMedianMs;
    }
    return r;
  };
  const pollName = `polling candidate (retryPeriod ${RETRY_MS} ms)`;
  const rows: Row[] = [
    row('graceful handover: stop() → successor elected', s.graceful!, { name: pollName, xs: s.polling! }),
    row("named handover: handover('b') → b elected", s.named!, { name: pollName, xs: s.polling! }),
    row(pollName, s.polling!),
    row('acquire()', s.acquire!, { name: 'store.create (no lock layer)', xs: s.rawAcquire! }),
    row('renew()', s.renew!, { name: 'store.refresh (no lock layer)', xs: s.rawRenew! }),
  ];
  const f = (ms: number | undefined): string => (ms === undefined ? '' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
  const table = [
    '| operation | n | median | p99 | baseline (median) | ratio |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.op} | ${r.n} | ${f(r.medianMs)} | ${f(r.p99Ms)} | ${r.baseline ? `${r.baseline} (${f(r.baselineMedianMs)})` : ''} | ${r.ratio !== undefined ? `${r.ratio.toFixed(r.ratio < 0.1 ? 3 : 2)}×` : ''} |`),
  ].join('\n');
  process.stdout.write(`${table}\n`);
  const result = {
    bench: 'memory',
    against: 'MemoryStore in-process (real clock)',
    command: `node --conditions=source --import tsx bench/memory.ts${args.quick ? ' --quick' : ''}`,
    iterations: N,
    quick: args.quick,
    node: process.version,
    cpus: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    date: new Date().toISOString(),
    seconds: Math.round((clock.now() - began) / 1000),
    polling: poll,
    rows,
  };
  writeResult('memory', result);
}

await main();
