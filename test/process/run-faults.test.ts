import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { Harness, overlapReport, type Line, type Supervisor } from './harness.js';

/**
 * Issue 13: `leaderlock run` under process faults, on real etcd with real supervisors. Two
 * supervisors guard a command that appends a timestamped line every 20 ms to one shared file; after
 * each fault the file must show no two commands writing at the same time. The measured gap (or
 * overlap) is printed as a test diagnostic.
 *
 * Timings: ttl 3 s (etcd's minimum lease TTL here is 1.5 s: 1.5 × its 1 s election timeout), so a
 * crash failover takes about 3 s; each scenario stays under ~15 s.
 */
describe('leaderlock run under process faults (real etcd, real processes)', { concurrency: false }, () => {
  let etcd: EtcdCluster;
  const harnesses: Harness[] = [];
  const harness = (): Harness => {
    const h = new Harness();
    harnesses.push(h);
    return h;
  };
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const h of harnesses) await h.killAll();
    await etcd?.stop();
  });

  const endpoint = (): string => new URL(etcd.endpoints[0]!).host;
  const common = (key: string, via = endpoint()): string[] => ['--backend', `etcd://${via}`, '--key', key, '--ttl', '3s', '--grace', '1s'];

  /** a leads (its command writes), b follows. */
  async function leaderAndFollower(h: Harness, args: (id: string) => string[], env: Record<string, string> = {}): Promise<[Supervisor, Supervisor]> {
    const a = h.supervisor('a', args('a'), env);
    await h.waitLines((ls) => ls.some((l) => l.id === 'a'), "a's command writing");
    const b = h.supervisor('b', args('b'), env);
    await b.waitStderr(/leader is a; waiting/);
    return [a, b];
  }

  /**
   * Prints the gap between the commands (it includes the successor's start-up: its reaper and the
   * writer loading) and the safety margin proper: the old command's last write → the successor's
   * win (when its "elected" line arrived), then asserts that no two commands overlapped.
   */
  function assertNoOverlap(t: TestContext, h: Harness, scenario: string, successor: Supervisor): void {
    const intervals = h.intervals();
    const r = overlapReport(intervals);
    const gap = r.gaps.map((g) => `${(g / 1000).toFixed(3)} s`).join(', ');
    const first = intervals[0];
    const won = [...successor.electedAt.values()].find((at) => first !== undefined && at > first.end);
    const margin = first && won !== undefined ? `${((won - first.end) / 1000).toFixed(3)} s` : '?';
    t.diagnostic(`${scenario}: gap between commands ${gap} (negative = overlap); worst overlap ${(r.worstOverlapMs / 1000).toFixed(3)} s; first command's last write → successor elected ${margin}; ${r.text}`);
    assert.ok(r.gaps.length >= 1, `two commands ran: ${r.text}`);
    assert.ok(r.worstOverlapMs <= 0, `${scenario}: commands overlapped by ${r.worstOverlapMs.toFixed(0)} ms: ${r.text}`);
  }

  it('kill -9 of the leading supervisor (three supervisors): its command dies at once (watchdog), one successor starts after expiry', async (t) => {
    const h = harness();
    const [a, b] = await leaderAndFollower(h, () => common('/faults/kill9'));
    const c = h.supervisor('c', common('/faults/kill9'));
    await c.waitStderr(/leader is a; waiting/);
    a.signal('SIGKILL');
    const successor = (ls: ReturnType<Harness['lines']>): string | undefined => ls.find((l) => l.id !== 'a')?.id;
    await h.waitLines((ls) => ls.filter((l) => l.id === successor(ls)).length >= 25, "the successor's command writing for 0.5 s", 20_000);
    assertNoOverlap(t, h, 'kill -9 supervisor', successor(h.lines()) === 'c' ? c : b);
  });

  it('SIGSTOP of the leading supervisor past its ttl: its command is dead at validUntil, before b wins', async (t) => {
    const h = harness();
    const [a, b] = await leaderAndFollower(h, () => common('/faults/sigstop'));
    a.signal('SIGSTOP');
    try {
      await h.waitLines((ls) => ls.filter((l) => l.id === 'b').length >= 25, "b's command writing for 0.5 s", 20_000);
    } finally {
      a.signal('SIGCONT');
    }
    // Thawed, a finds its term over and follows b; its old command must not come back.
    await a.waitStderr(/leader is b; waiting|waiting to be elected again/, 15_000);
    const bWrites = h.lines().filter((l) => l.id === 'b').length;
    await h.waitLines((ls) => ls.filter((l) => l.id === 'b').length >= bWrites + 10, "b's command still writing after a's thaw");
    assertNoOverlap(t, h, 'SIGSTOP supervisor past ttl', b);
  });

  it("kill -9 of the leader's watchdog process: its command dies, leaderlock releases and exits 137, the successor takes over", async (t) => {
    const h = harness();
    const [a, b] = await leaderAndFollower(h, () => common('/faults/reaper'));
    const reaper = h.reaperOf('a');
    assert.ok(reaper, 'found the reaper of a');
    process.kill(reaper, 'SIGKILL');
    assert.equal(await a.exited, 137, a.stderr);
    assert.match(a.stderr, /the watchdog process died \(SIGKILL\): SIGKILL to the command's process group/);
    await h.waitLines((ls) => ls.filter((l) => l.id === 'b').length >= 25, "b's command writing for 0.5 s", 20_000);
    assertNoOverlap(t, h, 'kill -9 of the reaper', b);
  });

  it(
    "a command ignoring SIGTERM, the leader's path to etcd hung past its renew deadline and back before validUntil",
    async (t) => {
      const h = harness();
      const fa = await h.forwarder(endpoint());
      const fb = await h.forwarder(endpoint());
      const args = (id: string): string[] => ['--backend', `etcd://${id === 'a' ? fa.address : fb.address}`, '--key', '/faults/ignore-term', '--ttl', '6s', '--renew-deadline', '1500ms', '--grace', '4s'];
      const [a, b] = await leaderAndFollower(h, args, { IGNORE_TERM: '1' });
      fa.freeze();
      try {
        await a.waitStderr(/leadership lost \(deadline\)/, 10_000);
      } finally {
        fa.thaw(); // back before validUntil (6 s × 0.99 after the last confirmed renew)
      }
      await a.waitStderr(/exited with SIGKILL/, 15_000);
      // Once a's key is released both campaign again and either may win (a often does: its path is
      // back); what matters is that the next term's command starts only after the old one is dead.
      const nextTerm = (ls: ReturnType<Harness['lines']>): Line[] => {
        const first = ls[0] && `${ls[0].id}/${ls[0].token}`;
        return ls.filter((l) => `${l.id}/${l.token}` !== first);
      };
      await h.waitLines((ls) => nextTerm(ls).length >= 25, "the next term's command writing for 0.5 s", 20_000);
      assertNoOverlap(t, h, 'SIGTERM ignored, path hung', nextTerm(h.lines())[0]!.id === 'a' ? a : b);
    },
  );
});
