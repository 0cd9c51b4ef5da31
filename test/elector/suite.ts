/**
 * One elector suite, many backends: the same assertions on the in-memory fake with a virtual clock
 * (test/elector/suite.test.ts, `npm test`) and on real servers in real time (test/real/etcd.test.ts on
 * etcd 3.6, test/real/kube.test.ts on three kube-apiservers through endpointsResolver; `npm run test:real`).
 *
 * Every wait is a bounded poll through `harness.advance` (a virtual clock moves; a real harness sleeps a
 * little), so the same code runs on both without hoping a sleep was long enough. Time stamps come from
 * `harness.now()`, the clock the electors' Terms run on, so "A's term ended before B's began" compares
 * like with like.
 */
import assert from 'node:assert/strict';
import type { LeaderLock, LostReason, Term } from '../../src/core/lock.js';
import { LeaderElector, type LeaderElectorOptions } from '../../src/elector/index.js';

export interface ElectorSuiteHarness {
  /** Suite name suffix. */
  name: string;
  /** The ttl of every lock `newLock` returns. */
  ttlMs: number;
  /** Worst case from the holder's last renew until another can acquire (Kubernetes: judged on the reader's clock). */
  expiryMs: number;
  /** A lock on this test's key, acting like a separate process. */
  newLock(): Promise<LeaderLock>;
  /** The process holding `lock` dies: nothing more reaches the server, nothing is released. */
  crash(lock: LeaderLock): Promise<void> | void;
  /** Virtual clock: move it; real harness: sleep. */
  advance(ms: number): Promise<void>;
  /** The clock the electors' Terms use (ms). */
  now(): number;
  /** Extra elector options (timings sized for a real server). */
  elector?: Partial<LeaderElectorOptions>;
  /** After each test, after every elector is stopped and every lock closed: a fresh key for the next. */
  cleanup?(): Promise<void>;
}

export interface ElectorSuiteApi {
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: () => Promise<void>) => unknown;
}

interface Span {
  node: string;
  token: bigint;
  from: number;
  to?: number;
  reason?: LostReason;
}

interface Node {
  name: string;
  lock: LeaderLock;
  elector: LeaderElector;
  elected: Term[];
  lost: { term: Term; reason: LostReason; at: number }[];
}

/** One test's candidates; records every term as a time span on the harness clock. */
class Run {
  readonly nodes: Node[] = [];
  readonly spans: Span[] = [];
  /** Sampled after every poll step: a moment when more than one elector believed it led. */
  readonly overlaps: string[] = [];
  constructor(readonly h: ElectorSuiteHarness) {}

  get ttl(): number {
    return this.h.ttlMs;
  }
  get step(): number {
    return Math.max(5, Math.round(this.h.ttlMs / 60));
  }

  async node(name: string, options: Partial<LeaderElectorOptions> = {}): Promise<Node> {
    const lock = await this.h.newLock();
    const elector = new LeaderElector(lock, { identity: name, ...this.h.elector, ...options });
    const node: Node = { name, lock, elector, elected: [], lost: [] };
    elector.on('elected', (term) => {
      node.elected.push(term);
      this.spans.push({ node: name, token: term.token, from: this.h.now() });
    });
    elector.on('lost', (term, reason) => {
      node.lost.push({ term, reason, at: this.h.now() });
      const span = this.spans.find((s) => s.node === name && s.token === term.token && s.to === undefined);
      if (span) Object.assign(span, { to: this.h.now(), reason });
    });
    elector.on('warning', () => undefined); // crashed locks warn on every retry; the assertions below decide
    this.nodes.push(node);
    return node;
  }

  leaders(): Node[] {
    return this.nodes.filter((n) => n.elector.isLeader);
  }

  #sample(): void {
    const l = this.leaders();
    if (l.length > 1) this.overlaps.push(`${this.h.now()}: ${l.map((n) => n.name).join(' and ')} both lead`);
  }

  /** Polls `pred` every step until it holds; false after `boundMs` (of the harness clock). */
  async until(pred: () => boolean, boundMs: number): Promise<boolean> {
    const start = this.h.now();
    for (let i = 0; ; i++) {
      this.#sample();
      if (pred()) return true;
      if (this.h.now() - start >= boundMs || i > 100_000) return false;
      await this.h.advance(this.step);
    }
  }

  /** Awaits `p`, moving the harness clock meanwhile (a virtual clock would never fire otherwise). */
  async settle<T>(p: Promise<T>, what: string, boundMs = 4 * this.ttl): Promise<T> {
    let done = false;
    const watched = p.finally(() => (done = true));
    watched.catch(() => undefined);
    if (!(await this.until(() => done, boundMs))) throw new Error(`${what}: still pending after ${boundMs} ms`);
    return watched;
  }

  async start(...nodes: Node[]): Promise<void> {
    for (const n of nodes) await this.settle(n.elector.start(), `${n.name}.start()`);
  }

  async waitLeader(boundMs: number, not?: Node): Promise<Node> {
    let found: Node | undefined;
    const ok = await this.until(() => {
      const l = this.leaders().filter((n) => n !== not);
      found = l.length === 1 ? l[0] : undefined;
      return found !== undefined;
    }, boundMs);
    assert.ok(ok && found, `a leader${not ? ` other than ${not.name}` : ''} within ${boundMs} ms; leading now: ${this.leaders().map((n) => n.name).join(', ') || 'nobody'}`);
    return found;
  }

  /** No two terms overlap in time; tokens strictly increase in the order terms began. */
  checkHistory(): void {
    assert.deepEqual(this.overlaps, [], 'never two leaders at one sampled moment');
    const spans = [...this.spans].sort((a, b) => a.from - b.from);
    for (let i = 1; i < spans.length; i++) {
      const prev = spans[i - 1]!;
      const cur = spans[i]!;
      assert.ok(prev.to !== undefined && prev.to <= cur.from, `term ${prev.token} of ${prev.node} (${prev.from}–${prev.to ?? 'open'}) overlaps term ${cur.token} of ${cur.node} (from ${cur.from})`);
      assert.ok(cur.token > prev.token, `tokens strictly increase: ${prev.node} ${prev.token} then ${cur.node} ${cur.token}`);
    }
  }

  async dispose(): Promise<void> {
    for (const n of this.nodes) await this.settle(n.elector.stop(), `${n.name}.stop()`, 8 * this.ttl).catch(() => undefined);
    for (const n of this.nodes) await this.settle(n.lock.close(), `${n.name} lock.close()`, 4 * this.ttl).catch(() => undefined);
    await this.h.cleanup?.();
  }
}

/** Registers the elector cases for the backend the harness builds. */
export function electorSuite(harness: ElectorSuiteHarness, api: ElectorSuiteApi): void {
  const { describe, it } = api;
  const test = (name: string, body: (r: Run) => Promise<void>): unknown =>
    it(name, async () => {
      const r = new Run(harness);
      try {
        await body(r);
      } finally {
        await r.dispose();
      }
    });
  const ttl = harness.ttlMs;

  describe(`LeaderElector suite (${harness.name})`, () => {
    test('elect: the first candidate leads, the others follow and name it', async (r) => {
      const a = await r.node('a');
      const b = await r.node('b');
      const c = await r.node('c');
      await r.start(a);
      // start() resolves after the first attempt; on a busy machine a real server's first answer (TLS,
      // the resolver's first list) may miss its deadline, then the next attempt wins.
      assert.ok(await r.until(() => a.elector.isLeader, 2 * ttl), 'a, alone, leads');
      await r.start(b, c);
      assert.ok(await r.until(() => b.elector.leader === 'a' && c.elector.leader === 'a', ttl), `followers name a: b sees ${b.elector.leader}, c sees ${c.elector.leader}`);
      // Held across several renew periods and past the ttl.
      const held = r.h.now();
      assert.ok(await r.until(() => r.h.now() - held >= 1.5 * ttl || !a.elector.isLeader, 2 * ttl));
      assert.equal(a.elector.isLeader, true, 'a still leads after 1.5 × ttl of renewing');
      assert.equal(a.elected.length, 1, 'one term, renewed');
      assert.equal(a.elector.status().role, 'leader');
      assert.equal(b.elector.status().role, 'follower');
      assert.deepEqual(r.leaders().map((n) => n.name), ['a']);
      r.checkHistory();
    });

    test('handover via stop(): exactly one successor, within a fraction of the ttl, with a greater token', async (r) => {
      const nodes = [await r.node('a'), await r.node('b'), await r.node('c')];
      await r.start(...nodes);
      const first = await r.waitLeader(ttl);
      const t0 = r.h.now();
      await r.settle(first.elector.stop(), 'stop()');
      assert.equal(first.lost.at(-1)?.reason, 'stopped');
      const next = await r.waitLeader(ttl, first);
      const took = r.h.now() - t0;
      // On the watch event, not after the old lease ran out.
      assert.ok(took < ttl, `successor ${next.name} elected ${took} ms after stop() began (ttl ${ttl})`);
      console.log(`elector suite (${harness.name}): stop() → successor elected in ${took.toFixed(0)} ms (ttl ${ttl})`);
      assert.ok(next.elected[0]!.token > first.elected[0]!.token, 'token increased');
      assert.equal(r.leaders().length, 1);
      r.checkHistory();
    });

    test('crash: a leader that goes silent is replaced after its lease; its own term ended first', async (r) => {
      const a = await r.node('a');
      const b = await r.node('b');
      await r.start(a);
      assert.ok(await r.until(() => a.elector.isLeader, 2 * ttl), 'a, alone, leads');
      await r.start(b);
      assert.ok(await r.until(() => b.elector.leader === 'a', ttl), 'b follows a');
      const crashedAt = r.h.now();
      await harness.crash(a.lock);
      assert.ok(await r.until(() => b.elector.isLeader, harness.expiryMs + 2 * ttl), `b takes over within ${harness.expiryMs + 2 * ttl} ms of the crash`);
      const tookMs = r.h.now() - crashedAt;
      console.log(`elector suite (${harness.name}): crash → successor elected in ${tookMs.toFixed(0)} ms (ttl ${ttl}); the crashed leader stepped down ${(a.lost[0]!.at - crashedAt).toFixed(0)} ms after the crash (${a.lost[0]!.reason})`);
      assert.equal(a.lost.length, 1, 'the crashed leader lost its term');
      assert.ok(['deadline', 'expired', 'unavailable'].includes(a.lost[0]!.reason), `lost by its own clock, not told: ${a.lost[0]!.reason}`);
      const bFrom = r.spans.find((s) => s.node === 'b')!.from;
      assert.ok(a.lost[0]!.at <= bFrom, `a stepped down (${a.lost[0]!.at}) before b was elected (${bFrom})`);
      // Not before the record could have expired: a's last renew was at most one retry period before
      // the crash, so the successor waited out most of the lease.
      assert.ok(tookMs >= ttl * 0.75, `b elected ${tookMs} ms after the crash: not before a's lease could run out (ttl ${ttl})`);
      assert.ok(b.elected[0]!.token > a.elected[0]!.token, 'token increased');
      r.checkHistory();
    });

    test('handover(successor) nominates: the named candidate wins, the others hold back; handover() lets another win', async (r) => {
      const nodes = [await r.node('a'), await r.node('b'), await r.node('c')];
      await r.start(...nodes);
      const first = await r.waitLeader(ttl);
      const others = nodes.filter((n) => n !== first);
      const target = others[1]!;
      assert.ok(await r.until(() => others.every((n) => n.elector.leader === first.name), ttl));
      assert.equal(await r.settle(first.elector.handover(target.name), 'handover(successor)'), true);
      assert.equal(first.lost.at(-1)?.reason, 'handover');
      const next = await r.waitLeader(ttl, first);
      assert.equal(next.name, target.name, `the nominee ${target.name} wins, not ${next.name}`);
      assert.equal(others[0]!.elected.length, 0, `${others[0]!.name} held back`);
      // Without a successor: the old leader holds back for one ttl, so someone else wins.
      assert.equal(await r.settle(next.elector.handover(), 'handover()'), true);
      const third = await r.waitLeader(ttl, next);
      assert.notEqual(third.name, next.name);
      assert.ok(third.elected.at(-1)!.token > next.elected[0]!.token, 'token increased');
      // The elector that gave the lock away campaigns again later (it is still started).
      assert.equal(next.elector.status().role === 'follower' || next.elector.status().role === 'candidate', true);
      const follower = nodes.find((n) => n !== third)!;
      assert.equal(await r.settle(follower.elector.handover(third.name), 'handover when not leading'), false, 'not leading: false');
      r.checkHistory();
    });

    test('churn of stop, restart and handover: never two leaders at once, tokens strictly increase', async (r) => {
      const nodes = [await r.node('a'), await r.node('b'), await r.node('c')];
      await r.start(...nodes);
      let leader = await r.waitLeader(ttl);
      const rounds = 6;
      for (let i = 0; i < rounds; i++) {
        const old = leader;
        if (i % 3 === 0) {
          await r.settle(old.elector.stop(), `round ${i}: stop()`);
          leader = await r.waitLeader(ttl, old);
          await r.start(old); // back as a candidate
        } else if (i % 3 === 1) {
          const to = nodes.filter((n) => n !== old)[i % 2]!;
          await r.settle(old.elector.handover(to.name), `round ${i}: handover(${to.name})`);
          leader = await r.waitLeader(ttl, old);
          assert.equal(leader.name, to.name, `round ${i}: the nominee wins`);
        } else {
          await r.settle(old.elector.handover(), `round ${i}: handover()`);
          leader = await r.waitLeader(ttl, old);
        }
      }
      const terms = r.spans.length;
      assert.ok(terms >= rounds + 1, `${terms} terms over ${rounds} rounds`);
      r.checkHistory();
    });
  });
}
