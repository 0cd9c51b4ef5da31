/**
 * etcd benchmark on a real local etcd, every figure next to a baseline measured in the same run:
 *
 * - graceful handover: leader `stop()` → successor `elected` (watch-driven), vs `etcdctl elect`
 *   (SIGINT the leader, time until the waiting candidate prints) and vs a polling candidate that
 *   re-checks every 2 s as client-go does;
 * - crash failover, ttl 2 s: a child process holding leaders is SIGKILLed → successors elected;
 *   bound = ttl + 0.5 s (etcd's lease expiry tick) + one round trip;
 * - overhead: `renew` vs the raw etcd3 keep-alive + txn it is made of; `acquire` vs the raw create txn;
 * - scale: 1,000 electors on distinct keys in one process (one shared lease): CPU and memory.
 *
 * Prints a markdown table; writes the rows to bench/results/etcd.json.
 * Usage: npx tsx bench/etcd.ts [--quick]
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { LeaderElector, type Term } from '../src/index.js';
import { EtcdLock, EtcdSession } from '../src/backends/etcd/index.js';
import { ETCDCTL_BIN, startEtcd, type EtcdCluster } from '../test/helpers/etcd-cluster.js';
import { ChildElector } from '../test/backends/etcd/child-elector.js';
import { median, quantile, r2, writeResult, type BaselineRow } from './_stats.js';

const quick = process.argv.includes('--quick');
const N = {
  handovers: quick ? 30 : 200,
  etcdctl: quick ? 10 : 40,
  pollers: quick ? 5 : 20,
  crashBatches: quick ? 1 : 4,
  crashPerBatch: 5,
  overhead: quick ? 100 : 500,
  scale: quick ? 100 : 1000,
  scaleSeconds: quick ? 3 : 10,
};

type Row = BaselineRow;
const rows: Row[] = [];


function add(metric: string, unit: string, xs: number[], baseline?: { name: string; xs: number[] }, note?: string): void {
  const row: Row = { metric, n: xs.length, unit, median: r2(median(xs)), p99: r2(quantile(xs, 0.99)) };
  if (baseline) {
    row.baseline = baseline.name;
    row.baselineMedian = r2(median(baseline.xs));
    row.ratio = r2(median(xs) / median(baseline.xs));
  }
  if (note) row.note = note;
  rows.push(row);
  process.stderr.write(`  ${metric}: median ${row.median} ${unit}, p99 ${row.p99}${row.ratio !== undefined ? `, ${row.ratio}× ${row.baseline}` : ''}\n`);
}

function pair(cluster: EtcdCluster, key: string, ids: [string, string], ttlMs = 2000) {
  return ids.map((identity) => {
    const lock = new EtcdLock({ endpoints: cluster.endpoints, key, ttlMs });
    const elector = new LeaderElector(lock, { identity });
    elector.on('warning', () => undefined);
    return { lock, elector };
  });
}

/** Leader stop() → the other elector's `elected`, alternating, N times. */
async function gracefulHandover(cluster: EtcdCluster): Promise<number[]> {
  const [a, b] = pair(cluster, '/bench/handover/leader', ['a', 'b']);
  await a!.elector.start();
  await b!.elector.start();
  const xs: number[] = [];
  let leader = a!.elector.isLeader ? a! : b!;
  let other = leader === a ? b! : a!;
  for (let i = 0; i < N.handovers; i++) {
    const elected = new Promise<number>((resolve) => other.elector.once('elected', () => resolve(performance.now())));
    const t0 = performance.now();
    await leader.elector.stop();
    xs.push((await elected) - t0);
    await leader.elector.start(); // back as a candidate
    [leader, other] = [other, leader];
  }
  for (const p of [a!, b!]) await p.elector.stop().then(() => p.lock.close());
  return xs;
}

/** `etcdctl elect`: two candidates, SIGINT the leader, time until the other prints. */
async function etcdctlElect(cluster: EtcdCluster): Promise<number[]> {
  const env = { ...process.env, ETCDCTL_API: '3' };
  const start = (name: string) => {
    const p = spawn(ETCDCTL_BIN, ['--endpoints', cluster.endpoints[0]!, 'elect', '/bench/etcdctl', name], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    const printed = new Promise<number>((resolve) => p.stdout.once('data', () => resolve(performance.now())));
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    return { p, printed, exited };
  };
  const xs: number[] = [];
  let leader = start('p0');
  await leader.printed;
  for (let i = 0; i < N.etcdctl; i++) {
    const next = start(`p${i + 1}`);
    await sleep(150); // let it register and wait behind the leader
    const t0 = performance.now();
    leader.p.kill('SIGINT');
    xs.push((await next.printed) - t0);
    await leader.exited;
    leader = next;
  }
  leader.p.kill('SIGINT');
  await leader.exited;
  return xs;
}

/** A client-go style candidate: tries every 2 s (random phase), no watch. Time from release to its win. */
async function pollingHandover(cluster: EtcdCluster): Promise<number[]> {
  const session = new EtcdSession({ endpoints: cluster.endpoints, ttlMs: 15000 });
  const one = async (i: number): Promise<number> => {
    const holder = new EtcdLock({ session, key: `/bench/poll/${i}` });
    const poller = new EtcdLock({ session, key: `/bench/poll/${i}` });
    const term = (await holder.acquire('holder'))!;
    let releasedAt = Number.POSITIVE_INFINITY;
    const polling = (async () => {
      await sleep(Math.random() * 2000);
      for (;;) {
        const t = await poller.acquire('poller');
        if (t) return performance.now();
        await sleep(2000);
      }
    })();
    await sleep(500 + Math.random() * 1000);
    releasedAt = performance.now();
    await holder.release(term);
    const won = await polling;
    await poller.close();
    await holder.close();
    return won - releasedAt;
  };
  const xs = await Promise.all(Array.from({ length: N.pollers }, (_, i) => one(i)));
  await session.close();
  return xs;
}

/** Children holding 5 leaders each are SIGKILLed; in-process electors take over. */
async function crashFailover(cluster: EtcdCluster): Promise<{ fromKill: number[] }> {
  const fromKill: number[] = [];
  for (let batch = 0; batch < N.crashBatches; batch++) {
    const keys = Array.from({ length: N.crashPerBatch }, (_, i) => `/bench/crash/${batch}/${i}`);
    const child = new ChildElector({ endpoints: cluster.endpoints, key: keys[0], extraKeys: keys.slice(1), identity: 'victim', ttlMs: 2000 });
    try {
      for (const key of keys) await child.waitFor((r) => r.ev === 'elected' && r.key === key, 20_000);
      const successors = keys.map((key) => {
        const lock = new EtcdLock({ endpoints: cluster.endpoints, key, ttlMs: 2000 });
        const elector = new LeaderElector(lock, { identity: 'successor' });
        elector.on('warning', () => undefined);
        return { lock, elector, elected: new Promise<number>((resolve) => elector.once('elected', () => resolve(performance.now()))) };
      });
      for (const s of successors) await s.elector.start();
      await sleep(Math.random() * 300); // a random phase against the leaders' renew period
      const killedAt = performance.now();
      child.signal('SIGKILL');
      for (const s of successors) fromKill.push((await s.elected) - killedAt);
      for (const s of successors) await s.elector.stop().then(() => s.lock.close());
    } finally {
      await child.kill();
    }
  }
  return { fromKill };
}

/** renew() vs raw keep-alive ∥ txn; acquire() vs the raw create txn. Interleaved, same connection type. */
async function overhead(cluster: EtcdCluster): Promise<{ renew: number[]; rawRenew: number[]; acquire: number[]; rawAcquire: number[] }> {
  const lock = new EtcdLock({ endpoints: cluster.endpoints, key: '/bench/overhead/leader', ttlMs: 15000 });
  const raw = new Etcd3({ hosts: cluster.endpoints });
  const lease = await raw.leaseClient.leaseGrant({ TTL: 15 });
  const ka = await raw.leaseClient.leaseKeepAlive();
  const pending: (() => void)[] = [];
  ka.on('data', () => pending.shift()?.());
  const rawKeepAlive = () =>
    new Promise<void>((resolve) => {
      pending.push(resolve);
      ka.write({ ID: lease.ID });
    });
  const rawKey = Buffer.from('/bench/overhead/raw');
  const b = (s: string) => Buffer.from(s);
  const term = (await lock.acquire('me'))!;
  const out = { renew: [] as number[], rawRenew: [] as number[], acquire: [] as number[], rawAcquire: [] as number[] };
  // warm-up
  for (let i = 0; i < 20; i++) await lock.renew(term);
  await rawKeepAlive();
  const createRaw = await raw.kv.txn({ compare: [{ key: rawKey, target: 'Create', result: 'Equal', create_revision: '0' }], success: [{ request_put: { key: rawKey, value: b('me'), lease: lease.ID } }], failure: [] });
  const rawToken = createRaw.header.revision;
  // Alternate which goes first: the call right after another write is measurably slower on etcd.
  const ours = async () => {
    const t = performance.now();
    await lock.renew(term);
    out.renew.push(performance.now() - t);
  };
  const theirs = async () => {
    const t = performance.now();
    await Promise.all([
      rawKeepAlive(),
      raw.kv.txn({ compare: [{ key: rawKey, target: 'Create', result: 'Equal', create_revision: rawToken }, { key: rawKey, target: 'Lease', result: 'Equal', lease: lease.ID }], success: [], failure: [{ request_range: { key: rawKey } }] }),
    ]);
    out.rawRenew.push(performance.now() - t);
  };
  for (let i = 0; i < N.overhead; i++) {
    if (i % 2 === 0) {
      await ours();
      await theirs();
    } else {
      await theirs();
      await ours();
    }
  }
  await lock.release(term);
  await raw.kv.deleteRange({ key: rawKey });
  for (let i = 0; i < N.overhead; i++) {
    const ourFirst = i % 2 === 0;
    let t = 0;
    if (ourFirst) {
      t = performance.now();
      const tt = (await lock.acquire('me'))!;
      out.acquire.push(performance.now() - t);
      await lock.release(tt);
    }
    t = performance.now();
    await raw.kv.txn({
      compare: [
        { key: rawKey, target: 'Create', result: 'Equal', create_revision: '0' },
        { key: b('/bench/overhead/raw-successor'), target: 'Create', result: 'Equal', create_revision: '0' },
      ],
      success: [{ request_put: { key: rawKey, value: b('me'), lease: lease.ID } }],
      failure: [{ request_range: { key: rawKey } }, { request_range: { key: b('/bench/overhead/raw-successor') } }],
    });
    out.rawAcquire.push(performance.now() - t);
    await raw.kv.deleteRange({ key: rawKey });
    if (!ourFirst) {
      t = performance.now();
      const tt = (await lock.acquire('me'))!;
      out.acquire.push(performance.now() - t);
      await lock.release(tt);
    }
  }
  ka.end();
  ka.cancel();
  await raw.leaseClient.leaseRevoke({ ID: lease.ID });
  raw.close();
  await lock.close();
  return out;
}

/** N electors on distinct keys in this process, one shared session (one lease). */
async function scale(cluster: EtcdCluster): Promise<{ cpuPct: number; rssMb: number; heapMb: number; electedMs: number }> {
  const session = new EtcdSession({ endpoints: cluster.endpoints, ttlMs: 15000 });
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const electors = Array.from({ length: N.scale }, (_, i) => {
    const lock = new EtcdLock({ session, key: `/bench/scale/${i}` });
    const e = new LeaderElector(lock, { identity: 'scaler' });
    e.on('warning', () => undefined);
    return { lock, e };
  });
  await Promise.all(electors.map(({ e }) => e.start()));
  const electedMs = performance.now() - t0;
  const leading = electors.filter(({ e }) => e.isLeader).length;
  if (leading !== N.scale) process.stderr.write(`  scale: only ${leading}/${N.scale} leading\n`);
  await sleep(1000);
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(N.scaleSeconds * 1000);
  const cpu = process.cpuUsage(c0);
  const wall = performance.now() - w0;
  const mem = process.memoryUsage();
  await Promise.all(electors.map(({ e, lock }) => e.stop().then(() => lock.close())));
  await session.close();
  return { cpuPct: ((cpu.user + cpu.system) / 1000 / wall) * 100, rssMb: (mem.rss - rss0) / 2 ** 20, heapMb: mem.heapUsed / 2 ** 20, electedMs };
}

async function main(): Promise<void> {
  const began = performance.now();
  const cluster = await startEtcd();
  try {
    process.stderr.write(`etcd bench (${quick ? 'quick' : 'full'}) on ${cluster.endpoints[0]}\n`);
    const handover = await gracefulHandover(cluster);
    const ctl = await etcdctlElect(cluster);
    const poll = await pollingHandover(cluster);
    add('graceful handover: stop() → successor elected', 'ms', handover, { name: 'etcdctl elect', xs: ctl });
    add('etcdctl elect: SIGINT leader → other prints', 'ms', ctl);
    add('polling candidate (retryPeriod 2 s, client-go style)', 'ms', poll, { name: 'leaderlock handover', xs: handover });
    const crash = await crashFailover(cluster);
    add('crash failover (SIGKILL, ttl 2 s) → successor elected', 'ms', crash.fromKill, undefined, 'bound ttl + 0.5 s + RTT = 2500 ms + RTT, counted from the last renew (≤ retryPeriod 267 ms before the kill)');
    const o = await overhead(cluster);
    add('renew()', 'ms', o.renew, { name: 'raw keep-alive ∥ txn', xs: o.rawRenew });
    add('acquire()', 'ms', o.acquire, { name: 'raw create txn', xs: o.rawAcquire }, 'on a recently refreshed lease acquire sends the create txn alone (issue 15)');
    const s = await scale(cluster);
    rows.push({ metric: `scale: ${N.scale} electors, one process, one lease (ttl 15 s)`, n: N.scale, unit: '% CPU', median: r2(s.cpuPct), p99: r2(s.cpuPct), note: `RSS +${r2(s.rssMb)} MB, heap ${r2(s.heapMb)} MB, all elected in ${Math.round(s.electedMs)} ms` });
    process.stderr.write(`  scale: ${r2(s.cpuPct)}% CPU, RSS +${r2(s.rssMb)} MB\n`);
  } finally {
    await cluster.stop();
  }
  const header = '| metric | n | median | p99 | baseline (median) | ratio | note |\n|---|---|---|---|---|---|---|';
  const lines = rows.map(
    (r) => `| ${r.metric} | ${r.n} | ${r.median} ${r.unit} | ${r.p99} ${r.unit} | ${r.baseline ? `${r.baseline} (${r.baselineMedian} ${r.unit})` : ''} | ${r.ratio !== undefined ? `${r.ratio}×` : ''} | ${r.note ?? ''} |`,
  );
  process.stdout.write(`${header}\n${lines.join('\n')}\n`);
  writeResult('etcd', { quick, date: new Date().toISOString(), seconds: Math.round((performance.now() - began) / 1000), rows });
  process.stderr.write(`done in ${Math.round((performance.now() - began) / 1000)} s; rows in bench/results/etcd.json\n`);
}

await main();
