import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLock, MemoryStore, type MemoryLockOptions } from '../../../src/backends/memory/index.js';
import { DeadlineExceededError, LockLostError, ConfigError, AbortedError } from '../../../src/core/errors.js';
import type { LockState } from '../../../src/core/lock.js';
import { lockConformance } from '../../../src/testing/conformance.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';
import { systemClock } from '../../../src/core/clock.js';

const TTL = 1000;

// One virtual timeline; a fresh store per test (cleanup), every lock a separate client on it.
let clock = new VirtualClock();
let store = new MemoryStore({ clock });
lockConformance(
  {
    name: 'memory',
    metadata: true,
    ttlMs: TTL,
    expiryMs: TTL,
    newLock: async () => new MemoryLock(store, { clock, ttlMs: TTL }),
    advance: (ms) => clock.advance(ms),
    cleanup: async () => {
      assert.equal(store.watchers(), 0, 'no watch subscription left behind');
      clock = new VirtualClock();
      store = new MemoryStore({ clock });
    },
  },
  { describe, it },
);

function setup(options: MemoryLockOptions = {}) {
  const clock = new VirtualClock();
  const store = new MemoryStore({ clock });
  const lock = (o: MemoryLockOptions = {}) => new MemoryLock(store, { clock, ttlMs: TTL, ...options, ...o });
  return { clock, store, lock };
}

/** Settles `p` while the clock moves: returns its outcome and the virtual time it took. */
async function timed<T>(clock: VirtualClock, p: Promise<T>, stepMs = 1, maxMs = 10 * TTL): Promise<{ value?: T; error?: unknown; ms: number }> {
  const start = clock.now();
  let out: { value?: T; error?: unknown } | undefined;
  p.then(
    (value) => (out = { value }),
    (error: unknown) => (out = { error }),
  );
  await clock.flush();
  while (!out && clock.now() - start < maxMs) {
    await clock.advance(stepMs);
  }
  assert.ok(out, 'settled within the bound');
  return { ...out, ms: clock.now() - start };
}

describe('MemoryStore', () => {
  it('expires a record exactly at ttl on the store clock', async () => {
    const { clock, store, lock } = setup();
    await lock().acquire('a');
    await clock.advance(TTL - 1);
    assert.equal(store.peek().leader?.holder, 'a');
    await clock.advance(1);
    assert.equal(store.peek().leader, undefined);
  });

  it('a renew moves the store-side expiry to ttl after the renew arrives', async () => {
    const { clock, store, lock } = setup();
    const l = lock();
    const t = (await l.acquire('a'))!;
    await clock.advance(600);
    await l.renew(t);
    await clock.advance(TTL - 1);
    assert.equal(store.peek().leader?.holder, 'a');
    await clock.advance(1);
    assert.equal(store.peek().leader, undefined);
  });

  it('tokens are store revisions: strictly increasing across keys and terms', async () => {
    const { clock, store, lock } = setup();
    const x = lock({ key: 'x' });
    const y = lock({ key: 'y' });
    const tokens: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const tx = (await x.acquire('a'))!;
      const ty = (await y.acquire('b'))!;
      tokens.push(tx.token, ty.token);
      assert.equal(ty.token, store.revision);
      await x.release(tx);
      await clock.advance(TTL); // y expires
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i]! > tokens[i - 1]!);
  });

  it('notifies subscribers after every change, in order', async () => {
    const { clock, store, lock } = setup();
    const states: LockState[] = [];
    const off = store.subscribe('leader', (s) => states.push(s));
    const l = lock();
    const t = (await l.acquire('a'))!;
    await l.release(t, { successor: 'b' });
    await clock.advance(TTL); // nomination lapses
    off();
    assert.deepEqual(
      states.map((s) => [s.leader?.holder, s.successor]),
      [['a', undefined], [undefined, 'b'], [undefined, undefined]],
    );
  });

  it('forceDelete acts like an operator deleting the key', async () => {
    const { store, lock } = setup();
    const l = lock();
    const t = (await l.acquire('a'))!;
    assert.equal(store.forceDelete(), true);
    await assert.rejects(l.renew(t), (e: unknown) => e instanceof LockLostError && e.reason === 'expired');
    assert.equal(t.endReason, 'expired');
  });
});

describe('MemoryLock', () => {
  it('validUntil counts from the send time of the confirmed request', async () => {
    const { clock, lock } = setup({ drift: 0.01 });
    const l = lock();
    l.faults.set({ latencyMs: 10 });
    const { value: t, ms } = await timed(clock, l.acquire('a'));
    assert.equal(ms, 20, 'a round trip is twice the one-way latency');
    assert.equal(t!.validUntil, 0 + TTL * 0.99);
    await clock.advance(100);
    const sent = clock.now();
    await timed(clock, l.renew(t!));
    assert.equal(t!.validUntil, sent + TTL * 0.99);
  });

  it('latency delays every request and watch delivery exactly', async () => {
    const { clock, store, lock } = setup();
    const l = lock();
    l.faults.set({ latencyMs: 25 });
    const { ms } = await timed(clock, l.get());
    assert.equal(ms, 50);
    const ac = new AbortController();
    const it = l.watch({ signal: ac.signal })[Symbol.asyncIterator]();
    const first = await timed(clock, it.next());
    assert.equal(first.ms, 25);
    const other = lock();
    await other.acquire('b');
    const next = await timed(clock, it.next());
    assert.equal(next.ms, 25);
    assert.equal((next.value as IteratorResult<LockState>).value?.leader?.holder, 'b');
    ac.abort();
    assert.equal((await it.next()).done, true);
    assert.equal(store.watchers(), 0);
    await other.close();
  });

  it('a dropped request fails with DeadlineExceededError at exactly requestTimeoutMs and changes nothing', async () => {
    const { clock, store, lock } = setup();
    const l = lock({ requestTimeoutMs: 150 });
    l.faults.dropRequests();
    const rev = store.revision;
    const { error, ms } = await timed(clock, l.acquire('a'));
    assert.ok(error instanceof DeadlineExceededError);
    assert.equal(error.backend, 'memory');
    assert.equal(error.code, 'LEADERLOCK_DEADLINE');
    assert.equal(ms, 150);
    assert.equal(store.revision, rev);
    assert.equal(store.peek().leader, undefined);
    assert.equal(l.faults.dropped, 1);
    assert.ok(await l.acquire('a'), 'the next request goes through');
  });

  it('the default request timeout is ttl / 5', async () => {
    const { clock, lock } = setup();
    const l = lock();
    l.faults.dropRequests();
    const { error, ms } = await timed(clock, l.get());
    assert.ok(error instanceof DeadlineExceededError);
    assert.equal(ms, TTL / 5);
  });

  it('a dropped acquire response is applied; the re-read recovers the term (request id)', async () => {
    const { clock, store, lock } = setup();
    const l = lock({ requestTimeoutMs: 100 });
    l.faults.dropResponses();
    const { value: term, ms } = await timed(clock, l.acquire('a'));
    assert.equal(ms, 100, 'the recovery re-read follows the timeout');
    assert.ok(term, 'the applied acquire is recognised as ours');
    assert.equal(term.token, store.peek().leader?.token);
    assert.equal(term.validUntil, TTL * 0.99, 'validUntil counts from the acquire’s send time');
    assert.equal(l.faults.requests, 2);
    assert.equal(await l.renew(term), term);
  });

  it('a dropped acquire response is not mistaken for ours when another incarnation with our name holds the key', async () => {
    const { clock, lock } = setup();
    const other = lock();
    await other.acquire('a');
    const l = lock({ requestTimeoutMs: 100 });
    l.faults.dropResponses();
    const { value, error } = await timed(clock, l.acquire('a'));
    assert.equal(error, undefined);
    assert.equal(value, undefined);
  });

  it('a dropped renew response leaves the store refreshed and the term unmoved', async () => {
    const { clock, store, lock } = setup();
    const l = lock({ requestTimeoutMs: 100 });
    const t = (await l.acquire('a'))!;
    const before = t.validUntil;
    await clock.advance(500);
    l.faults.dropResponses();
    const { error } = await timed(clock, l.renew(t));
    assert.ok(error instanceof DeadlineExceededError);
    assert.equal(t.validUntil, before, 'an ambiguous renew never moves validUntil');
    assert.ok(t.isValid());
    assert.equal(store.record()!.expiresAt, 500 + TTL, 'but the store did refresh');
  });

  it('a partition loses requests until healed (after ms on the client clock)', async () => {
    const { clock, store, lock } = setup();
    const l = lock({ requestTimeoutMs: 100 });
    const watchLock = lock();
    const t = (await l.acquire('a'))!;
    watchLock.faults.partition(400);
    const ac = new AbortController();
    const seen: LockState[] = [];
    const consumer = (async () => {
      for await (const s of watchLock.watch({ signal: ac.signal })) seen.push(s);
    })();
    l.faults.partition();
    assert.ok((await timed(clock, l.renew(t))).error instanceof DeadlineExceededError);
    store.forceDelete();
    await clock.advance(100);
    assert.equal(seen.length, 0, 'nothing reaches a partitioned watcher');
    await clock.advance(200); // t = 400: the watcher's partition heals by itself
    assert.deepEqual(
      seen.map((s) => s.leader?.holder),
      [undefined],
      'after the heal the watch delivers the latest state (the key is free)',
    );
    l.faults.heal();
    assert.equal(l.faults.partitioned, false);
    await assert.rejects(l.renew(t), LockLostError);
    ac.abort();
    await consumer;
    assert.equal(store.watchers(), 0);
  });

  it('a paused DriftingClock holds responses like a stopped process', async () => {
    const base = new VirtualClock();
    const store = new MemoryStore({ clock: base });
    const proc = base.child();
    const l = new MemoryLock(store, { clock: proc, ttlMs: TTL });
    const t = (await l.acquire('a'))!;
    let outcome = 'pending' as unknown;
    const renewed = l.renew(t).then(
      () => (outcome = 'renewed'),
      (err: unknown) => (outcome = err),
    );
    proc.pause(); // SIGSTOP right after sending: the request is out, the process stops
    await base.advance(2 * TTL);
    assert.equal(outcome, 'pending', 'a paused process sees no response');
    assert.equal(t.signal.aborted, false, 'nor its own expiry timer');
    assert.equal(t.isValid(), false, 'but isValid() recomputes from the clock');
    assert.equal(store.record(), undefined, 'the renew arrived at t=0, so the store expired the key at ttl');
    proc.resume();
    await renewed;
    assert.ok((outcome as unknown) instanceof LockLostError, 'the late response cannot revive the term');
    assert.equal(t.ended, true);
  });

  it('watch delivers every change in order and cleans up after abort', async () => {
    const { clock, store, lock } = setup();
    const w = lock();
    w.faults.set({ latencyMs: 5, jitterMs: 20 });
    const ac = new AbortController();
    const seen: LockState[] = [];
    const consumer = (async () => {
      for await (const s of w.watch({ signal: ac.signal })) seen.push(s);
    })();
    const a = lock();
    const tokens: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      const t = (await a.acquire(`n${i}`))!;
      tokens.push(t.token);
      await a.release(t);
      await clock.advance(3);
    }
    await clock.advance(100);
    const got = seen.flatMap((s) => (s.leader ? [s.leader.token] : []));
    assert.deepEqual(got, tokens);
    ac.abort();
    await consumer;
    assert.equal(store.watchers(), 0);
    assert.equal(clock.pendingTimers, 0, 'no timer left behind');
  });

  it('jitter with a seeded random is reproducible', async () => {
    const run = async () => {
      let seed = 42;
      const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      const { clock, lock } = setup({ random });
      const l = lock();
      l.faults.set({ latencyMs: 1, jitterMs: 50 });
      const out: number[] = [];
      for (let i = 0; i < 5; i++) out.push((await timed(clock, l.get(), 0.5)).ms);
      return out;
    };
    assert.deepEqual(await run(), await run());
  });

  it('rejects bad options with one ConfigError listing every problem', () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    assert.throws(
      () => new MemoryLock(store, { ttlMs: -1, drift: 2, key: '', requestTimeoutMs: 0 }),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 4,
    );
    const l = new MemoryLock(store);
    assert.throws(() => l.faults.set({ latencyMs: -5 }), ConfigError);
    assert.throws(() => l.faults.dropRequests(1.5), ConfigError);
    assert.throws(() => l.faults.partition(Number.NaN), ConfigError);
  });

  it('issue 12: a lock inherits the store clock; a lock on another timeline is a ConfigError', async () => {
    const virtual = new VirtualClock();
    const store = new MemoryStore({ clock: virtual });
    assert.equal(new MemoryLock(store).clock, virtual, 'no clock given: the store clock');
    const child = virtual.child({ rate: 1.01 });
    assert.equal(new MemoryLock(store, { clock: child }).clock, child, 'a drifting child of the store clock is fine');
    assert.throws(() => new MemoryLock(store, { clock: systemClock }), (e: unknown) => e instanceof ConfigError && /another timeline than the store's clock/.test(e.message));
    assert.throws(() => new MemoryLock(store, { clock: new VirtualClock().child() }), ConfigError, 'a child of another VirtualClock');
    const realStore = new MemoryStore();
    assert.throws(() => new MemoryLock(realStore, { clock: virtual }), ConfigError, 'a virtual lock on a real-time store');
    assert.equal(new MemoryLock(realStore, { clock: systemClock }).clock, systemClock);
  });

  it('a nomination lives exactly ttl on the store clock; the nominee acquires at once', async () => {
    const { clock, store, lock } = setup();
    const [a, b, c] = [lock(), lock(), lock()];
    const t = (await a.acquire('a'))!;
    await clock.advance(100);
    assert.equal(await a.release(t, { successor: 'b' }), true);
    assert.equal(t.endReason, 'handover');
    await clock.advance(TTL - 1);
    assert.equal(await c.acquire('c'), undefined, 'held back until the nomination lapses');
    assert.equal(store.peek().successor, 'b');
    await clock.advance(1);
    assert.equal(store.peek().successor, undefined);
    assert.ok(await c.acquire('c'));
    assert.equal(await b.acquire('b'), undefined, 'a lapsed nomination gives no priority');
  });

  it('close() releases a term that was ended only locally (e.g. by the elector’s deadline)', async () => {
    const { store, lock } = setup();
    const l = lock();
    const t = (await l.acquire('a'))!;
    t.end('deadline');
    assert.equal(store.peek().leader?.token, t.token, 'the record is still in the store');
    await l.close();
    assert.equal(store.peek().leader, undefined);
  });

  it('a release whose response is lost is applied; retrying reports false and the key stays free', async () => {
    const { clock, store, lock } = setup();
    const l = lock({ requestTimeoutMs: 100 });
    const t = (await l.acquire('a'))!;
    l.faults.dropResponses();
    const { error } = await timed(clock, l.release(t));
    assert.ok(error instanceof DeadlineExceededError);
    assert.equal(store.peek().leader, undefined, 'applied');
    assert.equal(await l.release(t), false);
    assert.equal(t.ended, true);
  });

  it('on the real clock, nothing keeps the process alive after close', async () => {
    const store = new MemoryStore();
    const l = new MemoryLock(store, { ttlMs: 60_000 });
    const t = (await l.acquire('a'))!;
    await l.renew(t);
    assert.ok(t.isValid());
    await l.close();
    assert.equal(t.endReason, 'released');
    // The store's TTL timers are unref'd; node:test would report a hang otherwise.
  });

  it('a watch cleans up when the consumer breaks out, and when the lock closes', async () => {
    const { store, lock } = setup();
    const l = lock();
    for await (const s of l.watch({ signal: new AbortController().signal })) {
      assert.equal(s.leader, undefined);
      break;
    }
    assert.equal(store.watchers(), 0, 'breaking out of for-await unsubscribes');
    const ac = new AbortController();
    const it = l.watch({ signal: ac.signal })[Symbol.asyncIterator]();
    await it.next();
    assert.equal(store.watchers(), 1);
    const waiting = it.next();
    await l.close();
    assert.equal((await waiting).done, true, 'close() ends open watches');
    assert.equal(store.watchers(), 0);
  });

  it('after close, calls fail with AbortedError', async () => {
    const { lock } = setup();
    const l = lock();
    await l.close();
    await assert.rejects(l.acquire('a'), AbortedError);
    await assert.rejects(l.get(), AbortedError);
  });
});
