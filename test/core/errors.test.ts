import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AbortedError,
  BackendUnavailableError,
  ConfigError,
  DeadlineExceededError,
  ForbiddenError,
  LeaderLockError,
  LockLostError,
  MalformedRecordError,
  isAmbiguous,
  redact,
} from '../../src/core/errors.js';
import { Problems, checkIdentity, checkTtl } from '../../src/core/options.js';

/** instanceof without TypeScript narrowing the value (so several checks on one value stay typeable). */
const isA = (value: unknown, cls: abstract new (...args: never[]) => unknown): boolean => value instanceof cls;

describe('errors', () => {
  it('each class has its literal code and name, and instanceof follows the hierarchy', () => {
    const cases = [
      [new LeaderLockError('x'), 'LEADERLOCK_ERROR', 'LeaderLockError'],
      [new ConfigError('x'), 'LEADERLOCK_CONFIG', 'ConfigError'],
      [new LockLostError('x'), 'LEADERLOCK_LOST', 'LockLostError'],
      [new BackendUnavailableError('x'), 'LEADERLOCK_UNAVAILABLE', 'BackendUnavailableError'],
      [new DeadlineExceededError('x'), 'LEADERLOCK_DEADLINE', 'DeadlineExceededError'],
      [new ForbiddenError('x'), 'LEADERLOCK_FORBIDDEN', 'ForbiddenError'],
      [new MalformedRecordError('x'), 'LEADERLOCK_MALFORMED', 'MalformedRecordError'],
      [new AbortedError('x'), 'LEADERLOCK_ABORTED', 'AbortedError'],
    ] as const;
    for (const [err, code, name] of cases) {
      assert.equal(err.code, code);
      assert.equal(err.name, name);
      assert.ok(err instanceof LeaderLockError, `${name} is a LeaderLockError`);
      assert.ok(err instanceof Error);
      assert.match(String(err.stack), new RegExp(name));
    }
    const deadline = new DeadlineExceededError('slow');
    assert.ok(isA(deadline, BackendUnavailableError), 'a deadline is a kind of unavailability');
    assert.ok(!isA(new BackendUnavailableError('x'), DeadlineExceededError));
    assert.ok(!isA(deadline, ForbiddenError));
    assert.ok(!isA(new LockLostError('x'), ConfigError));
    assert.ok(!isA({}, LeaderLockError));
    assert.ok(!isA(new Error('x'), LockLostError));
  });

  it('carries backend, status, reason and cause', () => {
    const cause = new Error('ECONNRESET');
    const err = new ForbiddenError('denied', { backend: 'kubernetes', status: 403, reason: 'Forbidden', cause });
    assert.equal(err.backend, 'kubernetes');
    assert.equal(err.status, 403);
    assert.equal(err.reason, 'Forbidden');
    // A sanitised copy (issue 13: a cause may carry a request with credentials): same class and message.
    assert.ok(err.cause instanceof Error);
    assert.equal((err.cause as Error).message, cause.message);
    assert.equal(new LockLostError('x').cause, undefined);
  });

  it('instanceof works across two copies of the module (two package versions in one tree)', async () => {
    const url = new URL('../../src/core/errors.ts?second-copy', import.meta.url).href;
    const copy = (await import(url)) as typeof import('../../src/core/errors.js');
    assert.notEqual(copy.DeadlineExceededError, DeadlineExceededError, 'really a second copy');
    const foreign = new copy.DeadlineExceededError('from the other copy');
    assert.ok(isA(foreign, DeadlineExceededError));
    assert.ok(isA(foreign, BackendUnavailableError));
    assert.ok(isA(foreign, LeaderLockError));
    assert.ok(!isA(foreign, ForbiddenError));
    assert.ok(isA(new LockLostError('x'), copy.LockLostError));
    assert.ok(!isA(new copy.BackendUnavailableError('x'), DeadlineExceededError));
  });

  it('redacts credentials from messages', () => {
    const leaks = [
      ['request failed: Authorization: Bearer eyJhbGciOi.secret.sig', 'eyJhbGciOi'],
      ['GET /v1/kv/x?token=s3cr3t&index=5', 's3cr3t'],
      ['X-Consul-Token: 0a1b2c3d-secret', '0a1b2c3d'],
      ['connect https://admin:hunter2@127.0.0.1:2379 refused', 'hunter2'],
      ['sent bearer abc123== upstream', 'abc123'],
    ] as const;
    for (const [text, secret] of leaks) {
      for (const err of [new LeaderLockError(text), new BackendUnavailableError(text), new ConfigError([text, 'other'])]) {
        assert.ok(!err.message.includes(secret), `${err.name} message leaks ${secret}: ${err.message}`);
      }
      assert.ok(redact(text).includes('[redacted]'));
    }
    assert.equal(redact('term 42 of "node-a" ended'), 'term 42 of "node-a" ended', 'ordinary text is untouched');
  });

  it('ConfigError lists every problem at once', () => {
    const p = new Problems();
    checkTtl(p, -5);
    checkIdentity(p, '');
    p.check(false, 'renewDeadlineMs must be less than ttlMs × (1 − drift)');
    assert.equal(p.count, 3);
    let caught: unknown;
    try {
      p.throwIfAny('etcd');
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError);
    assert.equal(caught.code, 'LEADERLOCK_CONFIG');
    assert.equal(caught.backend, 'etcd');
    assert.equal(caught.problems.length, 3);
    for (const problem of caught.problems) assert.ok(caught.message.includes(problem));
    assert.ok(Object.isFrozen(caught.problems));
    assert.doesNotThrow(() => new Problems().throwIfAny());
    assert.equal(new ConfigError('one thing').message, 'invalid options: one thing');
  });

  it('isAmbiguous: unavailability and deadlines may have been applied, the rest not', () => {
    assert.equal(isAmbiguous(new BackendUnavailableError('x')), true);
    assert.equal(isAmbiguous(new DeadlineExceededError('x')), true);
    assert.equal(isAmbiguous(new LockLostError('x')), false);
    assert.equal(isAmbiguous(new ForbiddenError('x')), false);
    assert.equal(isAmbiguous(new Error('x')), false);
  });
});

describe('values from a store in messages (issue 13)', () => {
  it('quoteValue / shortText / jsonValue cut at 256 characters and append the size in bytes', async () => {
    const { quoteValue, shortText, jsonValue } = await import('../../src/core/errors.js');
    assert.equal(quoteValue('node-a'), '"node-a"');
    assert.equal(quoteValue('x'.repeat(256)), JSON.stringify('x'.repeat(256)));
    assert.equal(quoteValue('é'.repeat(300)), `${JSON.stringify('é'.repeat(256))}…(600 bytes)`);
    assert.equal(shortText('y'.repeat(1000)), `${'y'.repeat(256)}…(1000 bytes)`);
    assert.equal(jsonValue(30), '30');
    assert.equal(jsonValue({ a: 'z'.repeat(1000) }).length, 256 + '…(1008 bytes)'.length);
  });

  it('no error message is longer than 4096 characters, whatever was quoted into it', () => {
    const err = new LockLostError(`held by ${'q'.repeat(1_000_000)}`);
    assert.ok(err.message.length < 4200, String(err.message.length));
    assert.match(err.message, /…\(message cut, 1000008 characters in all\)$/);
  });
});
