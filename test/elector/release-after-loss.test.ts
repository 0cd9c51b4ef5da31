import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { LeaderElector, type LockState, type Term } from '../../src/index.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { cluster, settle, type Cluster, type Node } from './harness.js';

// ttl 15 s → renewDeadline 10 s, retryPeriod 2 s (defaults 2/3 and 2/15), drift 0.01.

/** Records the virtual time of every release call `node`'s lock receives. */
function spyReleases(c: Cluster, node: Node): number[] {
  const at: number[] = [];
  const release = node.lock.release.bind(node.lock);
  node.lock.release = (term, opts) => {
    at.push(c.clock.now());
    return release(term, opts);
  };
  return at;
}

/**
 * a leads from t=0 and renews every 2 s; its client is partitioned from 4.5 s to 13.5 s, so its last
 * confirmed renew is the one sent at 4 s: renew deadline 4 + 10 = 14 s ('deadline' loss, with the
 * path already back), validUntil 4 + 15 × 0.99 = 18.85 s, record expiry on the store 19 s.
 */
async function partitionedLeader(guarded: 'fn' | 'guard', workEndsAt?: number) {
  const c = cluster(2);
  const a = c.node('a');
  const b = c.node('b');
  const releases = spyReleases(c, a);
  let workRunning = false;
  const work = (term: Term): Promise<void> => {
    workRunning = true;
    // Does not stop when the term's signal aborts; ends at `workEndsAt` if given, else never.
    return new Promise<void>((resolve) => {
      if (workEndsAt !== undefined) c.clock.setTimer(resolve, workEndsAt - c.clock.now());
      void term;
    }).finally(() => (workRunning = false));
  };
  if (guarded === 'fn') void a.elector.runWhileLeader(work);
  else a.elector.on('elected', (term) => a.elector.guard(term, work(term)));
  await a.elector.start();
  await b.elector.start();
  assert.equal(a.elector.isLeader, true);
  await c.clock.advanceTo(4_500);
  a.lock.faults.partition(9_000);
  // Watch b's first term start against a's work, step by step.
  let bElectedAt: number | undefined;
  let workRunningAtB: boolean | undefined;
  b.elector.on('elected', () => {
    bElectedAt = c.clock.now();
    workRunningAtB = workRunning;
  });
  for (let i = 0; i < 300 && bElectedAt === undefined; i++) await c.clock.advance(50);
  return { c, a, b, releases, bElectedAt: bElectedAt!, workRunningAtB: workRunningAtB!, workRunning: () => workRunning };
}

describe('LeaderElector: release after an involuntary loss waits for the term, like stop() (#issue13-1)', () => {
  for (const guarded of ['fn', 'guard'] as const) {
    it(`${guarded === 'fn' ? 'a runWhileLeader fn' : 'work given to guard()'} that does not stop: no release and no successor before validUntil`, async () => {
      const r = await partitionedLeader(guarded);
      const { a } = r;
      assert.equal(a.lost[0]?.reason, 'deadline');
      assert.equal(a.lost.length, 1);
      const term = a.lost[0]!.term;
      assert.equal(term.validUntil, 4_000 + 15_000 * 0.99);
      assert.equal(a.lock.faults.partitioned, false, 'the path was back before the deadline');
      assert.ok(r.releases.length > 0, 'a released in the end');
      assert.ok(r.releases[0]! >= term.validUntil, `a released at ${r.releases[0]}, before validUntil ${term.validUntil}`);
      assert.ok(r.bElectedAt >= term.validUntil, `b elected at ${r.bElectedAt}, before a's validUntil ${term.validUntil}`);
      // validUntil bounds the wait (fencing covers work that outlives it): b did not wait for the store's expiry at 19 s.
      assert.ok(r.bElectedAt < 19_000, `b elected at ${r.bElectedAt}`);
      assert.equal(r.workRunningAtB, true, "a's work never stopped; only validUntil let b in");
      await r.c.stopAll();
    });
  }

  it('work that settles after the loss: the release follows at once, before validUntil', async () => {
    const r = await partitionedLeader('fn', 16_000);
    assert.equal(r.a.lost[0]?.reason, 'deadline');
    assert.equal(r.releases[0], 16_000);
    assert.equal(r.bElectedAt, 16_000);
    assert.equal(r.workRunningAtB, false);
    await r.c.stopAll();
  });

  it('stop() during the wait after a loss waits for the same release, and releases once', async () => {
    const r = await partitionedLeader('fn', 30_000);
    // b won at validUntil; a's fn still runs. stop() has nothing left to give back.
    await r.a.elector.stop();
    assert.equal(r.releases.length, 1);
    assert.equal(r.a.elector.pendingRelease, undefined);
    await r.c.stopAll();
  });
});

/** A memory lock whose watch delivers the current state once and then nothing, ever: a stuck stream. */
class StuckWatchLock extends MemoryLock {
  override watch(options: { signal: AbortSignal }): AsyncIterable<LockState> {
    const inner = super.watch(options);
    const { signal } = options;
    return (async function* () {
      for await (const state of inner) {
        yield state;
        break;
      }
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    })();
  }
}

describe('LeaderElector: campaign never depends on one stream (#issue13-3)', () => {
  for (const how of ['released', 'expired'] as const) {
    it(`a follower whose watch is stuck still takes over within one retryPeriod after the leader's record is ${how}`, async () => {
      const clock = new VirtualClock();
      const store = new MemoryStore({ clock });
      const lockA = new MemoryLock(store, { key: 'leader', ttlMs: 15_000, clock, name: 'a' });
      const lockB = new StuckWatchLock(store, { key: 'leader', ttlMs: 15_000, clock, name: 'b' });
      const a = new LeaderElector(lockA, { identity: 'a' });
      const b = new LeaderElector(lockB, { identity: 'b' });
      await a.start();
      await b.start();
      await clock.advance(3_000);
      assert.equal(b.leader, 'a', 'b saw a lead (the one state its watch delivered)');
      let freeAt: number;
      if (how === 'released') {
        await a.stop();
        freeAt = clock.now();
      } else {
        lockA.faults.partition(); // a crashes: its record expires on the store 15 s after its last renew
        const start = clock.now();
        for (let i = 0; i < 400 && (await store.peek('leader')).leader; i++) await clock.advance(50);
        freeAt = clock.now();
        assert.ok(freeAt - start <= 15_050);
      }
      for (let i = 0; i < 60 && !b.isLeader; i++) await clock.advance(50);
      assert.equal(b.isLeader, true, 'b leads');
      assert.ok(clock.now() - freeAt <= b.options.retryPeriodMs, `b took over ${clock.now() - freeAt} ms after the lock was free`);
      assert.equal(b.leader, 'b');
      lockA.faults.reset();
      await settle(clock, Promise.all([a.stop(), b.stop()]));
      await settle(clock, Promise.all([lockA.close(), lockB.close()]));
    });
  }
});
