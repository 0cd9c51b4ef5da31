import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TIMER_MS, setLongTimer, systemClock, type Clock, type Timer } from '../../src/core/clock.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';

describe('VirtualClock', () => {
  it('satisfies Clock and starts at 0 / 2026-01-01 unless told otherwise', () => {
    const c = new VirtualClock() satisfies Clock;
    assert.equal(c.now(), 0);
    assert.equal(c.date().toISOString(), '2026-01-01T00:00:00.000Z');
    const d = new VirtualClock({ startMs: 500, startDate: new Date('2030-05-01T00:00:00Z') });
    assert.equal(d.now(), 500);
    assert.equal(d.date().toISOString(), '2030-05-01T00:00:00.000Z');
  });

  it('advance fires due timers in order of due time, ties in creation order, at their due time', async () => {
    const c = new VirtualClock();
    const fired: Array<[string, number]> = [];
    c.setTimer(() => fired.push(['b', c.now()]), 20);
    c.setTimer(() => fired.push(['a', c.now()]), 10);
    c.setTimer(() => fired.push(['c', c.now()]), 20);
    c.setTimer(() => fired.push(['late', c.now()]), 31);
    await c.advance(30);
    assert.deepEqual(fired, [['a', 10], ['b', 20], ['c', 20]]);
    assert.equal(c.now(), 30);
    assert.equal(c.date().getTime(), new Date('2026-01-01T00:00:00Z').getTime() + 30);
    assert.equal(c.pendingTimers, 1);
    assert.equal(c.nextTimerAt(), 31);
  });

  it('timers set by a firing timer fire in the same advance when due', async () => {
    const c = new VirtualClock();
    const at: number[] = [];
    const tick = (): void => {
      at.push(c.now());
      if (at.length < 5) c.setTimer(tick, 10);
    };
    c.setTimer(tick, 10);
    await c.advance(100);
    assert.deepEqual(at, [10, 20, 30, 40, 50]);
    assert.equal(c.hasWaiters(), false);
  });

  it('promise continuations started by one timer run before the next timer fires', async () => {
    const c = new VirtualClock();
    const log: string[] = [];
    c.setTimer(() => {
      void (async () => {
        await Promise.resolve();
        await Promise.resolve();
        log.push('continuation of t1');
      })();
    }, 10);
    c.setTimer(() => log.push('t2'), 10);
    await c.advance(10);
    assert.deepEqual(log, ['continuation of t1', 't2']);
  });

  it('cancel is idempotent and keeps the timer from firing; bad delays clamp to now', async () => {
    const c = new VirtualClock();
    let fired = 0;
    const t = c.setTimer(() => fired++, 5);
    t.cancel();
    t.cancel();
    c.setTimer(() => fired++, -10);
    c.setTimer(() => fired++, Number.NaN);
    assert.equal(c.nextTimerAt(), 0);
    await c.advance(10);
    assert.equal(fired, 2);
  });

  it('sleep resolves after ms; an aborted signal rejects with its reason and leaves no timer', async () => {
    const c = new VirtualClock();
    let done = false;
    const p = c.sleep(100).then(() => (done = true));
    await c.advance(99);
    assert.equal(done, false);
    await c.advance(1);
    await p;
    assert.equal(done, true);

    const ac = new AbortController();
    const s = c.sleep(100, ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(s, /stop/);
    assert.equal(c.pendingTimers, 0);
    await assert.rejects(c.sleep(1, ac.signal), /stop/);
  });

  it('advance rejects negative time; runaway timer loops fail instead of hanging', async () => {
    const c = new VirtualClock({ maxTimersPerAdvance: 100 });
    await assert.rejects(c.advance(-1), RangeError);
    const spin = (): void => void c.setTimer(spin, 0);
    spin();
    await assert.rejects(c.advance(1), /more than 100 timers/);
  });

  it('runUntilIdle fires every timer, moving time, and stops when idle', async () => {
    const c = new VirtualClock();
    let n = 0;
    c.setTimer(() => n++, 1000);
    c.setTimer(() => c.setTimer(() => n++, 500), 200);
    await c.runUntilIdle();
    assert.equal(n, 2);
    assert.equal(c.now(), 1000);
    const spin = (): void => void c.setTimer(spin, 1);
    spin();
    await assert.rejects(c.runUntilIdle(50), /still busy after 50 timers/);
  });

  it('advanceTo a past time is a no-op', async () => {
    const c = new VirtualClock({ startMs: 100 });
    await c.advanceTo(50);
    assert.equal(c.now(), 100);
  });
});

describe('DriftingClock (child)', () => {
  it('runs at its rate on the shared timeline; timers fire after ms of its own time', async () => {
    const base = new VirtualClock();
    const fast = base.child({ rate: 1.1 });
    const slow = base.child({ rate: 0.9, offsetMs: 1000 });
    await base.advance(1000);
    assert.ok(Math.abs(fast.now() - 1100) < 1e-9);
    assert.ok(Math.abs(slow.now() - 1900) < 1e-9);
    let firedAt: number | undefined;
    slow.setTimer(() => (firedAt = base.now()), 90);
    await base.advance(100);
    assert.ok(firedAt !== undefined && Math.abs(firedAt - 1100) < 1e-9, '90 ms of a 0.9-rate clock take 100 ms of base time');
    assert.throws(() => base.child({ rate: 0 }), RangeError);
  });

  it('pause holds its timers (not lost), resume runs them oldest first; a cancelled one stays quiet', async () => {
    const base = new VirtualClock();
    const proc = base.child();
    const order: string[] = [];
    proc.setTimer(() => order.push('first'), 10);
    proc.setTimer(() => order.push('second'), 20);
    const cancelled = proc.setTimer(() => order.push('cancelled'), 15);
    proc.pause();
    assert.equal(proc.paused, true);
    await base.advance(100);
    assert.deepEqual(order, []);
    assert.equal(proc.now(), 100, 'a paused process’s monotonic clock still advances');
    cancelled.cancel();
    proc.resume();
    assert.deepEqual(order, ['first', 'second']);
    assert.equal(proc.paused, false);
  });

  it('date() follows its own now()', async () => {
    const base = new VirtualClock();
    const c = base.child({ offsetMs: 5000 });
    assert.equal(c.date().getTime() - base.date().getTime(), 5000);
  });
});

describe('timers longer than 2^31−1 ms (issue 13)', () => {
  const DAY = 86_400_000;

  it('a 40-day timer fires once, on time, after two firings (one chunk + the rest), on VirtualClock and a child', async () => {
    const c = new VirtualClock();
    const drifting = c.child({ rate: 2 });
    const at: number[] = [];
    c.setTimer(() => at.push(c.now()), 40 * DAY);
    drifting.setTimer(() => at.push(c.now()), 80 * DAY); // 40 days of base time at rate 2
    const cancelled = c.setTimer(() => at.push(-1), 30 * DAY);
    await c.advance(26 * DAY);
    cancelled.cancel(); // after its first chunk fired: the remainder must not fire
    for (let d = 26; d < 41; d++) await c.advance(DAY);
    assert.deepEqual(at, [40 * DAY, 40 * DAY]);
    assert.equal(c.firedTimers, 5, 'two firings per 40-day timer plus the cancelled one’s first chunk');
  });

  it('the raw timer is Node’s: a delay above the limit fires at 1 ms (so code that bypassed chunking would show)', () => {
    const raw: number[] = [];
    const stub = (_fn: () => void, ms: number): Timer => (raw.push(ms), { cancel: () => undefined });
    setLongTimer(() => 0, stub, () => undefined, 3_000_000_000);
    assert.deepEqual(raw, [MAX_TIMER_MS]);
    setLongTimer(() => 0, stub, () => undefined, Number.NaN);
    assert.deepEqual(raw, [MAX_TIMER_MS, 0]);
  });

  it('systemClock does not fire a 40-day timer early (Node alone would, after 1 ms)', async () => {
    let fired = false;
    const t = systemClock.setTimer(() => (fired = true), 40 * DAY, { unref: true });
    await new Promise((r) => setTimeout(r, 20));
    t.cancel();
    assert.equal(fired, false);
  });
});
