/**
 * Release after an involuntary loss on real etcd (#issue13-1): the leader's path to etcd hangs (a TCP
 * forwarder that holds every byte) past its renew deadline and comes back before its validUntil,
 * while its runWhileLeader fn ignores the end of the term. The record is still ours on the server;
 * the elector must not give it back before validUntil, so the other candidate's term cannot start
 * beside the old fn. (The virtual-clock version with exact times is test/elector/release-after-loss.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderElector, type LostReason, type Term } from '../../../src/index.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';
import { tcpForwarder, type TcpForwarder } from '../../helpers/tcp-forwarder.js';

let cluster: EtcdCluster;
let path: TcpForwarder;
const cleanups: Array<() => Promise<unknown>> = [];

before(async () => {
  cluster = await startEtcd();
  path = await tcpForwarder(cluster.endpoints[0]!);
});
after(async () => {
  path?.thaw();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await path?.close();
  await cluster?.stop();
});

function elector(endpoint: string, identity: string, onLoss: 'recampaign' | 'stop' = 'recampaign'): LeaderElector {
  // ttl 6 s: renew deadline 3 s, validUntil = last confirmed renew send + 5.94 s.
  const lock = new EtcdLock({ endpoints: [endpoint], key: '/loss/leader', ttlMs: 6_000, requestTimeoutMs: 1_000 });
  const e = new LeaderElector(lock, { identity, renewDeadlineMs: 3_000, retryPeriodMs: 1_000, onLoss });
  e.on('warning', () => undefined);
  cleanups.push(() => e.stop().then(() => lock.close()));
  return e;
}

describe('etcd: release after a deadline loss waits for the work or validUntil', () => {
  it('the path hangs past the renew deadline and comes back: no release, and no successor, before validUntil while fn runs', async () => {
    // a does not campaign again after its loss: right after its own release it would race b for the
    // free key (and sometimes win: 1 full run in several under load), and this test is about b.
    const a = elector(path.url, 'a', 'stop');
    const b = elector(cluster.endpoints[0]!, 'b');
    let fnRunning = false;
    void a.runWhileLeader(() => {
      fnRunning = true;
      return new Promise(() => undefined); // never stops, ignores term.signal
    });
    await a.start();
    assert.equal(a.isLeader, true);
    await b.start();
    assert.equal(b.isLeader, false);

    const lost = new Promise<{ term: Term; reason: LostReason; at: number }>((resolve) => a.once('lost', (term, reason) => resolve({ term, reason, at: performance.now() })));
    const elected = new Promise<{ at: number; fnRunning: boolean }>((resolve) => b.once('elected', () => resolve({ at: performance.now(), fnRunning })));
    // Freeze right after a confirmed renew, so the deadline falls ~3 s later and validUntil ~6 s later.
    await new Promise<void>((resolve) => a.once('renew', () => resolve()));
    path.freeze();
    const frozenAt = performance.now();

    let timer: NodeJS.Timeout | undefined;
    const bound = (ms: number, what: string) => new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms)));
    const loss = await Promise.race([lost, bound(6_000, "a's loss")]);
    clearTimeout(timer);
    assert.equal(loss.reason, 'deadline');
    // The path comes back well before validUntil: the old code released right here.
    await new Promise((r) => setTimeout(r, 300));
    path.thaw();
    const thawedAt = performance.now();
    const validUntil = loss.term.validUntil;
    assert.ok(thawedAt < validUntil - 1_000, `thawed ${Math.round(validUntil - thawedAt)} ms before validUntil`);

    const won = await Promise.race([elected, bound(15_000, "b's election")]);
    clearTimeout(timer);
    const early = validUntil - won.at;
    console.log(
      `# etcd loss: frozen ${Math.round(loss.at - frozenAt)} ms before the deadline loss, thawed ${Math.round(validUntil - thawedAt)} ms before validUntil; b elected ${Math.round(won.at - validUntil)} ms after a's validUntil`,
    );
    assert.ok(early <= 0, `b elected ${Math.round(early)} ms before a's validUntil while a's fn still ran`);
    assert.equal(won.fnRunning, true, "a's fn never stopped; only validUntil let b in");
    // a released at validUntil, not left it to the server's lease expiry (≥ thaw + 6 s: keep-alives held by the frozen path were delivered at the thaw).
    assert.ok(won.at - validUntil < 2_000, `b elected ${Math.round(won.at - validUntil)} ms after validUntil`);
  });
});
