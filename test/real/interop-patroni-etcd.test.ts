import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { EtcdLock } from '../../src/backends/etcd/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { LeaderElector } from '../../src/elector/index.js';
import { judge } from '../../src/http/index.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { patroniBanner, patroniDcs, type PatroniCluster as Cluster } from './harness/patroni-dcs.js';

/**
 * Issue 16 (items 10, 12 and take-over timing) with the real peer: Patroni 4.1.x's etcd3 DCS class,
 * driven from test/peers/patroni/dcs.py as its HA loop drives it, next to EtcdLock on Debian's etcd
 * (3.4; Patroni 4's etcd3 DCS works with it). Needs the build script's Patroni venv (scripts/real/build.sh patroni; PyPI
 * access on first run): a missing venv fails the suite with the build script's message.
 * Part of `npm run test:real` (test/real/), not of `npm test`.
 */
const run = promisify(execFile);

const PATRONI_TTL = 10; // Patroni's etcd3 DCS: its lease TTL is ttl (seconds); the crash take-over test
// Every other test: each command is one Python run (2–5 s on a loaded machine) and the lease of a run
// that exited is never refreshed, so a longer ttl keeps a Patroni leader alive across a few commands.
const SLOW_TTL = 60;
let cluster: EtcdCluster;
let raw: Etcd3;
const locks: EtcdLock[] = [];
let n = 0;

async function patroni<T>(scope: string, name: string, cmd: string, ...args: string[]): Promise<T> {
  const ttl = scope.startsWith('to') ? PATRONI_TTL : SLOW_TTL;
  return patroniDcs<T>({ dcs: 'etcd3', hosts: cluster.endpoints.map((e) => new URL(e).host).join(','), scope, name, ttl }, cmd, args);
}

function lock(scope: string, ttlMs = 3000): EtcdLock {
  const l = new EtcdLock({ endpoints: cluster.endpoints, scope, ttlMs, requestTimeoutMs: 2000 });
  l.on('warning', () => undefined);
  locks.push(l);
  return l;
}

before(async () => {
  console.log(`# peers: ${patroniBanner()} (etcd3 DCS)`);
  cluster = await startEtcd();
  raw = new Etcd3({ hosts: cluster.endpoints });
  const { stdout } = await run('etcd', ['--version']);
  console.log(`# servers: ${stdout.split('\n')[0]}`);
});
after(async () => {
  await Promise.allSettled(locks.map((l) => l.close()));
  raw?.close();
  await cluster?.stop();
});

describe(`issue 16: leaderlock next to Patroni 4 on etcd`, () => {
  it('(10) `patronictl switchover --candidate pg-2`: only pg-2 takes the key Patroni released, and the request is consumed', async () => {
    const scope = `sw${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok, 'Patroni pg-0 leads');
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'switchover', 'pg-0', 'pg-2')).ok);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'delete_leader')).ok, 'pg-0 steps down');
    const other = lock(scope);
    const t0 = performance.now();
    assert.equal(await other.acquire('pg-1'), undefined, 'pg-1 holds back: the request names pg-2');
    const term = await lock(scope).acquire('pg-2');
    const ms = performance.now() - t0;
    assert.ok(term, 'the candidate takes the key');
    const c = await patroni<Cluster>(scope, 'pg-9', 'cluster');
    assert.equal(c.leader, 'pg-2', 'Patroni reads our holder');
    assert.equal(c.failover, null, 'the request is consumed, as Patroni\'s new leader does');
    console.log(`# switchover to the candidate after Patroni released: ${ms.toFixed(0)} ms`);
  });

  it('(10) our handover writes a request Patroni parses (no scheduled_at), naming the successor', async () => {
    const scope = `ho${++n}`;
    const l = lock(scope);
    const term = (await l.acquire('node-a'))!;
    assert.ok(await l.release(term, { successor: 'pg-1' }));
    const c = await patroni<Cluster>(scope, 'pg-9', 'cluster');
    assert.deepEqual(c.failover, { leader: 'node-a', member: 'pg-1', scheduled_at: null });
    assert.equal(c.leader, null);
    const t0 = performance.now();
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-1', 'acquire')).ok, 'Patroni pg-1 takes the released key at once');
    console.log(`# Patroni takes over after our release: ${(performance.now() - t0).toFixed(0)} ms (one Python run)`);
  });

  it('(12) an identity that is a Patroni member\'s name is refused with a clear error', async () => {
    const scope = `nm${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-5', 'touch_member')).ok);
    await assert.rejects(lock(scope).acquire('pg-5'), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message));
    assert.ok(await lock(scope).acquire('sidecar-pg-5'), 'any other identity campaigns normally');
  });

  for (const role of ['primary', 'master'] as const) {
    it(`(15) an observer (campaign: false) follows a Patroni 4 primary whose member data says role: ${role}`, async () => {
      const scope = `ob${++n}`;
      assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'touch_member', role)).ok);
      assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok);
      const observer = new LeaderElector(lock(scope), { identity: 'observer-1', campaign: false });
      observer.on('warning', () => undefined);
      try {
        await observer.start();
        for (let i = 0; i < 50 && observer.leader !== 'pg-0'; i++) await new Promise((r) => setTimeout(r, 20));
        const s = observer.status();
        assert.equal(s.role, 'follower', 'an observer that sees a live leader reports itself following it');
        assert.equal(s.holder, 'pg-0');
        assert.equal(judge('replica', s), true, '/replica is 200 for an observer of a live Patroni primary');
        assert.equal(judge('primary', s), false);
        assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'delete_leader')).ok);
        for (let i = 0; i < 50 && observer.leader !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(observer.leader, undefined, 'Patroni released: no leader');
        assert.equal((await patroni<Cluster>(scope, 'pg-9', 'cluster')).leader, null, 'the observer wrote nothing');
      } finally {
        await observer.stop();
      }
    });
  }

  it('take-over both ways: after Patroni releases at once; after Patroni crashes when its lease (ttl) expires', async () => {
    const scope = `to${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'delete_leader')).ok);
    const l = lock(scope);
    const t1 = (await l.acquire('node-a'))!;
    assert.ok(t1, 'released by Patroni: ours at once');
    assert.ok(await l.release(t1));
    // Patroni acquires and its process dies without releasing (the Python run exits: no revoke).
    // Its lease is granted after `startedAt`, so it cannot expire before startedAt + ttl.
    const startedAt = performance.now();
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok);
    const diedAt = performance.now();
    let term;
    for (let i = 0; i < 200 && !term; i++) {
      term = await l.acquire('node-a');
      if (!term) await new Promise((r) => setTimeout(r, 100));
    }
    const ms = performance.now() - diedAt;
    const sinceStart = performance.now() - startedAt;
    assert.ok(term, 'taken after Patroni\'s lease expired');
    assert.ok(sinceStart >= PATRONI_TTL * 1000, `not before Patroni's lease TTL (${sinceStart.toFixed(0)} ms after its run started)`);
    console.log(`# crash take-over from Patroni (ttl ${PATRONI_TTL} s): ${ms.toFixed(0)} ms after its process exited, ${sinceStart.toFixed(0)} ms after it started`);
  });
});
