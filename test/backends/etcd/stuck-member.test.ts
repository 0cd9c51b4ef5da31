/**
 * A hung etcd member under a follower's watch (#issue13-3): a SIGSTOPped member keeps its TCP
 * connections open and answers nothing, so a watch on it neither breaks nor delivers. The watch
 * must notice (progress probe with an idle bound) and move to another member, follow the session
 * when the session moves, and the elector must take over whatever its watch says (periodic acquire).
 * Each test freezes a member of its own 3-member cluster and always thaws it in cleanup.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderElector, type LockState, type Term } from '../../../src/index.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { startEtcd, type EtcdCluster, type EtcdMemberProcess } from '../../helpers/etcd-cluster.js';

let cluster: EtcdCluster;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  cluster = await startEtcd({ size: 3 });
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await cluster?.stop();
});

/** SIGSTOP `m` now; SIGCONT in cleanup whatever happens (cluster.stop() SIGKILLs it after that anyway). */
async function freeze(m: EtcdMemberProcess): Promise<() => Promise<void>> {
  await m.kill('SIGSTOP');
  let thawed = false;
  const thaw = async (): Promise<void> => {
    if (thawed) return;
    thawed = true;
    await m.kill('SIGCONT');
  };
  cleanups.push(thaw);
  return thaw;
}

function lock(endpoints: string[], key: string, ttlMs: number, requestTimeoutMs: number): EtcdLock {
  const l = new EtcdLock({ endpoints, key, ttlMs, requestTimeoutMs });
  l.on('warning', () => undefined);
  cleanups.push(() => l.close());
  return l;
}

/** Runs a watch in the background; `next(pred, ms)` resolves the time the first matching state arrived. */
function watching(l: EtcdLock) {
  const ac = new AbortController();
  cleanups.push(async () => ac.abort());
  const seen: Array<{ at: number; state: LockState }> = [];
  let wake: (() => void) | undefined;
  void (async () => {
    for await (const state of l.watch({ signal: ac.signal })) {
      seen.push({ at: performance.now(), state });
      wake?.();
    }
  })().catch(() => undefined);
  return {
    /** The first state since `since` (performance.now()) that matches `pred`. */
    async next(pred: (s: LockState) => boolean, ms: number, what: string, since = 0): Promise<number> {
      const end = performance.now() + ms;
      for (;;) {
        const hit = seen.find((x) => x.at >= since && pred(x.state));
        if (hit) return hit.at;
        const left = end - performance.now();
        if (left <= 0) throw new Error(`watch: not within ${ms} ms: ${what}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 50));
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    },
  };
}

/** The leader's release, retried a few times: freezing a member may cost the cluster a raft election first. */
async function releaseSoon(l: EtcdLock, term: Term): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await l.release(term);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

const order = (first: number): string[] => [0, 1, 2].map((i) => cluster.members[(first + i) % 3]!.clientUrl);

describe('etcd: a hung member under the watch', { concurrency: false }, () => {
  it('the watch notices a frozen member by its unanswered progress request and resumes on another one', async () => {
    const key = '/stuck/probe/leader';
    // The follower's session makes no calls of its own for 20 s (ttl/3 idle tick): only the watch's
    // probe can notice the frozen member. Request timeout 500 ms → silence bound 2 × 500 ms.
    const follower = lock(order(0), key, 60_000, 500);
    const leader = lock(order(1), key, 6_000, 3_000);
    const w = watching(follower);
    const term = (await leader.acquire('a')) as Term;
    assert.ok(term);
    await w.next((s) => s.leader?.holder === 'a', 5_000, 'a leads');
    const thaw = await freeze(cluster.members[0]!);
    try {
      const t0 = performance.now();
      assert.equal(await releaseSoon(leader, term), true);
      const at = await w.next((s) => s.leader === undefined, 8_000, 'the release, seen through another member', t0);
      const ms = Math.round(at - t0);
      console.log(`# stuck member: the watch delivered the release ${ms} ms after it (probe bound 2 × 500 ms)`);
      assert.ok(ms < 3_000, `${ms} ms`);
      assert.notEqual(follower.session.members.current.name, cluster.members[0]!.clientUrl, 'the session moved off the frozen member');
    } finally {
      await thaw();
    }
  });

  it('the watch follows the session when the session moves to another member', async () => {
    const key = '/stuck/follow/leader';
    // A long probe bound (2 × 5 s): a quick delivery below can only come from following the session.
    const follower = lock(order(0), key, 60_000, 5_000);
    const leader = lock(order(1), key, 6_000, 3_000);
    const w = watching(follower);
    const term = (await leader.acquire('a')) as Term;
    await w.next((s) => s.leader?.holder === 'a', 5_000, 'a leads');
    const members = follower.session.members;
    members.failed(members.current, 'test: a call failed there'); // what a failed call through the session does
    assert.equal(members.current.name, cluster.members[1]!.clientUrl);
    await new Promise((r) => setTimeout(r, 300)); // let the watch restart on the new member
    const thaw = await freeze(cluster.members[0]!);
    try {
      const t0 = performance.now();
      assert.equal(await releaseSoon(leader, term), true);
      const at = await w.next((s) => s.leader === undefined, 4_000, 'the release, without waiting for the probe', t0);
      assert.ok(at - t0 < 2_000, `${Math.round(at - t0)} ms`);
    } finally {
      await thaw();
    }
  });

  it('elector: the member under a follower freezes, the leader stops → the follower leads within a bound', async () => {
    const key = '/stuck/elector/leader';
    const ttl = 3_000; // renewDeadline 2 s, retryPeriod 400 ms, request timeout 600 ms
    const a = new LeaderElector(lock(order(1), key, ttl, 600), { identity: 'a' });
    const b = new LeaderElector(lock(order(0), key, ttl, 600), { identity: 'b' });
    for (const e of [a, b]) {
      e.on('warning', () => undefined);
      cleanups.push(() => e.stop());
    }
    await a.start();
    assert.equal(a.isLeader, true);
    await b.start();
    for (let i = 0; i < 100 && b.leader !== 'a'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(b.leader, 'a');
    const elected = new Promise<number>((resolve) => b.once('elected', () => resolve(performance.now())));
    const thaw = await freeze(cluster.members[0]!);
    try {
      const t0 = performance.now();
      await a.stop();
      let timer: NodeJS.Timeout | undefined;
      const at = await Promise.race([elected, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('b did not lead within 6 s')), 6_000)))]);
      clearTimeout(timer);
      const ms = Math.round(at - t0);
      console.log(`# stuck member: the follower led ${ms} ms after the leader began to stop (retryPeriod ${b.options.retryPeriodMs} ms, request timeout 600 ms)`);
      // One retry period, plus the acquire's first try timing out on the frozen member (its share of
      // the request timeout) before it moves on; generous slack for a loaded machine.
      assert.ok(ms < b.options.retryPeriodMs + 600 + 1_500, `${ms} ms`);
      assert.equal(b.isLeader, true);
    } finally {
      await thaw();
    }
  });

  it('a member without a raft leader refuses the watch at once (hasleader), so the watch moves on', async () => {
    // m1 and m2 frozen: m0 runs but has no leader. Without `hasleader` etcd would keep the stream
    // open and silent on m0 until the probe (2 × 5 s) gave up on it.
    const follower = lock(order(0), '/stuck/leaderless/leader', 60_000, 5_000);
    const switched = new Promise<{ from: string; at: number }>((resolve) => follower.session.members.once('switch', (s) => resolve({ from: s.from, at: performance.now() })));
    const thaw2 = await freeze(cluster.members[2]!);
    const thaw1 = await freeze(cluster.members[1]!);
    try {
      await new Promise((r) => setTimeout(r, 1_000)); // m0 notices it lost its leader (election timeout 250 ms)
      const t0 = performance.now();
      watching(follower);
      let timer: NodeJS.Timeout | undefined;
      const s = await Promise.race([switched, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the watch stayed on the leaderless member for 4 s')), 4_000)))]);
      clearTimeout(timer);
      assert.equal(s.from, cluster.members[0]!.clientUrl);
      console.log(`# leaderless member: the watch left it after ${Math.round(s.at - t0)} ms`);
      // Well under the first read's share of the request timeout on m0 (5 s / 3 members), which
      // would move the session (and the watch with it) too.
      assert.ok(s.at - t0 < 1_000, `${Math.round(s.at - t0)} ms`);
    } finally {
      await thaw1();
      await thaw2();
    }
  });
});
