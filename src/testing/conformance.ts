import assert from 'node:assert/strict';
import { ConfigError, LockLostError } from '../core/errors.js';
import { Term, sameState, type LeaderLock, type LockState } from '../core/lock.js';

/**
 * One suite every `LeaderLock` runs — the built-in backends and users' own. It takes the caller's
 * `describe`/`it`, so it runs under node:test, vitest or jest:
 *
 * ```ts
 * import { describe, it } from 'node:test';
 * lockConformance({ newLock: async () => new MemoryLock(store, { clock, ttlMs: 1000 }),
 *                   advance: (ms) => clock.advance(ms), ttlMs: 1000 }, { describe, it });
 * ```
 *
 * Waits never assume exact timing: to see an expiry the suite advances in steps of ttl/4 and retries,
 * up to `expiryMs + ttlMs`, so a harness whose `advance` sleeps for real (a real server) passes too.
 * Each case takes at most a few ttl. Every lock a case creates is closed after it, then `cleanup` runs.
 */
export interface ConformanceHarness {
  /** A new lock on the same key, acting like a separate process (own lease/session/client). */
  newLock(): Promise<LeaderLock>;
  /** Moves a virtual clock, or sleeps for real. */
  advance(ms: number): Promise<void>;
  /** The ttl the harness's locks use. */
  ttlMs: number;
  /** Worst case from the holder's last renew until another can acquire. Default 2 × ttlMs. */
  expiryMs?: number;
  /** Called after each test, after its locks are closed. */
  cleanup?(): Promise<void>;
  /** Suite name suffix. */
  name?: string;
  /** The lock supports leader metadata (`acquire(holder, { metadata })`): run those cases too. Default false. */
  metadata?: boolean;
}

/** The caller's test functions (node:test, vitest and jest all fit). */
export interface ConformanceTestApi {
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: () => Promise<void>) => unknown;
}

class Case {
  readonly #locks: LeaderLock[] = [];
  constructor(readonly h: ConformanceHarness) {}

  get ttl(): number {
    return this.h.ttlMs;
  }
  get expiry(): number {
    return this.h.expiryMs ?? 2 * this.h.ttlMs;
  }

  async lock(): Promise<LeaderLock> {
    const lock = await this.h.newLock();
    this.#locks.push(lock);
    return lock;
  }

  async locks(n: number): Promise<LeaderLock[]> {
    return Promise.all(Array.from({ length: n }, () => this.lock()));
  }

  /** Acquire, and assert it worked. */
  async win(lock: LeaderLock, holder: string): Promise<Term> {
    const term = await lock.acquire(holder);
    assert.ok(term instanceof Term, `${holder} should acquire the free lock`);
    return term;
  }

  /** Retry `acquire` every ttl/4 until it succeeds or `boundMs` has passed. */
  async acquireWithin(lock: LeaderLock, holder: string, boundMs = this.expiry + this.ttl): Promise<Term | undefined> {
    for (let waited = 0; ; waited += this.ttl / 4) {
      const term = await lock.acquire(holder);
      if (term || waited >= boundMs) return term;
      await this.h.advance(this.ttl / 4);
    }
  }

  /** Advance in small steps until `pred()` holds; false after `boundMs`. */
  async until(pred: () => boolean, boundMs = 2 * this.ttl): Promise<boolean> {
    const step = Math.max(1, this.ttl / 40);
    for (let waited = 0; ; waited += step) {
      if (pred()) return true;
      if (waited >= boundMs) return false;
      await this.h.advance(step);
    }
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.#locks.map((l) => l.close()));
    await this.h.cleanup?.();
  }
}

function isLost(err: unknown): boolean {
  return err instanceof LockLostError;
}

function endReason(term: Term): string | undefined {
  const reason: unknown = term.signal.reason;
  return reason instanceof LockLostError ? reason.reason : undefined;
}

/** Registers the conformance cases for the lock the harness builds. */
export function lockConformance(harness: ConformanceHarness, api: ConformanceTestApi): void {
  const { describe, it } = api;
  const test = (name: string, body: (c: Case) => Promise<void>): unknown =>
    it(name, async () => {
      const c = new Case(harness);
      try {
        await body(c);
      } finally {
        await c.dispose();
      }
    });

  describe(`LeaderLock conformance${harness.name ? ` (${harness.name})` : ''}`, () => {
    test('acquire gives a valid Term; another lock gets undefined while it is held', async (c) => {
      const [a, b] = await c.locks(2);
      const term = await c.win(a!, 'node-a');
      assert.equal(term.holder, 'node-a');
      assert.equal(typeof term.token, 'bigint');
      assert.ok(term.isValid(), 'a fresh term is valid');
      assert.equal(term.signal.aborted, false);
      assert.equal(await b!.acquire('node-b'), undefined);
      assert.ok(term.isValid());
    });

    test('get() shows the holder and token the Term holds', async (c) => {
      const [a, b] = await c.locks(2);
      assert.equal((await b!.get()).leader, undefined, 'a fresh key has no leader');
      const term = await c.win(a!, 'node-a');
      const { leader } = await b!.get();
      assert.equal(leader?.holder, 'node-a');
      assert.equal(leader?.token, term.token);
      assert.equal(leader?.live, true);
      assert.ok((leader?.ttlMs ?? 0) > 0);
    });

    test('renew returns the same Term with validUntil moved forward, and keeps it past the ttl', async (c) => {
      const [a, b] = await c.locks(2);
      const term = await c.win(a!, 'node-a');
      for (let i = 0; i < 6; i++) {
        const before = term.validUntil;
        await c.h.advance(c.ttl / 3);
        assert.equal(await a!.renew(term), term);
        assert.ok(term.validUntil > before, 'a confirmed renew moves validUntil forward');
      }
      assert.ok(term.isValid(), 'renewed for 2 × ttl, still valid');
      assert.equal(await b!.acquire('node-b'), undefined);
      assert.equal((await b!.get()).leader?.token, term.token);
    });

    test('exactly one winner among 20 concurrent acquirers', async (c) => {
      const locks = await c.locks(20);
      const terms = await Promise.all(locks.map((l, i) => l.acquire(`node-${i}`)));
      const winners = terms.filter((t): t is Term => t !== undefined);
      assert.equal(winners.length, 1, 'exactly one acquire succeeds');
      const state = await locks[0]!.get();
      assert.equal(state.leader?.holder, winners[0]!.holder);
      assert.equal(state.leader?.token, winners[0]!.token);
      // After the winner releases, the others race again: still exactly one.
      const w = terms.indexOf(winners[0]);
      assert.equal(await locks[w]!.release(winners[0]!), true);
      const rest = locks.filter((_, i) => i !== w);
      const again = (await Promise.all(rest.map((l, i) => l.acquire(`again-${i}`)))).filter((t) => t !== undefined);
      assert.equal(again.length, 1);
      assert.ok(again[0]!.token > winners[0]!.token);
    });

    test('release frees the key at once and ends the term with reason released', async (c) => {
      const [a, b] = await c.locks(2);
      const term = await c.win(a!, 'node-a');
      assert.equal(await a!.release(term), true);
      assert.equal(term.signal.aborted, true);
      assert.ok(isLost(term.signal.reason), 'signal.reason is a LockLostError');
      assert.equal(endReason(term), 'released');
      assert.equal(term.isValid(), false);
      const next = await c.win(b!, 'node-b');
      assert.ok(next.token > term.token);
    });

    test('renew of a released term throws LockLostError', async (c) => {
      const [a] = await c.locks(1);
      const term = await c.win(a!, 'node-a');
      await a!.release(term);
      await assert.rejects(async () => a!.renew(term), isLost);
    });

    test('release of a stale term never deletes the successor’s key', async (c) => {
      const [a, b] = await c.locks(2);
      const old = await c.win(a!, 'node-a');
      assert.equal(await a!.release(old), true);
      const next = await c.win(b!, 'node-b');
      assert.equal(await a!.release(old), false, 'a stale release reports the key is no longer ours');
      const { leader } = await a!.get();
      assert.equal(leader?.holder, 'node-b');
      assert.equal(leader?.token, next.token);
      assert.ok(next.isValid());
    });

    test('same identity from another lock instance is no shortcut', async (c) => {
      const [a, b] = await c.locks(2);
      const term = await c.win(a!, 'node-a');
      assert.equal(await b!.acquire('node-a'), undefined, 'a second incarnation with our name must wait like anyone else');
      assert.equal((await b!.get()).leader?.token, term.token);
    });

    test('expiry hands the lock over; the old term cannot be renewed', async (c) => {
      const [a, b] = await c.locks(2);
      const old = await c.win(a!, 'node-a');
      assert.equal(await b!.acquire('node-b'), undefined);
      const next = await c.acquireWithin(b!, 'node-b');
      assert.ok(next, `node-b should acquire within expiryMs + ttl (${c.expiry + c.ttl} ms) of the holder stopping renewing`);
      assert.ok(next.token > old.token, 'tokens strictly increase across terms');
      assert.equal(old.isValid(), false, 'the old holder’s term is not valid once another holds the key');
      await assert.rejects(async () => a!.renew(old), isLost);
      assert.ok(old.signal.aborted);
      assert.ok(['taken', 'expired'].includes(endReason(old) ?? ''), `ended as taken or expired, got ${endReason(old)}`);
      assert.equal(await a!.release(old), false, 'a stale release never deletes the successor’s key');
      assert.equal((await a!.get()).leader?.token, next.token);
    });

    test('tokens strictly increase across terms (release, re-acquire, expiry)', async (c) => {
      const [a, b] = await c.locks(2);
      const tokens: bigint[] = [];
      for (const [lock, holder] of [[a!, 'node-a'], [b!, 'node-b'], [a!, 'node-a']] as const) {
        const term = await c.win(lock, holder);
        tokens.push(term.token);
        assert.equal(await lock.release(term), true);
      }
      tokens.push((await c.win(b!, 'node-b')).token);
      const afterExpiry = await c.acquireWithin(a!, 'node-a');
      assert.ok(afterExpiry);
      tokens.push(afterExpiry.token);
      for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!, `token ${i} (${tokens[i]}) > token ${i - 1} (${tokens[i - 1]})`);
    });

    test('handover: others get undefined, the nominee acquires at once', async (c) => {
      const [a, b, x] = await c.locks(3);
      const old = await c.win(a!, 'node-a');
      assert.equal(await a!.release(old, { successor: 'node-b' }), true);
      assert.equal(endReason(old), 'handover');
      assert.equal((await x!.get()).successor, 'node-b', 'get() reports the nomination');
      assert.equal(await x!.acquire('node-x'), undefined, 'a candidate other than the nominee holds back');
      const next = await c.win(b!, 'node-b');
      assert.ok(next.token > old.token);
      const state = await x!.get();
      assert.equal(state.leader?.holder, 'node-b');
      assert.equal(state.successor, undefined, 'the nominee’s acquire removes the nomination');
    });

    test('a nomination expires after ttl so others can acquire', async (c) => {
      const [a, x] = await c.locks(2);
      const old = await c.win(a!, 'node-a');
      assert.equal(await a!.release(old, { successor: 'node-b' }), true);
      assert.equal(await x!.acquire('node-x'), undefined);
      const term = await c.acquireWithin(x!, 'node-x');
      assert.ok(term, 'the nomination lapses by itself');
      assert.ok(term.token > old.token);
    });

    test('watch: current state first, then every change of holder or token, in order, never going back', async (c) => {
      const [a, b, w] = await c.locks(3);
      const ac = new AbortController();
      const seen: LockState[] = [];
      let ended = false;
      let failure: unknown;
      const consumer = (async () => {
        try {
          for await (const s of w!.watch({ signal: ac.signal })) seen.push(s);
        } catch (err) {
          failure = err;
        } finally {
          ended = true;
        }
      })();
      try {
        assert.ok(await c.until(() => seen.length > 0), 'the current state comes first');
        assert.equal(seen[0]!.leader, undefined);
        // Three terms in quick succession: each of them must be seen, in order.
        const t1 = await c.win(a!, 'node-a');
        await a!.release(t1);
        const t2 = await c.win(b!, 'node-b');
        await b!.release(t2);
        const t3 = await c.win(a!, 'node-a');
        assert.ok(await c.until(() => seen.at(-1)?.leader?.token === t3.token), 'the latest state arrives');
        const tokens = seen.flatMap((s) => (s.leader ? [s.leader.token] : []));
        assert.deepEqual([...new Set(tokens)], [t1.token, t2.token, t3.token], 'every term seen, in order');
        for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! >= tokens[i - 1]!, 'never goes back');
        for (let i = 1; i < seen.length; i++) assert.ok(!sameState(seen[i - 1], seen[i]), `state ${i} repeats state ${i - 1}`);
        // A watch started now gets the current holder first.
        const ac2 = new AbortController();
        const it = w!.watch({ signal: ac2.signal })[Symbol.asyncIterator]();
        const first = await it.next();
        assert.equal(first.value?.leader?.token, t3.token);
        ac2.abort();
        await it.return?.();
      } finally {
        ac.abort();
        assert.ok(await c.until(() => ended), 'the iteration ends when the signal aborts');
        await consumer;
      }
      assert.equal(failure, undefined);
    });

    test('close() is idempotent and releases a held term', async (c) => {
      const [a, b] = await c.locks(2);
      const term = await c.win(a!, 'node-a');
      await a!.close();
      await a!.close();
      assert.equal(term.isValid(), false);
      assert.ok(term.signal.aborted);
      const next = await c.win(b!, 'node-b');
      assert.ok(next.token > term.token);
      await Promise.all([b!.close(), b!.close()]);
    });

    if (harness.metadata) {
      test('metadata: published with the term, read by get() and watch(), never carried to the next term; > 1 KiB is a ConfigError', async (c) => {
        const [a, b, w] = await c.locks(3);
        const meta = 'addr=10.0.0.7:5432 zone=ä'.padEnd(1023 - 1, '.'); // 1023 bytes of UTF-8 (ä is 2)
        assert.equal(Buffer.byteLength(meta), 1023);
        await assert.rejects(async () => a!.acquire('node-a', { metadata: meta + 'xx' }), (e: unknown) => e instanceof ConfigError && /1024 bytes/.test(e.message));
        assert.equal((await a!.get()).leader, undefined, 'a rejected acquire writes nothing');
        const ac = new AbortController();
        const seen: LockState[] = [];
        const consumer = (async () => {
          for await (const s of w!.watch({ signal: ac.signal })) seen.push(s);
        })();
        try {
          const t1 = await a!.acquire('node-a', { metadata: meta });
          assert.ok(t1 instanceof Term);
          assert.equal((await b!.get()).leader?.metadata, meta, 'get() shows the metadata');
          assert.ok(await c.until(() => seen.at(-1)?.leader?.metadata === meta), 'watch() shows the metadata');
          await a!.renew(t1);
          assert.equal((await b!.get()).leader?.metadata, meta, 'a renew keeps it');
          assert.equal(await a!.release(t1), true);
          const t2 = await c.win(b!, 'node-b');
          const next = await a!.get();
          assert.equal(next.leader?.token, t2.token);
          assert.equal(next.leader?.metadata, undefined, 'a term acquired without metadata shows none');
          assert.ok(await c.until(() => seen.at(-1)?.leader?.token === t2.token));
          assert.equal(seen.at(-1)?.leader?.metadata, undefined);
          assert.equal(await b!.release(t2), true);
          const t3 = await a!.acquire('node-a', { metadata: 'second' });
          assert.ok(t3);
          assert.equal((await b!.get()).leader?.metadata, 'second');
        } finally {
          ac.abort();
          await consumer;
        }
      });
    }

    test('bad inputs give typed errors', async (c) => {
      const [a] = await c.locks(1);
      const config = (err: unknown): boolean => err instanceof ConfigError && err.code === 'LEADERLOCK_CONFIG';
      await assert.rejects(async () => a!.acquire(''), config);
      await assert.rejects(async () => a!.acquire(undefined as unknown as string), config);
      await assert.rejects(async () => a!.acquire('bad\nname'), config);
      const term = await c.win(a!, 'node-a');
      await assert.rejects(async () => a!.release(term, { successor: '' }), config);
      assert.ok(term.isValid(), 'a rejected release leaves the term alone');
      assert.equal((await a!.get()).leader?.token, term.token);
    });
  });
}
