import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { ConfigError, LeaderElector } from '../../src/index.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { cluster, makeNode, settle } from './harness.js';

// ttl 15 s → renewDeadline 10 s, retryPeriod 2 s (defaults 2/3 and 2/15).

describe('LeaderElector: campaign', () => {
  it('start() resolves after the first attempt; the first candidate leads with the store revision as token', async () => {
    const c = cluster(2);
    await c.node('a').elector.start();
    assert.equal(c.node('a').elector.isLeader, true);
    await c.node('b').elector.start();
    assert.equal(c.node('b').elector.isLeader, false);
    await c.clock.advance(1);
    assert.equal(c.node('b').elector.leader, 'a');
    assert.equal(c.node('b').elector.status().role, 'follower');
    const s = c.node('a').elector.status();
    assert.equal(s.role, 'leader');
    assert.equal(s.token, c.node('a').elected[0]!.token);
    assert.equal(s.isValid, true);
    await c.stopAll();
  });

  it('a graceful stop() hands over on the watch event, not after a poll interval', async () => {
    const c = cluster(3);
    for (const n of c.nodes) await n.elector.start();
    await c.clock.advance(100);
    const t0 = c.clock.now();
    await c.node('a').elector.stop();
    await c.clock.advance(0);
    const next = c.leaders();
    assert.equal(next.length, 1, 'exactly one successor');
    assert.equal(c.clock.now() - t0, 0, 'no virtual time passed: the watch woke the candidates');
    assert.ok(next[0]!.elected[0]!.token > c.node('a').elected[0]!.token, 'token increased');
    await c.stopAll();
  });

  it('a crashed leader (partitioned for good) is replaced once its record expires on the store clock', async () => {
    const c = cluster(2);
    await c.node('a').elector.start();
    await c.node('b').elector.start();
    c.node('a').lock.faults.partition();
    const t0 = c.clock.now();
    for (let i = 0; i < 300 && !c.node('b').elector.isLeader; i++) await c.clock.advance(100);
    assert.equal(c.node('b').elector.isLeader, true);
    // a's term ended by its own renew deadline (10 s) long before b won at the store's expiry (15 s).
    assert.equal(c.node('a').lost[0]?.reason, 'deadline');
    assert.ok(c.clock.now() - t0 >= 15_000 && c.clock.now() - t0 <= 15_100, `b won at ${c.clock.now() - t0} ms`);
    await c.stopAll();
  });
});

describe('LeaderElector: loss is decided on our clock, not by one stray error', () => {
  it('one lost renew response does not demote a healthy leader', async () => {
    const c = cluster(1);
    const a = c.node('a');
    await a.elector.start();
    a.lock.faults.dropResponses(1);
    await c.clock.advance(30_000);
    assert.equal(a.lost.length, 0);
    assert.equal(a.elector.isLeader, true);
    assert.ok(a.elector.status().renewFailures >= 1);
    await c.stopAll();
  });

  it('a hung renew ends the term exactly at lastConfirmedRenewSend + renewDeadlineMs', async () => {
    const c = cluster(1);
    const a = c.node('a');
    await a.elector.start();
    await c.clock.advance(2_000); // one renew confirmed at t = 2000
    const lastSend = c.clock.now();
    a.lock.faults.dropRequests(1_000);
    await c.clock.advance(9_999);
    assert.equal(a.lost.length, 0, 'still leading 1 ms before the deadline');
    assert.equal(a.elector.isLeader, true);
    await c.clock.advance(1);
    assert.equal(a.lost.length, 1);
    assert.equal(a.lost[0]!.reason, 'deadline');
    assert.equal(c.clock.now() - lastSend, 10_000);
    assert.equal(a.elected[0]!.isValid(), false);
    assert.deepEqual(a.events, [`elected:${a.elected[0]!.token}`, `lost:${a.elected[0]!.token}:deadline`]);
    a.lock.faults.reset();
    await c.stopAll();
  });

  it('a record taken over by someone else ends the term with reason taken, at once, after elected', async () => {
    const c = cluster(1);
    const a = c.node('a');
    await a.elector.start();
    const term = a.elected[0]!;
    // An operator deletes the key and another client takes it while a still believes it leads.
    c.store.forceDelete('leader');
    assert.equal(c.store.create('leader', 'intruder', 15_000).ok, true);
    await c.clock.advance(0);
    // The watch showed a foreign record: a renewed at once instead of at the next period.
    assert.deepEqual(a.events, [`elected:${term.token}`, `lost:${term.token}:taken`]);
    assert.equal(term.isValid(), false);
    assert.equal(a.elector.leader, 'intruder');
    assert.equal(c.store.peek('leader').leader?.holder, 'intruder', 'the intruder record is untouched');
    await c.stopAll();
  });
});

describe('LeaderElector: re-campaign and onLoss', () => {
  it("re-campaigns after a loss by default; onLoss: 'stop' stays out", async () => {
    for (const onLoss of ['recampaign', 'stop'] as const) {
      const c = cluster(1, { elector: { onLoss } });
      const a = c.node('a');
      await a.elector.start();
      a.lock.faults.partition(20_000);
      await c.clock.advance(60_000);
      assert.equal(a.lost[0]?.reason, 'deadline');
      assert.equal(a.elector.isLeader, onLoss === 'recampaign', onLoss);
      if (onLoss === 'stop') assert.equal(a.elector.status().role === 'observer' || a.elector.status().role === 'follower', true);
      await c.stopAll();
    }
  });

  it('100 lose/regain cycles in one process leave no timers, listeners or watches behind', async () => {
    const c = cluster(1);
    const a = c.node('a');
    await a.elector.start();
    for (let i = 0; i < 100; i++) {
      a.lock.faults.partition(12_000);
      await c.clock.advance(12_000);
      await c.clock.advance(16_000);
      assert.equal(a.elector.isLeader, true, `cycle ${i}: leading again`);
    }
    assert.equal(a.elected.length, 101);
    assert.equal(a.lost.length, 100);
    for (let i = 1; i < a.elected.length; i++) assert.ok(a.elected[i]!.token > a.elected[i - 1]!.token);
    await c.stopAll();
    await c.clock.runUntilIdle();
    assert.equal(c.clock.pendingTimers, 0, 'no timers left');
    assert.equal(a.lock.listenerCount('warning'), 0, 'no listener left on the lock');
  });
});

describe('LeaderElector: runWhileLeader and stop', () => {
  it('runs fn once per term; stop() ends the term, waits for fn, then releases', async () => {
    const c = cluster(2);
    const a = c.node('a');
    const order: string[] = [];
    await a.elector.start();
    const done = a.elector.runWhileLeader(async (term) => {
      order.push(`start:${term.token}`);
      await new Promise<void>((resolve) => term.signal.addEventListener('abort', () => resolve(), { once: true }));
      await c.clock.sleep(500); // cleanup after the abort
      order.push('fn-done');
    });
    await c.node('b').elector.start();
    const stopping = a.elector.stop();
    await c.clock.advance(499);
    assert.equal((await c.store.peek('leader')).leader?.holder, 'a', 'not released while fn still runs');
    await c.clock.advance(1);
    await stopping;
    await done;
    assert.deepEqual(order, [`start:${a.elected[0]!.token}`, 'fn-done']);
    await c.clock.advance(0);
    assert.equal(c.node('b').elector.isLeader, true);
    await c.stopAll();
  });

  it('the wait for fn in stop() is bounded by the time left in the term', async () => {
    const c = cluster(1);
    const a = c.node('a');
    await a.elector.start();
    void a.elector.runWhileLeader(() => new Promise(() => undefined)); // never settles
    const validUntil = a.elected[0]!.validUntil;
    let stopped = false;
    const p = a.elector.stop().then(() => (stopped = true));
    await c.clock.advanceTo(validUntil - 1);
    assert.equal(stopped, false);
    await c.clock.advance(1);
    await p;
    assert.equal(stopped, true);
  });

  it('if fn throws, the term is released, the error is a warning, and the elector campaigns again', async () => {
    const c = cluster(1);
    const a = c.node('a');
    let calls = 0;
    void a.elector.runWhileLeader(() => {
      calls++;
      if (calls === 1) throw new Error('boom');
    });
    await a.elector.start();
    await c.clock.advance(5_000);
    assert.equal(a.warnings.some((w) => w.message === 'boom'), true);
    assert.equal(a.lost[0]?.reason, 'released');
    assert.equal(a.elector.isLeader, true, 'leading again');
    assert.equal(calls, 2);
    await c.stopAll();
  });

  it('a failed release is retried and never forgotten', async () => {
    const c = cluster(1, { ttlMs: 15_000 });
    const a = c.node('a');
    await a.elector.start();
    a.lock.faults.partition();
    const p = a.elector.stop();
    await c.clock.advance(20_000);
    await p;
    // The term expired on the store meanwhile; the elector must not claim an unreleased term forever.
    assert.equal((await c.store.peek('leader')).leader, undefined);
    a.lock.faults.heal();
    await a.lock.close();
  });

  it('stop() releases once the work has settled, not after the watch has shut down (issue 15)', async () => {
    const c = cluster(2);
    const a = c.node('a');
    // A watch that takes 1 s to wind down after the abort, as a stream close to a slow server may.
    const watch = a.lock.watch.bind(a.lock);
    a.lock.watch = (o) => {
      const feed = watch(o);
      return {
        [Symbol.asyncIterator]() {
          const it = feed[Symbol.asyncIterator]();
          return {
            async next() {
              const r = await it.next();
              if (r.done) await c.clock.sleep(1_000);
              return r;
            },
          };
        },
      };
    };
    await a.elector.start();
    await c.node('b').elector.start();
    await c.clock.advance(1);
    let stopped = false;
    const stopping = a.elector.stop().then(() => (stopped = true));
    await c.clock.advance(0);
    assert.equal(c.store.peek('leader').leader?.holder, 'b', 'released and taken over before the watch wound down');
    assert.equal(stopped, false, 'stop() itself still waits for the loops');
    await c.clock.advance(1_000);
    await stopping;
    assert.equal(stopped, true);
    await c.stopAll();
  });

  it('stop() before the first attempt finishes leaves nothing held (cancel before acquire)', async () => {
    const c = cluster(1);
    const a = c.node('a');
    a.lock.faults.set({ latencyMs: 100 });
    const started = a.elector.start();
    await settle(c.clock, a.elector.stop(), 10);
    await started;
    await c.clock.advance(1_000);
    assert.equal(c.store.peek('leader').leader, undefined);
    assert.equal(a.elected.length, 0);
    assert.equal(a.lost.length, 0, 'no lost without elected');
    await a.lock.close();
  });
});

describe('LeaderElector: handover', () => {
  it('hands over to the named candidate among five, 100 times, always that one', async () => {
    const c = cluster(5);
    for (const n of c.nodes) await n.elector.start();
    await c.clock.advance(10);
    for (let i = 0; i < 100; i++) {
      const [leader] = c.leaders();
      assert.ok(leader);
      const others = c.nodes.filter((n) => n !== leader);
      const target = others[i % others.length]!;
      assert.equal(await leader.elector.handover(target.name), true);
      await c.clock.advance(0);
      const now = c.leaders();
      assert.deepEqual(
        now.map((n) => n.name),
        [target.name],
        `round ${i}`,
      );
      assert.equal(leader.lost.at(-1)?.reason, 'handover');
    }
    await c.stopAll();
  });

  it('with latency, the old leader never races its own handover release (the nominee always wins)', async () => {
    const c = cluster(3);
    for (const n of c.nodes) n.lock.faults.set({ latencyMs: 7, jitterMs: 5 });
    for (const n of c.nodes) await settle(c.clock, n.elector.start(), 5);
    for (let i = 0; i < 20; i++) {
      const [leader] = c.leaders();
      assert.ok(leader, `round ${i}: someone leads`);
      const target = c.nodes.filter((n) => n !== leader)[i % 2]!;
      await settle(c.clock, leader.elector.handover(target.name), 5);
      for (let k = 0; k < 100 && !target.elector.isLeader; k++) await c.clock.advance(5);
      assert.deepEqual(c.leaders().map((n) => n.name), [target.name], `round ${i}`);
    }
    await c.stopAll();
  });

  it('a nominee that never comes: another candidate leads once the nomination expires', async () => {
    const c = cluster(3);
    await c.node('a').elector.start();
    await c.node('b').elector.start();
    await c.clock.advance(10);
    await c.node('a').elector.handover('ghost');
    await c.clock.advance(14_000);
    assert.equal(c.leaders().length, 0, 'everyone holds back while the nomination lives');
    for (let i = 0; i < 40 && c.leaders().length === 0; i++) await c.clock.advance(100);
    assert.equal(c.leaders().length, 1);
    await c.stopAll();
  });

  it('handover to ourselves or to an empty name is a ConfigError; not leading resolves false', async () => {
    const c = cluster(2);
    await c.node('a').elector.start();
    await c.node('b').elector.start();
    await assert.rejects(c.node('a').elector.handover('a'), ConfigError);
    await assert.rejects(c.node('a').elector.handover(''), ConfigError);
    assert.equal(await c.node('b').elector.handover('a'), false);
    await c.stopAll();
  });
});

describe('LeaderElector: observer and options', () => {
  it('campaign: false follows the leader and never acquires', async () => {
    const c = cluster(1);
    const obs = makeNode(c.store, c.clock, 'obs', { elector: { campaign: false } });
    await obs.elector.start();
    assert.equal(obs.elector.status().role, 'observer');
    await c.node('a').elector.start();
    await c.clock.advance(1);
    assert.deepEqual(obs.leaders, ['a']);
    await settle(c.clock, c.node('a').elector.stop());
    await c.clock.advance(60_000);
    assert.deepEqual(obs.leaders, ['a', undefined]);
    assert.equal(obs.elected.length, 0);
    await settle(c.clock, obs.elector.stop());
    await c.stopAll();
  });

  it('invalid options fail at construction with one ConfigError listing every broken rule', () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    const lock = new MemoryLock(store, { ttlMs: 10_000 });
    let err: unknown;
    try {
      new LeaderElector(lock, { identity: '', renewDeadlineMs: 12_000, retryPeriodMs: 11_000, onLoss: 'explode' as 'stop' });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, 'LEADERLOCK_CONFIG');
    assert.equal(err.problems.length, 4, err.message);
    assert.match(err.message, /identity/);
    assert.match(err.message, /renewDeadlineMs \(12000\) must be less than ttlMs × \(1 − drift\) = 9900/);
    assert.match(err.message, /1\.2 × retryPeriodMs/);
    assert.match(err.message, /onLoss/);
  });

  it('issue 12: a blank identity is a ConfigError in the elector and in acquire()', async () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    const lock = new MemoryLock(store, { ttlMs: 10_000, clock: store.clock });
    for (const blank of [' ', '\t \u00a0']) {
      assert.throws(() => new LeaderElector(lock, { identity: blank }), (e: unknown) => e instanceof ConfigError && /identity must not be blank/.test(e.message));
      await assert.rejects(lock.acquire(blank), (e: unknown) => e instanceof ConfigError && /holder must not be blank/.test(e.message));
    }
    await lock.close();
  });

  it('issue 12: metadata option: followers get it with the leader event and get(); > 1 KiB is a ConfigError', async () => {
    const c = cluster(2, { elector: {} });
    const store = c.store;
    const clock = c.clock;
    assert.throws(() => new LeaderElector(c.node('a').lock, { identity: 'x', metadata: 'x'.repeat(1025) }), (e: unknown) => e instanceof ConfigError && /metadata must be at most 1024 bytes/.test(e.message));
    const lockA = new MemoryLock(store, { clock, ttlMs: 15_000 });
    const a = new LeaderElector(lockA, { identity: 'a2', metadata: 'http://10.0.0.1:8080' });
    const b = c.node('b');
    const events: Array<[string | undefined, string | undefined]> = [];
    b.elector.on('leader', (holder, metadata) => events.push([holder, metadata]));
    await a.start();
    assert.equal(a.leaderMetadata, 'http://10.0.0.1:8080', 'ours while leading');
    await b.elector.start();
    await clock.advance(1);
    assert.deepEqual(events.at(-1), ['a2', 'http://10.0.0.1:8080']);
    assert.equal(b.elector.leaderMetadata, 'http://10.0.0.1:8080');
    assert.equal((await b.lock.get()).leader?.metadata, 'http://10.0.0.1:8080');
    await settle(clock, a.stop());
    await clock.advance(1);
    assert.equal(b.elector.isLeader, true);
    assert.deepEqual(events.at(-1), ['b', undefined], 'b publishes nothing');
    await settle(clock, lockA.close());
    await c.stopAll();
  });

  it('explain() states what the timings imply and rejects unsafe combinations', () => {
    const e = LeaderElector.explain({ ttlMs: 15_000 });
    assert.equal(e.ok, true);
    assert.equal(e.renewDeadlineMs, 10_000);
    assert.equal(e.retryPeriodMs, 2_000);
    assert.equal(e.safetyMarginMs, 15_000 * 0.99 - 10_000);
    assert.equal(e.maxOutageSurvivedMs, 8_000);
    assert.equal(e.crashFailoverMs, 17_000);
    assert.deepEqual(e.warnings, []);
    // Safe but fragile: only one renew attempt fits before the deadline (Patroni's loop_wait + 2 × retry_timeout rule).
    const fragile = LeaderElector.explain({ ttlMs: 15_000, requestTimeoutMs: 5_000 });
    assert.equal(fragile.ok, true);
    assert.equal(fragile.warnings.length, 1);
    assert.match(fragile.text, /FRAGILE[\s\S]*12000 ms exceeds renewDeadlineMs \(10000\)/);
    const bad = LeaderElector.explain({ ttlMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 9_000 });
    assert.equal(bad.ok, false);
    assert.equal(bad.problems.length, 2);
    assert.match(bad.text, /UNSAFE/);
  });

  it("elector.explain() checks the lock's own request deadline", () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    const ok = new LeaderElector(new MemoryLock(store, { ttlMs: 15_000 }), { identity: 'a' }).explain(); // requestTimeout 3 s: 2 + 6 ≤ 10
    assert.deepEqual(ok.warnings, []);
    const slow = new LeaderElector(new MemoryLock(store, { ttlMs: 15_000, requestTimeoutMs: 4_500 }), { identity: 'a' }).explain();
    assert.equal(slow.warnings.length, 1);
  });

  it('status() reports loop liveness independent of the role', async () => {
    const c = cluster(2);
    await c.node('a').elector.start();
    await c.node('b').elector.start();
    await c.clock.advance(7_000);
    for (const n of c.nodes) {
      const s = n.elector.status();
      assert.equal(s.loopStalled, false, n.name);
      assert.ok(s.loopAgeMs <= 2_000, `${n.name} loopAge ${s.loopAgeMs}`);
    }
    const s = c.node('a').elector.status();
    assert.ok(s.lastRenewAgeMs! <= 2_000);
    await c.stopAll();
    assert.equal(c.node('a').elector.status().role, 'stopped');
  });

  it('issue 12: JSON.stringify(status()) works: token as a decimal string, remaining ms and wall-clock ISO times', async () => {
    const c = cluster(2);
    await c.node('a').elector.start();
    await c.node('b').elector.start();
    await c.clock.advance(1_000);
    const status = c.node('a').elector.status();
    const json = JSON.parse(JSON.stringify(status)) as Record<string, unknown>;
    assert.equal(json.token, status.token!.toString());
    assert.equal(json.role, 'leader');
    assert.equal(json.validUntil, status.validUntil);
    const now = c.clock.now();
    const wall = c.clock.date().getTime();
    assert.equal(json.at, new Date(wall).toISOString());
    assert.equal(json.validForMs, status.validUntil! - now);
    assert.ok((json.validForMs as number) > 0);
    assert.equal(json.validUntilAt, new Date(wall + status.validUntil! - now).toISOString());
    assert.equal(json.lastRenewAt, new Date(wall - status.lastRenewAgeMs!).toISOString());
    // toJSON is not enumerable: the status still compares and spreads as plain data.
    assert.equal(Object.keys(status).includes('toJSON'), false);
    const follower = JSON.parse(JSON.stringify(c.node('b').elector.status())) as Record<string, unknown>;
    assert.equal(follower.token, status.token!.toString());
    assert.equal(follower.validForMs, undefined);
    await c.stopAll();
  });

  it('Symbol.asyncDispose stops the elector and releases', async () => {
    const c = cluster(1);
    {
      const a = c.node('a');
      await a.elector.start();
      await settle(c.clock, a.elector[Symbol.asyncDispose]());
    }
    assert.equal(c.store.peek('leader').leader, undefined);
    await c.stopAll();
  });
});
