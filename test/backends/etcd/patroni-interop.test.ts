import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { ConfigError } from '../../../src/core/errors.js';
import { etcdForFile } from '../../helpers/etcd-cluster.js';

/**
 * Issue 16 (items 10, 12) on real etcd, with Patroni's writes made by hand exactly as Patroni 4.1's
 * etcd3 DCS makes them (`manual_failover` → JSON at `<scope>/failover`; `touch_member` →
 * `<scope>/members/<name>`). The same scenarios with Patroni's own code: test/real/interop-patroni-etcd.test.ts.
 */
const TTL = 2000;
const fx = etcdForFile();
const locks: EtcdLock[] = [];
fx.cleanups.push(() => Promise.allSettled(locks.map((l) => l.close())));
let n = 0;
const lock = (scope: string): EtcdLock => {
  const l = new EtcdLock({ endpoints: fx.cluster.endpoints, scope, ttlMs: TTL, requestTimeoutMs: 1500 });
  l.on('warning', () => undefined);
  locks.push(l);
  return l;
};


describe('issue 16: EtcdLock on a Patroni cluster\'s keys', () => {
  it('(10) Patroni\'s failover request names the only candidate that may take the free key; it is consumed, and ignored once ttl old', async () => {
    const scope = `pf${++n}`;
    await fx.raw.put(`/service/${scope}/failover`).value(JSON.stringify({ leader: 'pg-0', member: 'pg-2', scheduled_at: '2026-01-01T00:00:00+00:00' }));
    const other = lock(scope);
    assert.equal(await other.acquire('pg-1'), undefined);
    const term = await lock(scope).acquire('pg-2');
    assert.ok(term);
    assert.equal(await fx.raw.get(`/service/${scope}/failover`).string(), null, 'consumed in the acquiring txn');
    // Legacy `leader:member` form, nobody acts on it: after ttl anyone may take the key.
    const scope2 = `pf${++n}`;
    await fx.raw.put(`/service/${scope2}/failover`).value('pg-0:pg-7');
    const l2 = lock(scope2);
    assert.equal(await l2.acquire('pg-1'), undefined);
    await new Promise((r) => setTimeout(r, TTL + 50));
    assert.ok(await l2.acquire('pg-1'), 'a request ttl old no longer holds candidates back');
    // Leader-only request (`patronictl failover` without candidate): only the named leader holds back.
    const scope3 = `pf${++n}`;
    await fx.raw.put(`/service/${scope3}/failover`).value(JSON.stringify({ leader: 'pg-0' }));
    assert.equal(await lock(scope3).acquire('pg-0'), undefined);
    assert.ok(await lock(scope3).acquire('pg-1'));
  });

  it('(12) a Patroni member registered under our identity: ConfigError naming the clash, key untouched', async () => {
    const scope = `pm${++n}`;
    await fx.raw.put(`/service/${scope}/members/pg-5`).value('{"role":"replica","state":"running"}');
    await assert.rejects(lock(scope).acquire('pg-5'), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message) && /members\/pg-5/.test(e.message));
    assert.equal(await fx.raw.get(`/service/${scope}/leader`).string(), null);
  });
});
