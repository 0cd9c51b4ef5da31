import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulLock } from '../../src/backends/consul/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { FakeConsulServer } from '../../src/testing/index.js';
import { patroniBanner, patroniDcs, type PatroniCluster as Cluster } from './harness/patroni-dcs.js';

/**
 * Issue 16 (items 10, 12) with Patroni 4.1.x's consul DCS (test/peers/patroni/dcs.py) next to
 * ConsulLock, on FakeConsulServer (a real Consul agent is issue 14's tier). Patroni's session TTL is
 * ttl/2 and must be ≥ 10 s (the fake answers an out-of-range TTL with 400 where Consul answers 500,
 * issue 14); ttl 60 gives 30 s, so a Patroni leader outlives the few one-shot Python runs (2–5 s each
 * on a loaded machine) that act on it. Needs the build script's Patroni venv (scripts/real/build.sh patroni).
 */

let fake: FakeConsulServer;
const locks: ConsulLock[] = [];
let n = 0;

async function patroni<T>(scope: string, name: string, cmd: string, ...args: string[]): Promise<T> {
  return patroniDcs<T>({ dcs: 'consul', hosts: `127.0.0.1:${fake.port}`, scope, name, ttl: 60 }, cmd, args);
}

function lock(scope: string): ConsulLock {
  const l = new ConsulLock({ address: fake.address, key: `service/${scope}/leader`, ttlMs: 10_000, requestTimeoutMs: 2000, env: {} });
  l.on('warning', () => undefined);
  locks.push(l);
  return l;
}

before(async () => {
  console.log(`# peers: ${patroniBanner()} (consul DCS); server: FakeConsulServer`);
  fake = await FakeConsulServer.start();
});
after(async () => {
  await Promise.allSettled(locks.map((l) => l.close()));
  await fake?.close();
});

describe('issue 16: leaderlock next to Patroni 4 on Consul (FakeConsulServer)', () => {
  it('(10) `patronictl switchover --candidate pg-2`: only pg-2 takes the key Patroni released, and the request is consumed', async () => {
    const scope = `sw${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok, 'Patroni pg-0 leads');
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'switchover', 'pg-0', 'pg-2')).ok);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'delete_leader')).ok);
    assert.equal(await lock(scope).acquire('pg-1'), undefined, 'pg-1 holds back');
    assert.ok(await lock(scope).acquire('pg-2'));
    const c = await patroni<Cluster>(scope, 'pg-9', 'cluster');
    assert.equal(c.leader, 'pg-2', 'Patroni reads our holder');
    assert.equal(c.failover, null, 'consumed');
  });

  it('(10) our handover is a request Patroni parses; Patroni takes the key we released', async () => {
    const scope = `ho${++n}`;
    const l = lock(scope);
    const term = (await l.acquire('node-a'))!;
    assert.ok(await l.release(term, { successor: 'pg-1' }));
    const c = await patroni<Cluster>(scope, 'pg-9', 'cluster');
    assert.deepEqual(c.failover, { leader: 'node-a', member: 'pg-1', scheduled_at: null });
    assert.equal(c.leader, null);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-1', 'acquire')).ok);
  });

  it('(12) an identity that is a Patroni member\'s name is refused with a clear error', async () => {
    const scope = `nm${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-5', 'touch_member')).ok);
    await assert.rejects(lock(scope).acquire('pg-5'), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message));
    assert.ok(await lock(scope).acquire('sidecar-pg-5'));
  });
});
