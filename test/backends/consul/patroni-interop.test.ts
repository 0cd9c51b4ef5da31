import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, LeaderLockError } from '../../../src/core/errors.js';
import { ConsulClient } from '../../../src/backends/consul/index.js';
import { ConsulWorld } from './harness.js';

/**
 * Issue 16 (items 10, 11, 12): ConsulLock on a Patroni cluster's keys, on FakeConsulServer, with
 * Patroni's writes made as Patroni 4.1's consul DCS makes them (`service/<scope>/failover` JSON,
 * `service/<scope>/members/<name>` on its session).
 */
const TTL = 10_000;

describe('issue 16: ConsulLock next to Patroni 4 on Consul', () => {
  let w: ConsulWorld;
  let patroni: ConsulClient;
  beforeEach(async () => {
    w = await ConsulWorld.start();
    patroni = new ConsulClient({ address: w.fake.address, requestTimeoutMs: 2000, env: {} });
  });
  afterEach(async () => {
    patroni.close();
    await w.close();
  });

  it('(10) `patronictl switchover --candidate pg-2`: only pg-2 takes the free key; the request is consumed, and ignored once ttl old', async () => {
    await patroni.kvPut('service/pg/failover', JSON.stringify({ leader: 'pg-0', member: 'pg-2', scheduled_at: '2026-01-01T00:00:00+00:00' }));
    const other = w.lock({ key: 'service/pg/leader' });
    assert.equal(await other.acquire('pg-1'), undefined, 'pg-1 holds back');
    const term = await w.lock({ key: 'service/pg/leader' }).acquire('pg-2');
    assert.ok(term);
    assert.equal((await patroni.kvGet('service/pg/failover')).entries.length, 0, 'consumed');
    await patroni.kvPut('service/pg2/failover', 'pg-0:pg-7');
    const l2 = w.lock({ key: 'service/pg2/leader' });
    assert.equal(await l2.acquire('pg-1'), undefined);
    await w.advance(TTL);
    assert.ok(await l2.acquire('pg-1'), 'a request ttl old no longer holds candidates back');
  });

  it('(12) a Patroni member registered under our identity: ConfigError, key untouched', async () => {
    await patroni.kvPut('service/pg/members/pg-5', '{"role":"replica"}');
    await assert.rejects(w.lock({ key: 'service/pg/leader' }).acquire('pg-5'), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message));
    assert.equal((await patroni.kvGet('service/pg/leader')).entries.length, 0);
    assert.ok(await w.lock({ key: 'service/pg/leader' }).acquire('sidecar-5'));
  });

  it('(11) Consul\'s 500 "Invalid Session TTL" is a ConfigError, not an invalid session', async () => {
    w.fake.addFault({ kind: 'error', status: 500, body: "Invalid Session TTL '5s', must be between [10s=24h0m0s]", match: { path: '/v1/session/create' }, times: 1 });
    const err = await w.lock({ key: 'service/pg/leader' }).acquire('node-a').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError, `got ${String(err)}`);
    assert.ok(!(err instanceof LeaderLockError && err.reason === 'invalid-session'));
    assert.match((err as Error).message, /Invalid Session TTL/);
  });
});
