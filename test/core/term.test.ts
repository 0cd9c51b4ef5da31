import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LockLostError } from '../../src/core/errors.js';
import { Term } from '../../src/core/lock.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';

function term(clock: VirtualClock | ReturnType<VirtualClock['child']>, validUntil = 1000): Term {
  return new Term({ holder: 'node-a', token: 7n, validUntil, clock, backend: 'memory' });
}

describe('Term', () => {
  it('is valid until validUntil and ends itself there with reason expired', async () => {
    const clock = new VirtualClock();
    const t = term(clock);
    assert.equal(t.isValid(), true);
    assert.equal(t.remainingMs(), 1000);
    await clock.advance(999);
    assert.equal(t.isValid(), true);
    assert.equal(t.remainingMs(), 1);
    await clock.advance(1);
    assert.equal(t.isValid(), false);
    assert.equal(t.remainingMs(), 0);
    assert.equal(t.ended, true);
    assert.equal(t.endReason, 'expired');
    assert.equal(clock.pendingTimers, 0);
  });

  it('isValid recomputes from the clock even before the abort fires (a paused process)', async () => {
    const base = new VirtualClock();
    const proc = base.child();
    const t = term(proc);
    proc.pause();
    await base.advance(5000);
    assert.equal(t.signal.aborted, false, 'the expiry timer has not run yet');
    assert.equal(t.isValid(), false, 'but the term is already not valid');
    proc.resume();
    assert.equal(t.signal.aborted, true);
    assert.equal(t.endReason, 'expired');
  });

  it('extend moves validUntil forward only, and re-arms the end', async () => {
    const clock = new VirtualClock();
    const t = term(clock);
    t.extend(500);
    assert.equal(t.validUntil, 1000, 'a smaller value (a late reply to an older renew) is ignored');
    t.extend(1000);
    assert.equal(t.validUntil, 1000);
    t.extend(2500);
    assert.equal(t.validUntil, 2500);
    await clock.advance(2000);
    assert.equal(t.isValid(), true, 'the old deadline no longer ends it');
    await clock.advance(500);
    assert.equal(t.endReason, 'expired');
    t.extend(9000);
    assert.equal(t.validUntil, 2500, 'no effect once ended');
    assert.equal(t.isValid(), false);
  });

  it('end is idempotent, the first reason wins, and signal.reason is a LockLostError', async () => {
    const clock = new VirtualClock();
    const t = term(clock);
    let aborts = 0;
    t.signal.addEventListener('abort', () => aborts++);
    t.end('taken');
    t.end('released');
    t.end('stopped');
    assert.equal(aborts, 1);
    assert.equal(t.endReason, 'taken');
    assert.equal(t.isValid(), false);
    const reason: unknown = t.signal.reason;
    assert.ok(reason instanceof LockLostError);
    assert.equal(reason.code, 'LEADERLOCK_LOST');
    assert.equal(reason.reason, 'taken');
    assert.equal(reason.backend, 'memory');
    assert.match(reason.message, /node-a/);
    assert.equal(clock.pendingTimers, 0, 'ending cancels the expiry timer');
    await clock.advance(5000);
    assert.equal(t.endReason, 'taken');
  });

  it('serialises to JSON with the token as a decimal string', () => {
    const t = term(new VirtualClock());
    assert.deepEqual(JSON.parse(JSON.stringify(t)), { holder: 'node-a', token: '7', validUntil: 1000 });
    t.end('released');
    assert.equal(JSON.parse(JSON.stringify(t)).ended, 'released');
  });

  it('a term created already past its validUntil is invalid and ends at once', async () => {
    const clock = new VirtualClock({ startMs: 2000 });
    const t = term(clock, 1000);
    assert.equal(t.isValid(), false);
    await clock.advance(0);
    assert.equal(t.endReason, 'expired');
  });
});
