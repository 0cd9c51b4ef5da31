/**
 * Shared Consul session (issue 13, item 4): a key whose release failed rode the session the other
 * locks of the client keep renewing, so it never expired and nobody took the lock again. The failed
 * release is now retried in the background until the key is gone (or no longer this term's).
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulLock } from '../../../src/backends/consul/index.js';
import { BackendUnavailableError } from '../../../src/core/errors.js';
import { ConsulWorld } from './harness.js';

const TTL = 10_000;

describe('ConsulLock: a failed release on a shared session is retried', () => {
  let w: ConsulWorld;
  beforeEach(async () => {
    w = await ConsulWorld.start();
  });
  afterEach(async () => {
    await w.close();
  });

  it('the key goes once the agent answers again, while the other lock keeps the session alive; others take the lock', async () => {
    const client = w.client();
    const one = new ConsulLock({ client, key: 'service/one/leader', ttlMs: TTL, clock: w.clock });
    const two = new ConsulLock({ client, key: 'service/two/leader', ttlMs: TTL, clock: w.clock });
    const warnings: Error[] = [];
    one.on('warning', (e) => warnings.push(e));
    const t1 = (await one.acquire('node-a'))!;
    const t2 = (await two.acquire('node-a'))!;
    assert.ok(t1 && t2);
    assert.equal(one.sessionId, two.sessionId);

    // Every delete of one's key fails (500) while the release tries, and once more in the background.
    const heal = w.fake.addFault({ kind: 'error', status: 500, match: { method: 'DELETE', path: /^\/v1\/kv\/service(\/|%2F)one(\/|%2F)leader$/ } });
    await assert.rejects(one.release(t1), BackendUnavailableError);
    await w.advance(1000);
    assert.ok(w.fake.kv('service/one/leader'), 'still there while the agent fails the deletes');
    heal();
    // 30 s of the other lock renewing the shared session every 3 s: the key must go, and soon.
    let goneAt: number | undefined;
    for (let i = 0; i < 10; i++) {
      await two.renew(t2);
      await w.advance(3000);
      if (goneAt === undefined && !w.fake.kv('service/one/leader')) goneAt = (i + 1) * 3000;
    }
    assert.ok(goneAt !== undefined && goneAt <= 6000, `key gone after ${goneAt} ms of renewals (never: it rode the shared session)`);
    assert.equal(t1.endReason, 'released');
    assert.ok(t2.isValid(), 'the other lock kept its term: the session was not destroyed');
    const other = w.lock({ key: 'service/one/leader', ttlMs: TTL });
    assert.ok(await other.acquire('node-b'), 'someone else takes the lock');
    await Promise.all([one.close(), two.close(), other.close()]);
    client.close();
  });
});
