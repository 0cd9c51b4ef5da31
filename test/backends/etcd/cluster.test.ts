/**
 * etcd failures under a leading elector: a 3-node cluster that loses the member our client talks to,
 * and a single node that goes away entirely and comes back (microsoft/etcd3#158). Both run concurrently,
 * each on its own cluster.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BackendUnavailableError, LeaderElector, type LostReason, type Term } from '../../../src/index.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';

const TTL = 2000;

interface Tracked {
  lock: EtcdLock;
  elector: LeaderElector;
  lost: { reason: LostReason; at: number; validUntil: number }[];
  renews: { ok: boolean; at: number; error?: Error }[];
  elected: Term[];
}

function track(endpoints: string[], key: string, identity: string, all: Tracked[]): Tracked {
  const lock = new EtcdLock({ endpoints, key, ttlMs: TTL, requestTimeoutMs: 1200 });
  const elector = new LeaderElector(lock, { identity });
  const t: Tracked = { lock, elector, lost: [], renews: [], elected: [] };
  elector.on('lost', (term, reason) => t.lost.push({ reason, at: performance.now(), validUntil: term.validUntil }));
  elector.on('renew', (r) => t.renews.push({ ok: r.ok, at: performance.now(), error: r.error }));
  elector.on('elected', (term) => {
    // Never two leaders: whoever is elected, nobody else holds a term that is still valid.
    for (const other of all) if (other !== t) assert.equal(other.elector.term?.isValid() ?? false, false, `${identity} elected while ${other.elector.identity} still leads`);
    t.elected.push(term);
  });
  elector.on('warning', () => undefined);
  all.push(t);
  return t;
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function shutdown(all: Tracked[]): Promise<void> {
  await Promise.allSettled(all.map((t) => t.elector.stop().then(() => t.lock.close())));
}

describe('etcd failures while leading', { concurrency: true }, () => {
  describe('3-node cluster', () => {
    let cluster: EtcdCluster;
    const all: Tracked[] = [];
    before(async () => {
      cluster = await startEtcd({ size: 3 });
    });
    after(async () => {
      await shutdown(all);
      await cluster?.stop();
    });

    it('the member our client talks to dies: the next renew goes through another member, leadership survives', async () => {
      const key = '/cluster/member-dies/leader';
      const a = track(cluster.endpoints, key, 'a', all);
      // b prefers another member, so its view does not depend on the member that dies.
      const b = track([...cluster.endpoints.slice(1), cluster.endpoints[0]!], key, 'b', all);
      await a.elector.start();
      await b.elector.start();
      assert.equal(a.elector.isLeader, true, 'a started first and leads');
      // Kill the member a talks to (normally the first; a slow first connect on a loaded box may have moved it on).
      const talking = a.lock.session.members.current.name;
      const victim = cluster.members.find((m) => m.clientUrl === talking)!;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(a.lock.session.members.current.name, talking, 'a sticks to one member');
      await victim.kill('SIGKILL'); // resolves once the process is gone
      const killedAt = performance.now();
      await until(() => a.renews.some((r) => r.ok && r.at > killedAt), a.elector.options.renewDeadlineMs, 'a renew confirmed through another member');
      const firstOk = a.renews.find((r) => r.ok && r.at > killedAt)!;
      assert.notEqual(a.lock.session.members.current.name, talking);
      // Keep leading well past a ttl on the remaining two members.
      await new Promise((r) => setTimeout(r, TTL));
      assert.deepEqual(a.lost, [], `no loss; renews after the kill: ${JSON.stringify(a.renews.filter((r) => r.at > killedAt).map((r) => [Math.round(r.at - killedAt), r.ok, r.error?.message]))}`);
      assert.equal(a.elector.isLeader, true);
      assert.equal(b.elected.length, 0);
      assert.equal(b.elector.leader, 'a');
      assert.ok(firstOk.at - killedAt < a.elector.options.renewDeadlineMs);
    });
  });

  describe('single node', () => {
    let cluster: EtcdCluster;
    const all: Tracked[] = [];
    before(async () => {
      cluster = await startEtcd();
    });
    after(async () => {
      await shutdown(all);
      await cluster?.stop();
    });

    it('etcd unreachable → BackendUnavailableError, term ends by the renew deadline; etcd back → electors recover (microsoft/etcd3#158)', async () => {
      const key = '/cluster/restart/leader';
      const a = track(cluster.endpoints, key, 'a', all);
      const b = track(cluster.endpoints, key, 'b', all);
      await a.elector.start();
      await b.elector.start();
      const leader = a.elector.isLeader ? a : b;
      const term = leader.elector.term!;
      const lastOkBefore = (): number => Math.max(0, ...leader.renews.filter((r) => r.ok).map((r) => r.at));
      await Promise.all(cluster.members.map((m) => m.kill('SIGKILL')));
      const downAt = performance.now();
      const deadline = leader.elector.options.renewDeadlineMs;
      await until(() => leader.lost.length > 0, TTL + 500, 'the leader steps down');
      const lost = leader.lost[0]!;
      assert.equal(lost.reason, 'deadline');
      assert.ok(lost.at <= term.validUntil + 50, 'at the latest at validUntil');
      assert.ok(lost.at - Math.max(lastOkBefore(), downAt - leader.elector.options.retryPeriodMs) <= deadline + 300, `stepped down ${(lost.at - downAt).toFixed(0)} ms after etcd went away`);
      // A renew retries inside its own request deadline, so the elector may cut it short at its deadline
      // (reported as aborted); whatever failed before that failed as unavailability.
      const failed = leader.renews.filter((r) => !r.ok && r.at > downAt);
      assert.ok(failed.length > 0, 'renews failed while etcd was down');
      for (const r of failed) assert.ok(r.error instanceof BackendUnavailableError || r.error?.name === 'AbortError' || r.error?.name === 'AbortedError', String(r.error));
      await assert.rejects(leader.lock.get(), BackendUnavailableError);
      assert.equal(leader.elector.isLeader, false);

      await Promise.all(cluster.members.map((m) => m.start()));
      // Either elector may win; exactly one does, without restarting anything of ours.
      await until(() => a.elector.isLeader || b.elector.isLeader, 15_000, 'a leader after etcd came back');
      const winner = a.elector.isLeader ? a : b;
      const loser = winner === a ? b : a;
      assert.equal(loser.elector.isLeader, false);
      await until(() => loser.elector.leader === winner.elector.identity, 3000, 'the other follows the new leader');
      assert.ok(winner.elector.term!.token > term.token);
    });
  });
});
