import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LockState } from '../../src/core/lock.js';
import { StateFeed } from '../../src/core/watch.js';

const held = (holder: string, token: bigint, extra: Partial<LockState> = {}): LockState => ({
  leader: { holder, token, ttlMs: 1000, live: true },
  ...extra,
});
const free: LockState = {};
const brief = (s: LockState): string => (s.leader ? `${s.leader.holder}#${s.leader.token}${s.leader.live ? '' : '(dead)'}` : 'free') + (s.successor ? `>${s.successor}` : '');

async function drain(feed: StateFeed, ac: AbortController): Promise<string[]> {
  const out: string[] = [];
  const it = feed[Symbol.asyncIterator]();
  ac.abort();
  for (;;) {
    const r = await it.next();
    if (r.done) return out;
    out.push(brief(r.value));
  }
}

describe('StateFeed', () => {
  it('hands a pushed state to a waiting consumer at once', async () => {
    const feed = new StateFeed(new AbortController().signal);
    const it = feed[Symbol.asyncIterator]();
    const next = it.next();
    feed.push(held('a', 1n));
    assert.equal(brief((await next).value as LockState), 'a#1');
  });

  it('never repeats a state', async () => {
    const ac = new AbortController();
    const feed = new StateFeed(ac.signal);
    const it = feed[Symbol.asyncIterator]();
    feed.push(held('a', 1n));
    assert.equal(brief((await it.next()).value as LockState), 'a#1');
    feed.push(held('a', 1n));
    feed.push(held('a', 1n));
    let got: IteratorResult<LockState> | undefined;
    void it.next().then((r) => (got = r));
    await new Promise((r) => setImmediate(r));
    assert.equal(got, undefined, 'no new state: the consumer keeps waiting');
    feed.push(held('b', 2n));
    await new Promise((r) => setImmediate(r));
    assert.equal(brief(got!.value as LockState), 'b#2');
  });

  it('coalesces states of the same term for a slow consumer, keeping the latest', async () => {
    const ac = new AbortController();
    const feed = new StateFeed(ac.signal);
    feed.push(held('a', 1n));
    feed.push(held('a', 1n, { successor: 'b' }));
    feed.push({ leader: { holder: 'a', token: 1n, ttlMs: 1000, live: false } });
    const it = feed[Symbol.asyncIterator]();
    assert.equal(brief((await it.next()).value as LockState), 'a#1(dead)');
    // Flapping back to what was delivered is no change at all.
    feed.push(held('a', 1n, { successor: 'b' }));
    feed.push({ leader: { holder: 'a', token: 1n, ttlMs: 1000, live: false } });
    assert.deepEqual(await drain(feed, ac), []);
  });

  it('keeps every change of holder or token, in order, for a slow consumer', async () => {
    const ac = new AbortController();
    const feed = new StateFeed(ac.signal);
    const it = feed[Symbol.asyncIterator]();
    feed.push(held('a', 1n));
    feed.push(free);
    feed.push(free);
    feed.push(held('b', 3n));
    feed.push(held('b', 3n, { successor: 'c' }));
    feed.push({ successor: 'c' });
    feed.push(held('c', 5n));
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push(brief((await it.next()).value as LockState));
    assert.deepEqual(seen, ['a#1', 'free', 'b#3>c', 'free>c', 'c#5']);
  });

  it('ends the iteration when the signal aborts; later pushes are ignored', async () => {
    const ac = new AbortController();
    const feed = new StateFeed(ac.signal);
    const it = feed[Symbol.asyncIterator]();
    const waiting = it.next();
    ac.abort();
    assert.equal((await waiting).done, true);
    assert.equal(feed.closed, true);
    feed.push(held('a', 1n));
    assert.equal((await it.next()).done, true);
  });

  it('a feed on an already aborted signal is empty', async () => {
    const ac = new AbortController();
    ac.abort();
    const feed = new StateFeed(ac.signal);
    feed.push(held('a', 1n));
    assert.equal((await feed[Symbol.asyncIterator]().next()).done, true);
  });

  it('end(error) rejects the waiting consumer; return() ends the feed', async () => {
    const feed = new StateFeed(new AbortController().signal);
    const it = feed[Symbol.asyncIterator]();
    const waiting = it.next();
    feed.end(new Error('watch broke'));
    await assert.rejects(waiting, /watch broke/);
    await assert.rejects(it.next(), /watch broke/);

    const other = new StateFeed(new AbortController().signal);
    const it2 = other[Symbol.asyncIterator]();
    await it2.return?.();
    assert.equal(other.closed, true);
    assert.equal((await it2.next()).done, true);
  });

  it('a consumer that never reads does not grow the queue without bound', async () => {
    const ac = new AbortController();
    const feed = new StateFeed(ac.signal);
    for (let i = 1; i <= StateFeed.maxPending + 500; i++) feed.push(held('a', BigInt(i)));
    const it = feed[Symbol.asyncIterator]();
    const seen: LockState[] = [];
    for (let i = 0; i < StateFeed.maxPending; i++) seen.push((await it.next()).value as LockState);
    assert.equal(seen.at(-1)?.leader?.token, BigInt(StateFeed.maxPending + 500), 'the newest state is kept');
    let more = false;
    void it.next().then((r) => (more = !r.done));
    await new Promise((r) => setImmediate(r));
    assert.equal(more, false, 'at most maxPending states were queued');
    ac.abort();
  });
});
