/**
 * LeaderElector on real etcd: replays of the etcd3 npm Election's two-leader bug with a candidate
 * leaving from the middle of the queue (microsoft/etcd3#176), watch-driven handover, and handover to a
 * named candidate. (etcd restart, microsoft/etcd3#158, is in cluster.test.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderElector, type Term } from '../../../src/index.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';

const TTL = 2000;
let cluster: EtcdCluster;
const created: { lock: EtcdLock; elector: LeaderElector }[] = [];

before(async () => {
  cluster = await startEtcd();
});
after(async () => {
  await Promise.allSettled(created.map(({ elector, lock }) => elector.stop().then(() => lock.close())));
  await cluster?.stop();
});

function candidates(key: string, names: string[]): LeaderElector[] {
  const electors = names.map((identity) => {
    const lock = new EtcdLock({ endpoints: cluster.endpoints, key, ttlMs: TTL, requestTimeoutMs: 1200 });
    const elector = new LeaderElector(lock, { identity });
    elector.on('warning', () => undefined);
    created.push({ lock, elector });
    return elector;
  });
  // Never two leaders: at every election nobody else holds a valid term.
  for (const e of electors) {
    e.on('elected', () => {
      for (const o of electors) if (o !== e) assert.equal(o.term?.isValid() ?? false, false, `${e.identity} elected while ${o.identity} leads`);
    });
  }
  return electors;
}

const nextElected = (e: LeaderElector): Promise<Term> => new Promise((resolve) => e.once('elected', resolve));

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('LeaderElector on etcd', { concurrency: true }, () => {
  it('a candidate in the middle leaves: the leader stays the only leader, the next one takes over on stop (microsoft/etcd3#176)', async () => {
    const [a, b, c] = candidates('/elector/middle/leader', ['a', 'b', 'c']);
    await a!.start();
    await b!.start();
    await c!.start();
    assert.equal(a!.isLeader, true);
    await b!.stop(); // the middle candidate leaves
    // c learns the leader from its watch; wait for that (bounded), then watch for 300 ms that nothing moves.
    for (let i = 0; i < 150 && c!.leader !== 'a'; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a!.isLeader, true);
    assert.equal(c!.isLeader, false);
    assert.equal(c!.leader, 'a');
    const cElected = nextElected(c!);
    const t0 = performance.now();
    await a!.stop();
    await within(cElected, 1000, 'c takes over after a stops (watch-driven, not after a ttl)');
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(b!.isLeader, false);
  });

  it('handover to a named candidate among five, repeatedly: always that one, at once', async () => {
    const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
    const electors = candidates('/elector/handover/leader', names);
    for (const e of electors) await e.start();
    let leader = electors.find((e) => e.isLeader)!;
    assert.ok(leader);
    for (let i = 0; i < 6; i++) {
      const others = electors.filter((e) => e !== leader);
      const next = others[i % others.length]!;
      const elected = nextElected(next);
      const t0 = performance.now();
      assert.equal(await leader.handover(next.identity), true);
      await within(elected, 1000, `handover ${i} to ${next.identity}`);
      assert.ok(performance.now() - t0 < 1000);
      assert.deepEqual(
        electors.filter((e) => e.isLeader).map((e) => e.identity),
        [next.identity],
      );
      leader = next;
    }
  });
});
