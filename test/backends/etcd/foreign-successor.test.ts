/**
 * A `<key>-successor` without a lease (etcdctl put, another tool) used to block the election silently
 * for ever: acquire required the nomination key to be absent. A nomination is a promise that expires;
 * a lease-less one is ignored with a warning (and left in place), as a lease-less leader key is reported.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { LeaderElector } from '../../../src/index.js';
import { etcdForFile } from '../../helpers/etcd-cluster.js';

const fx = etcdForFile();


const lock = (key: string): EtcdLock => {
  const l = new EtcdLock({ endpoints: fx.cluster.endpoints, key, ttlMs: 2000, requestTimeoutMs: 1500 }); // generous: a loaded shared box
  fx.cleanups.push(() => l.close());
  return l;
};

describe('etcd: a lease-less <key>-successor', { concurrency: true }, () => {
  it('does not block acquire; is not reported as a nomination; one warning; the key is left alone', async () => {
    const k = '/foreign-successor/a/leader';
    await fx.raw.put(`${k}-successor`).value('ghost').exec();
    const l = lock(k);
    const warnings: Error[] = [];
    l.on('warning', (e) => warnings.push(e));
    const t = await l.acquire('node-a');
    assert.ok(t, 'acquired past the lease-less nomination');
    const state = await l.get();
    assert.equal(state.successor, undefined);
    assert.equal(state.leader?.holder, 'node-a');
    assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'));
    assert.match(warnings[0]!.message, /-successor nominates "ghost" without a lease .* ignored/);
    assert.equal((await fx.raw.get(`${k}-successor`).string()), 'ghost', 'not ours to delete');
    assert.equal(await l.release(t), true);
  });

  it('an elector is elected within a bound (was: no leader, no warning, for ever)', async () => {
    const k = '/foreign-successor/b/leader';
    await fx.raw.put(`${k}-successor`).value('someone-else').exec();
    const l = lock(k);
    const e = new LeaderElector(l, { identity: 'node-b', retryPeriodMs: 200, renewDeadlineMs: 1300 });
    let warned = 0;
    e.on('warning', () => warned++);
    l.on('warning', () => warned++);
    fx.cleanups.push(() => e.stop());
    const elected = new Promise<void>((resolve) => e.once('elected', () => resolve()));
    await e.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([elected, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('not elected within 5 s')), 5000)))]).finally(() => clearTimeout(timer));
    assert.ok(warned >= 1, 'the lease-less nomination was reported');
  });

  it('a real nomination (on a lease) still holds others back', async () => {
    const k = '/foreign-successor/c/leader';
    const a = lock(k);
    const b = lock(k);
    const t = (await a.acquire('a'))!;
    assert.equal(await a.release(t, { successor: 'c' }), true);
    assert.equal(await b.acquire('b'), undefined);
    assert.equal((await b.get()).successor, 'c');
  });
});
