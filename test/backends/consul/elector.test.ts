import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderElector } from '../../../src/elector/index.js';
import { ConsulServiceRegistration, type ConsulLock } from '../../../src/backends/consul/index.js';
import type { LostReason, Term } from '../../../src/core/lock.js';
import { ConsulWorld } from './harness.js';

/** LeaderElector over ConsulLock, with service registration driven by its events, all on one VirtualClock. */

const TTL = 10_000;

interface Member {
  lock: ConsulLock;
  elector: LeaderElector;
  reg: ConsulServiceRegistration;
  log: Array<{ at: number; event: 'elected' | 'lost'; reason?: LostReason; term: Term }>;
}

describe('LeaderElector on ConsulLock', () => {
  let w: ConsulWorld;
  beforeEach(async () => {
    w = await ConsulWorld.start();
  });
  afterEach(async () => {
    await w.close();
  });

  const member = (identity: string): Member => {
    const lock = w.lock({ key: 'service/pg/leader', ttlMs: TTL });
    const elector = new LeaderElector(lock, { identity });
    const reg = new ConsulServiceRegistration({ client: w.client(), service: 'pg', identity, clock: w.clock });
    reg.attach(elector);
    const m: Member = { lock, elector, reg, log: [] };
    elector.on('elected', (term) => m.log.push({ at: w.clock.now(), event: 'elected', term }));
    elector.on('lost', (term, reason) => m.log.push({ at: w.clock.now(), event: 'lost', reason, term }));
    elector.on('warning', () => undefined);
    return m;
  };
  /** A and B created, then A started (it leads the empty key) and B started (it follows), each settled. */
  const leaderAndFollower = async (): Promise<[Member, Member]> => {
    const a = member('a');
    const b = member('b');
    await a.elector.start();
    await w.settle();
    await b.elector.start();
    await w.settle();
    return [a, b];
  };
  const tags = (identity: string): string[] | undefined => w.fake.services().find((s) => s.id === `pg-${identity}`)?.tags;
  const shutdown = async (...ms: Member[]): Promise<void> => {
    for (const m of ms) {
      await m.elector.stop();
      await m.reg.stop();
      await m.lock.close();
    }
  };
  const advanceUntil = async (pred: () => boolean, boundMs: number, stepMs = 250): Promise<boolean> => {
    for (let waited = 0; waited <= boundMs; waited += stepMs) {
      if (pred()) return true;
      await w.advance(stepMs);
    }
    return pred();
  };

  it('tags follow the elector: primary + master on the leader, replica elsewhere; stop hands over at once', async () => {
    const [a, b] = await leaderAndFollower();
    assert.equal(a.elector.isLeader, true);
    assert.equal(b.elector.leader, 'a');
    assert.deepEqual(tags('a'), ['primary', 'master']);
    assert.deepEqual(tags('b'), ['replica']);
    const t0 = w.clock.now();
    await a.elector.stop();
    assert.ok(await advanceUntil(() => b.elector.isLeader, 2000, 50), 'B takes over after a clean stop');
    assert.ok(w.clock.now() - t0 <= 2000, `handover took ${w.clock.now() - t0} ms of virtual time`);
    await w.settle();
    assert.deepEqual(tags('b'), ['primary', 'master']);
    assert.deepEqual(tags('a'), ['replica']);
    await shutdown(a, b);
    assert.equal(w.fake.services().length, 0);
    assert.equal(w.fake.sessions().length, 0, 'sessions destroyed by close()');
  });

  it('a leader cut off from Consul steps down by its renew deadline; the other leads only after, within 2 × TTL', async () => {
    const [a, b] = await leaderAndFollower();
    const term = a.elector.term!;
    const sid = a.lock.sessionId!;
    // A's session renewals no longer reach Consul (a partition of A alone).
    w.fake.addFault({ kind: 'error', status: 500, match: { method: 'PUT', path: `/v1/session/renew/${sid}` } });
    const cut = w.clock.now();
    assert.ok(await advanceUntil(() => b.elector.isLeader, 2 * TTL + 5000), 'B leads once Consul invalidated A’s session');
    const lost = a.log.find((e) => e.event === 'lost' && e.term === term)!;
    const elected = b.log.find((e) => e.event === 'elected')!;
    assert.equal(lost.reason, 'deadline');
    const renewDeadline = a.elector.options.renewDeadlineMs;
    assert.ok(lost.at <= cut + renewDeadline + 250, `A stepped down ${lost.at - cut} ms after the cut (renewDeadline ${renewDeadline})`);
    assert.ok(lost.at <= term.validUntil);
    assert.ok(elected.at > lost.at, 'no overlap');
    assert.ok(elected.at - cut <= 2 * TTL + 2 * b.elector.options.retryPeriodMs, `failover ${elected.at - cut} ms ≤ 2 × TTL + retry`);
    assert.ok(elected.term.token > term.token);
    await w.settle();
    assert.deepEqual(tags('b'), ['primary', 'master']);
    assert.deepEqual(tags('a'), ['replica']);
    w.fake.clearFaults();
    await shutdown(a, b);
  });

  it('Consul down: the leader ends its term by the renew deadline, at the latest at validUntil', async () => {
    const a = member('a');
    await a.elector.start();
    await w.settle();
    const term = a.elector.term!;
    await w.fake.down();
    const cut = w.clock.now();
    assert.ok(await advanceUntil(() => term.signal.aborted, TTL));
    const lost = a.log.find((e) => e.event === 'lost')!;
    assert.equal(lost.reason, 'deadline');
    assert.ok(lost.at <= cut + a.elector.options.renewDeadlineMs + 250);
    assert.ok(lost.at < term.validUntil);
    assert.equal(a.elector.isLeader, false);
    await w.fake.up();
    await shutdown(a);
  });
});
