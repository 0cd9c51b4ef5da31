/**
 * How to test YOUR failover logic with leaderlock's fakes: `MemoryStore` (an exact in-process DCS),
 * `VirtualClock` (time moves only when the test says so: a 15 s ttl costs nothing) and per-client
 * fault injection (`lock.faults`). No sleeps, no real servers, deterministic.
 *
 * The code under test is a tiny "job runner" that must never run jobs on two nodes at once and tags
 * every write with the fencing token.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderElector, type Term } from 'leaderlock';
import { MemoryLock, MemoryStore } from 'leaderlock/memory';
import { VirtualClock } from 'leaderlock/testing';

/** The code under test: runs a job every second while leading, each write fenced by the term's token. */
type WriteLog = Array<{ node: string; token: bigint; at: number }>;

class JobRunner {
  readonly elector: LeaderElector;
  constructor(readonly name: string, readonly lock: MemoryLock, clock: VirtualClock, log: WriteLog) {
    this.elector = new LeaderElector(lock, { identity: name });
    void this.elector.runWhileLeader(async (term: Term) => {
      while (term.isValid()) {
        log.push({ node: name, token: term.token, at: clock.now() }); // check isValid() right before acting
        await clock.sleep(1_000, term.signal).catch(() => undefined);
      }
    });
  }
}

function twoNodes() {
  const clock = new VirtualClock();
  const store = new MemoryStore({ clock });
  const log: WriteLog = [];
  const [a, b] = ['a', 'b'].map((n) => new JobRunner(n, new MemoryLock(store, { key: 'jobs/leader', ttlMs: 15_000, clock, name: n }), clock, log));
  return { clock, store, log, a: a!, b: b! };
}

/** The property your users rely on: writes from two nodes never interleave, and tokens never go back. */
function assertNoOverlap(log: WriteLog): void {
  for (let i = 1; i < log.length; i++) {
    assert.ok(log[i]!.token >= log[i - 1]!.token, `token went back at write ${i}`);
    if (log[i]!.node !== log[i - 1]!.node) assert.ok(log[i]!.token > log[i - 1]!.token, 'a new writer needs a new term');
  }
}

describe('my job runner fails over safely (virtual time, fault injection)', () => {
  it('a leader cut off from the DCS stops before the other node starts', async () => {
    const { clock, log, a, b } = twoNodes();
    await a.elector.start();
    await b.elector.start();
    await clock.advance(5_000);
    assert.equal(a.elector.isLeader, true);
    a.lock.faults.partition(); // a can no longer reach the DCS
    await clock.advance(40_000); // a steps down at its renew deadline; b wins once the record expires
    assert.equal(a.elector.isLeader, false);
    assert.equal(b.elector.isLeader, true);
    const lastA = log.filter((w) => w.node === 'a').at(-1)!;
    const firstB = log.find((w) => w.node === 'b')!;
    assert.ok(lastA.at < firstB.at, `a wrote at ${lastA.at}, b started at ${firstB.at}`);
    assertNoOverlap(log);
    a.lock.faults.heal();
    await Promise.all([a.elector.stop(), b.elector.stop(), clock.runUntilIdle()]);
  });

  it('a graceful stop hands over at once, not after a ttl', async () => {
    const { clock, a, b } = twoNodes();
    await a.elector.start();
    await b.elector.start();
    const stopping = a.elector.stop();
    await clock.advance(0);
    await stopping;
    await clock.advance(0);
    assert.equal(b.elector.isLeader, true, 'b leads without any time passing');
    await Promise.all([b.elector.stop(), clock.runUntilIdle()]);
  });

  it('a lost response (write applied, answer lost) never gives two leaders', async () => {
    const { clock, log, a, b } = twoNodes();
    a.lock.faults.dropResponses(1); // a's first acquire succeeds on the server but a never hears back
    const started = Promise.all([a.elector.start(), b.elector.start()]);
    await clock.advance(60_000); // a's acquire times out (ambiguous), a re-reads and recognises its own write
    await started;
    assert.equal([a, b].filter((n) => n.elector.isLeader).length, 1);
    assertNoOverlap(log);
    await Promise.all([a.elector.stop(), b.elector.stop(), clock.runUntilIdle()]);
  });
});
