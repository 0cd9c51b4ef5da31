/**
 * Many leaders in one process on one etcd session (one lease): 10 / 100 / 1,000 / 10,000 electors
 * on distinct keys against a real local etcd (data on /dev/shm when it exists). For each size:
 *
 * - time to elect all: from start() of every elector until the last one's first 'elected' event,
 *   with a trace of the start-up calls by kind (count, failures, time each took, queueing included),
 *   the watch streams opened and when the last watcher was created ("all watching after");
 * - steady state over a window while all lead (ttl 15 s, renew every 2 s), once every watcher exists:
 *   CPU of this process (user + system, % of one core), etcd requests/s — gRPC messages etcd received
 *   (grpc_server_msg_received_total from etcd's /metrics on its client URL: unary calls and
 *   stream messages such as keep-alives alike), broken down by method — and memory (RSS, heap).
 *
 *   node --conditions=source --import tsx bench/scale.ts [--quick] [--sizes 10,100,1000,10000] [--seconds 10]
 *        [--elect-seconds 60] [--profile-startup FILE] [--profile-steady FILE]
 *   (default sizes 10,100,1000; --profile-* write FILE.<n>.cpuprofile: start() to all elected, or the steady window)
 *
 * Writes bench/results/scale.json. Bounded: electing waits at most --elect-seconds (60) per size,
 * the watchers at most 30 s more, stop() of all at most 60 s.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeaderElector } from '../src/index.js';
import { EtcdLock, EtcdSession } from '../src/backends/etcd/index.js';
import { startEtcd } from '../test/helpers/etcd-cluster.js';
import { r2, writeResult } from './_stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, sizes: { type: 'string' }, seconds: { type: 'string' }, 'elect-seconds': { type: 'string' }, 'profile-startup': { type: 'string' }, 'profile-steady': { type: 'string' } } });
// 10,000 only on request: it takes a while (stopping 10,000 electors, mostly) on a busy 2-core machine.
const SIZES = (args.sizes ?? '10,100,1000').split(',').map(Number);
const SECONDS = Number(args.seconds ?? (args.quick ? 5 : 10));
/** Bound on electing all, per size. */
const ELECT_S = Number(args['elect-seconds'] ?? 60);

/** etcd's received gRPC messages, per method, from its Prometheus endpoint. */
async function received(clientUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${clientUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^grpc_server_msg_received_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const method = /grpc_method="([^"]+)"/.exec(m[1]!)?.[1] ?? '?';
    out.set(method, (out.get(method) ?? 0) + Number(m[2]));
  }
  return out;
}

/**
 * Start-up trace: every session call by name (count, failures by error class, p50/max time queued
 * behind the in-flight limit + on the wire) and watch streams opened, until all are elected.
 */
function traceCalls(session: EtcdSession): { report(): string; readonly watchersCreated: number } {
  const calls = new Map<string, { n: number; failed: Map<string, number>; ms: number[] }>();
  let streams = 0;
  const call = session.call.bind(session);
  session.call = ((what: string, fn: Parameters<EtcdSession['call']>[1], opts?: Parameters<EtcdSession['call']>[2]) => {
    const c = calls.get(what) ?? { n: 0, failed: new Map<string, number>(), ms: [] };
    calls.set(what, c);
    c.n++;
    const t = performance.now();
    const p = call(what, fn, opts);
    p.then(
      () => c.ms.push(performance.now() - t),
      (err: unknown) => {
        const name = err instanceof Error ? err.constructor.name : 'thrown';
        c.failed.set(name, (c.failed.get(name) ?? 0) + 1);
      },
    );
    return p;
  }) as EtcdSession['call'];
  const rpc = session.members.current.rpc;
  const watch = rpc.watchClient.watch.bind(rpc.watchClient);
  let created = 0;
  let lastCreatedMs = 0;
  const t0 = performance.now();
  (rpc.watchClient as { watch: typeof watch }).watch = async (...a: Parameters<typeof watch>) => {
    streams++;
    const stream = await watch(...a);
    stream.on('data', (res) => {
      if (!res.created) return;
      created++;
      lastCreatedMs = performance.now() - t0;
    });
    return stream;
  };
  return {
    get watchersCreated() {
      return created;
    },
    report: () => {
      const parts = [...calls].map(([what, c]) => {
        const ms = c.ms.sort((a, b) => a - b);
        const fails = [...c.failed].map(([k, v]) => `${k} ${v}`).join(', ');
        return `${what}: ${c.n}${fails ? ` (failed: ${fails})` : ''}, ms p50 ${Math.round(ms[Math.floor(ms.length / 2)] ?? 0)} max ${Math.round(ms.at(-1) ?? 0)}`;
      });
      return `${parts.join('; ')}; watch streams opened: ${streams}, watchers created: ${created} (last ${Math.round(lastCreatedMs)} ms after start)`;
    },
  };
}

/** A V8 CPU profile of this process (--profile-startup FILE: from start() of all until all are elected; --profile-steady FILE: the steady window). */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    stop: async (file) => {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
      process.stderr.write(`    start-up CPU profile: ${file}\n`);
    },
  };
}

interface Result {
  electors: number;
  electedMs: number;
  watchesMs: number;
  leading: number;
  cpuPct: number;
  requestsPerS: number;
  byMethod: Record<string, number>;
  rssMb: number;
  heapMb: number;
}

async function one(endpoints: string[], n: number): Promise<Result> {
  const warnings = new Map<string, number>();
  const session = new EtcdSession({ endpoints, ttlMs: 15_000 });
  const electors = Array.from({ length: n }, (_, i) => {
    const lock = new EtcdLock({ session, key: `/bench/scale/${n}/${i}` });
    const elector = new LeaderElector(lock, { identity: 'scaler' });
    elector.on('warning', (e) => void warnings.set(e.message.slice(0, 80), (warnings.get(e.message.slice(0, 80)) ?? 0) + 1));
    return { lock, elector };
  });
  const trace = traceCalls(session);
  // Time to elect all: when the last elector's first 'elected' event fires (bounded by ELECT_S).
  let firstElected = 0;
  let allElected!: () => void;
  const everyone = new Promise<void>((resolve) => (allElected = resolve));
  for (const { elector } of electors) elector.once('elected', () => ++firstElected === n && allElected());
  const profiler = args['profile-startup'] ? await startProfile() : undefined;
  const t0 = performance.now();
  const started = Promise.all(electors.map(({ elector }) => elector.start())).then(() => {
    process.stderr.write(`    start() of all resolved after ${Math.round(performance.now() - t0)} ms, ${electors.filter(({ elector }) => elector.isLeader).length} leading\n`);
  });
  const progress = setInterval(() => process.stderr.write(`    ${firstElected}/${n} elected after ${Math.round(performance.now() - t0)} ms; ${trace.report()}\n`), 5000);
  const timedOut = await Promise.race([everyone.then(() => false), sleep(ELECT_S * 1000).then(() => true)]);
  clearInterval(progress);
  if (profiler) await profiler.stop(`${args['profile-startup']}.${n}.cpuprofile`);
  const electedMs = timedOut ? Number.NaN : performance.now() - t0;
  await started;
  let leading = electors.filter(({ elector }) => elector.isLeader).length;
  process.stderr.write(`    ${timedOut ? `NOT all elected within ${ELECT_S} s` : `all elected after ${Math.round(electedMs)} ms`} (${firstElected} elected, ${leading} leading); start-up calls: ${trace.report()}\n`);
  for (let i = 0; i < 100 && leading < n; i++) {
    await sleep(100);
    leading = electors.filter(({ elector }) => elector.isLeader).length;
  }
  // The watches come up after the elections (an elector campaigns without waiting for its watch):
  // steady state starts once every watcher exists.
  for (let i = 0; i < 300 && trace.watchersCreated < n; i++) await sleep(100);
  const watchesMs = performance.now() - t0;
  process.stderr.write(`    ${trace.watchersCreated}/${n} watchers created after ${Math.round(watchesMs)} ms\n`);
  if (warnings.size > 0) process.stderr.write(`    warnings while electing: ${JSON.stringify([...warnings])}\n`);
  await sleep(2000); // past the start-up burst (the reads that follow each watcher's creation)
  const m0 = await received(endpoints[0]!);
  const steadyProfiler = args['profile-steady'] ? await startProfile() : undefined;
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(SECONDS * 1000);
  const cpu = process.cpuUsage(c0);
  if (steadyProfiler) await steadyProfiler.stop(`${args['profile-steady']}.${n}.cpuprofile`);
  const wall = (performance.now() - w0) / 1000;
  const m1 = await received(endpoints[0]!);
  const mem = process.memoryUsage();
  const byMethod: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of m1) {
    const d = v - (m0.get(k) ?? 0);
    if (d > 0) byMethod[k] = r2(d / wall);
    total += d;
  }
  const stillLeading = electors.filter(({ elector }) => elector.isLeader).length;
  const s0 = performance.now();
  const stopped = Promise.all(electors.map(({ elector, lock }) => elector.stop().then(() => lock.close())));
  if ((await Promise.race([stopped.then(() => 'ok'), sleep(60_000).then(() => 'timeout')])) === 'timeout') process.stderr.write('    stop() of all not done within 60 s; closing the session (revokes the lease)\n');
  else process.stderr.write(`    stop() of all took ${Math.round(performance.now() - s0)} ms\n`);
  await session.close();
  return {
    electors: n,
    electedMs: Math.round(electedMs),
    watchesMs: Math.round(watchesMs),
    leading: Math.min(leading, stillLeading),
    cpuPct: r2(((cpu.user + cpu.system) / 1000 / (wall * 1000)) * 100),
    requestsPerS: r2(total / wall),
    byMethod,
    rssMb: r2(mem.rss / 2 ** 20),
    heapMb: r2(mem.heapUsed / 2 ** 20),
  };
}

async function main(): Promise<void> {
  const cluster = await startEtcd();
  const results: Result[] = [];
  try {
    for (const n of SIZES) {
      const r = await one(cluster.endpoints, n);
      results.push(r);
      process.stderr.write(`  ${n} electors: all elected in ${r.electedMs} ms (${r.leading} leading), ${r.cpuPct}% CPU, ${r.requestsPerS} etcd req/s ${JSON.stringify(r.byMethod)}, RSS ${r.rssMb} MB\n`);
      if (global.gc) global.gc();
    }
  } finally {
    await cluster.stop();
  }
  console.log(`| electors | all elected in | all watching after | leading | CPU (% of a core) | etcd requests/s | RSS | heap |\n|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const r of results) console.log(`| ${r.electors} | ${Number.isNaN(r.electedMs) ? `not within ${ELECT_S} s` : `${r.electedMs} ms`} | ${r.watchesMs} ms | ${r.leading} | ${r.cpuPct} % | ${r.requestsPerS} | ${r.rssMb} MB | ${r.heapMb} MB |`);
  writeResult('scale', {
    date: new Date().toISOString(),
    seconds: SECONDS,
    rows: results.flatMap((r) => [
      { metric: `${r.electors} electors, one session: CPU steady`, n: r.electors, unit: '% CPU', median: r.cpuPct, p99: r.cpuPct, note: `${r.requestsPerS} etcd req/s, all elected in ${r.electedMs} ms, RSS ${r.rssMb} MB` },
    ]),
    results,
  });
}

await main();
// Leftover handles (a stop() that timed out) must not keep the process alive.
process.exit(0);
