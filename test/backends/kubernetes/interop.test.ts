import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, LockLostError } from '../../../src/core/errors.js';
import type { Term } from '../../../src/core/lock.js';
import { KubeClient } from '../../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../../src/backends/kubernetes/lock.js';
import type { KubernetesLockOptions } from '../../../src/backends/kubernetes/lock-options.js';
import type { KubeObject } from '../../../src/backends/kubernetes/kinds.js';
import { LeaderElector } from '../../../src/elector/index.js';
import { FakeKubeApiServer } from '../../../src/testing/fake-kube/index.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';
import { ClientGoModel, type ClientGoPeer } from './client-go-model.js';

/**
 * Issue 16: leaderlock sharing a Kubernetes lock object with client-go's `leaderelection` and with
 * Patroni 4, on FakeKubeApiServer. client-go is `ClientGoModel` (its tryAcquireOrRenew/tryRelease,
 * modelled from source; the real peer checks the same points in test/real/interop-client-go.test.ts); Patroni's Kubernetes writes
 * are sent as Patroni 4.1's `Kubernetes` DCS class sends them (patroni/dcs/kubernetes.py).
 * Decisions run on a VirtualClock shared by both sides (the observers' clocks), requests in real time.
 */
const NS = 'default';
const TTL = 3000; // leaseDurationSeconds 3 on both sides
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;
const CMS = `/api/v1/namespaces/${NS}/configmaps`;

let fake: FakeKubeApiServer;
const clients: KubeClient[] = [];
function client(): KubeClient {
  const c = new KubeClient({ ...fake.clientOptions(), requestTimeoutMs: 8000 });
  c.on('warning', () => undefined);
  clients.push(c);
  return c;
}
before(async () => {
  fake = await FakeKubeApiServer.start({ nodes: 1 });
});
after(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await fake.close();
});

let seq = 0;
/** A fresh object name, our lock(s) and a client-go peer on it, all on one VirtualClock. */
function world(o: { startDate?: Date } = {}) {
  const name = `interop-${++seq}`;
  const clock = new VirtualClock(o.startDate ? { startDate: o.startDate } : {});
  const api = client();
  const locks: KubernetesLock[] = [];
  const lock = (extra: Partial<KubernetesLockOptions> = {}): KubernetesLock => {
    const l = new KubernetesLock({ client: client(), kind: 'Lease', name, ttlMs: TTL, clock, ...extra });
    l.on('warning', () => undefined);
    locks.push(l);
    return l;
  };
  const peer = (identity: string, release: 'v0.33' | 'current' = 'current'): ClientGoModel =>
    new ClientGoModel({ api: client(), namespace: NS, name, identity, clock, leaseDurationMs: TTL, release });
  const lease = async (): Promise<KubeObject | undefined> => {
    const r = await api.request<KubeObject>({ method: 'GET', path: `${LEASES}/${name}`, accept: [404] });
    return r.status === 404 ? undefined : r.body;
  };
  const close = async (): Promise<void> => {
    await Promise.allSettled(locks.map((l) => l.close()));
  };
  return { name, clock, api, lock, peer, lease, close };
}

describe('issue 16: leaderlock and client-go leaderelection on one Lease', () => {
  it('(1) Lease deleted while a client-go holder led: we wait out that holder\'s countdown before creating it again', async () => {
    const w = world();
    try {
      const go: ClientGoPeer = w.peer('go-0');
      assert.ok(await go.tryAcquireOrRenew());
      const ours = w.lock();
      assert.equal(await ours.acquire('node-a'), undefined, 'client-go leads');
      const seenAt = w.clock.now();
      await w.api.request({ method: 'DELETE', path: `${LEASES}/${w.name}` }); // kubectl delete lease
      await w.clock.advance(TTL - 1);
      assert.equal((await ours.get()).leader?.holder, 'go-0', 'the last live holder is still reported live');
      assert.equal(await ours.acquire('node-a'), undefined, 'go-0 may still act: no create yet');
      assert.equal(await w.lease(), undefined);
      await w.clock.advance(1);
      const term = await ours.acquire('node-a');
      assert.ok(term, `acquired once go-0's countdown ended (${w.clock.now() - seenAt} ms after we last saw it change)`);
      // Our own release, then a delete: nothing of ours is live, the next acquire need not wait.
      assert.ok(await ours.release(term));
      await w.api.request({ method: 'DELETE', path: `${LEASES}/${w.name}` });
      assert.ok(await ours.acquire('node-a'), 'no wait after our own confirmed release');
    } finally {
      await w.close();
    }
  });

  it('(2) same identity on both sides: the renewal we did not write ends our term with a warning', async () => {
    const w = world();
    try {
      const ours = w.lock();
      const warnings: Error[] = [];
      ours.on('warning', (e: Error) => warnings.push(e));
      const term = (await ours.acquire('pod-0'))!;
      const go = w.peer('pod-0');
      await w.clock.advance(1000);
      assert.ok(await go.tryAcquireOrRenew(), 'client-go takes the record under its identity for its own and renews it');
      await w.clock.advance(1000);
      await assert.rejects(ours.renew(term), (e: unknown) => e instanceof LockLostError && e.reason === 'taken');
      assert.equal(term.endReason, 'taken');
      assert.match(String(warnings.at(-1)?.message), /under our identity "pod-0"/);
      assert.equal(await ours.acquire('pod-0'), undefined, 'and we do not take it back: the other process is live');
    } finally {
      await w.close();
    }
  });

  it('(3) client-go releasing after a failed renew wipes our newer term: the lock\'s watch ends our term at once', async () => {
    const w = world();
    const ours = w.lock();
    const elector = new LeaderElector(ours, { identity: 'node-a', clock: w.clock });
    elector.on('warning', () => undefined);
    try {
      const go = w.peer('go-0');
      assert.ok(await go.tryAcquireOrRenew());
      // go-0 stops renewing (its renew deadline passed; its observed record still names itself).
      await elector.start();
      // Virtual time in steps (our renews keep running), real time for the requests in flight.
      for (let i = 0; i < 100 && !elector.isLeader; i++) {
        await w.clock.advance(100);
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(elector.isLeader, 'we take over once go-0 is expired for us');
      const lost = new Promise<[Term, string]>((resolve) => elector.once('lost', (t: Term, r: string) => resolve([t, r])));
      const t0 = performance.now();
      assert.ok(await go.release(), 'ReleaseOnCancel: IsLeader() is judged on its stale observed record, the Update wins on a fresh Get');
      const [, reason] = await bounded(lost, 5000, 'lost after the wipe');
      const ms = performance.now() - t0;
      assert.equal(reason, 'expired');
      console.log(`# client-go release wiped our term: lost after ${ms.toFixed(0)} ms (the watch event ends it)`);
      assert.ok(ms < 1000, `noticed in ${ms.toFixed(0)} ms of real time, before a client-go candidate may take the released record (1 s)`);
    } finally {
      await elector.stop();
      await w.close();
    }
  });

  it('(3) client-go v0.33–v0.36 releases its cached object: after our takeover that is a 409, our term stays', async () => {
    const w = world();
    try {
      const go = w.peer('go-0', 'v0.33');
      assert.ok(await go.tryAcquireOrRenew());
      await w.clock.advance(TTL);
      const ours = w.lock();
      assert.equal(await ours.acquire('node-a'), undefined, 'first sight of go-0: we start counting');
      await w.clock.advance(TTL);
      const term = (await ours.acquire('node-a'))!;
      assert.ok(term);
      assert.equal(await go.release(), false, 'its Update carries the resourceVersion of its last read: 409');
      assert.equal(await ours.renew(term), term);
      assert.equal((await w.lease())!.spec!.holderIdentity, 'node-a');
    } finally {
      await w.close();
    }
  });

  it('(4) renews within one wall-clock second: our term ends before a client-go observer judges the Lease expired', async () => {
    // Wall time 50 ms into a second: the acquire and a renew 900 ms later share that second.
    const w = world({ startDate: new Date('2026-03-01T00:00:00.050Z') });
    try {
      const ours = w.lock();
      const term = (await ours.acquire('node-a'))!;
      const go = w.peer('go-0');
      assert.equal(await go.tryAcquireOrRenew(), false);
      await w.clock.advance(900);
      await ours.renew(term);
      assert.equal(await go.tryAcquireOrRenew(), false);
      // client-go saw no change (whole-second view): its countdown runs from its first observation.
      assert.ok(term.validUntil <= (go as ClientGoModel).observedExpiresAt, `validUntil ${term.validUntil} ≤ client-go expiry ${(go as ClientGoModel).observedExpiresAt}`);
      await w.clock.advanceTo((go as ClientGoModel).observedExpiresAt);
      assert.equal(term.isValid(), false, 'our term is over when client-go may take over');
      assert.ok(await go.tryAcquireOrRenew(), 'client-go takes over');
      // A renew in the next second is a change for client-go, and moves our validity again.
      const w2 = world({ startDate: new Date('2026-03-01T00:00:00.050Z') });
      const l2 = w2.lock();
      const t2 = (await l2.acquire('node-b'))!;
      const before2 = t2.validUntil;
      await w2.clock.advance(1000);
      await l2.renew(t2);
      assert.equal(t2.validUntil, before2 + 1000);
      await w2.close();
    } finally {
      await w.close();
    }
  });

  it('(5) tokens across client-go writes: client-go counts holder changes only and restarts at 0 after a delete', async () => {
    const w = world();
    try {
      const ours = w.lock();
      const t1 = (await ours.acquire('node-a'))!;
      assert.ok(await ours.release(t1));
      const go = w.peer('go-0');
      assert.ok(await go.tryAcquireOrRenew());
      assert.equal((await w.lease())!.spec!.leaseTransitions, Number(t1.token) + 1, 'client-go: +1 on a holder change');
      assert.ok(await go.release());
      const t2 = (await ours.acquire('node-a'))!;
      assert.equal(t2.token, t1.token + 2n, 'still increasing while nobody deletes the Lease');
      assert.ok(await ours.release(t2));
      await w.api.request({ method: 'DELETE', path: `${LEASES}/${w.name}` });
      const go2 = w.peer('go-1');
      assert.ok(await go2.tryAcquireOrRenew());
      assert.equal((await w.lease())!.spec!.leaseTransitions, 0, 'after a delete client-go creates with leaseTransitions 0: fencing across a delete does not hold (documented)');
    } finally {
      await w.close();
    }
  });

  it('(6) our successor nomination does not outlive the record it was made for (client-go keeps the annotation)', async () => {
    const w = world();
    try {
      const a = w.lock();
      const b = w.lock();
      const term = (await a.acquire('node-a'))!;
      assert.ok(await a.release(term, { successor: 'node-c' }));
      assert.equal((await b.get()).successor, 'node-c');
      const go = w.peer('go-0');
      assert.ok(await go.tryAcquireOrRenew(), 'client-go does not know our nomination: the released record is free for it');
      assert.equal((await w.lease())!.metadata.annotations?.['leaderlock.io/successor'], 'node-c', 'its Update keeps our annotation');
      assert.ok(await go.release());
      assert.equal((await b.get()).successor, undefined, 'the nomination belonged to our released record, not to client-go\'s');
      assert.ok(await b.acquire('node-b'), 'taken at once, not one ttl later');
    } finally {
      await w.close();
    }
  });

  it('(7) coordinated election: a preferredHolder/strategy left on the Lease is dropped by our writes (we do not yield to it)', async () => {
    const w = world();
    try {
      await w.api.request({
        method: 'POST',
        path: LEASES,
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: w.name, namespace: NS }, spec: { preferredHolder: 'gone-9', strategy: 'OldestEmulationVersion', leaseTransitions: 3 } },
      });
      const term = (await w.lock().acquire('node-a'))!;
      assert.equal(term.token, 4n);
      const spec = (await w.lease())!.spec as Record<string, unknown>;
      assert.equal(spec.preferredHolder, undefined);
      assert.equal(spec.strategy, undefined);
    } finally {
      await w.close();
    }
  });

  it('(8) take-over both ways after a crash/pause: never before the recorded duration since the last change each side observed; at once after a release', async () => {
    const w = world();
    try {
      const ours = w.lock();
      // client-go leader crashes (or is paused longer than the lease): we take over exactly after its duration.
      const go = w.peer('go-0');
      assert.ok(await go.tryAcquireOrRenew());
      assert.equal(await ours.acquire('node-a'), undefined);
      await w.clock.advance(TTL - 1);
      assert.equal(await ours.acquire('node-a'), undefined, '1 ms before');
      await w.clock.advance(1);
      const term = (await ours.acquire('node-a'))!;
      assert.ok(term);
      // We crash (stop renewing): client-go takes over only after the duration since it saw our last write,
      // and our term is over by then.
      const go1 = w.peer('go-1');
      assert.equal(await go1.tryAcquireOrRenew(), false);
      const limit = go1.observedExpiresAt;
      await w.clock.advanceTo(limit - 1);
      assert.equal(await go1.tryAcquireOrRenew(), false, '1 ms before');
      assert.ok(term.validUntil <= limit);
      await w.clock.advanceTo(limit);
      assert.equal(term.isValid(), false);
      assert.ok(await go1.tryAcquireOrRenew());
      // Releases: each side takes a released record at once.
      assert.ok(await go1.release());
      const t2 = (await ours.acquire('node-a'))!;
      assert.ok(t2, 'client-go released: ours at once');
      assert.ok(await ours.release(t2));
      assert.ok(await w.peer('go-2').tryAcquireOrRenew(), 'we released: client-go\'s at once');
    } finally {
      await w.close();
    }
  });
});

describe('issue 16: leaderlock on a Patroni 4 cluster\'s Kubernetes objects', () => {
  it('(9) with `scope` we default to Patroni\'s ConfigMap and carry its labels, so a Patroni list (label selector) sees our leader', async () => {
    const w = world();
    const scope = `pg-${seq}`;
    try {
      const lock = w.lock({ name: undefined, scope, kind: undefined });
      assert.equal(lock.kind, 'ConfigMap');
      assert.equal(lock.name, `${scope}-leader`);
      assert.ok(await lock.acquire('side-0'));
      const selector = `application=patroni,cluster-name=${scope}`;
      const listed = await w.api.request<{ items: KubeObject[] }>({ method: 'GET', path: CMS, query: { labelSelector: selector } });
      assert.deepEqual(listed.body.items.map((o) => o.metadata.name), [`${scope}-leader`], 'Patroni lists its objects with this selector');
      // An existing object without Patroni's labels (made by an older leaderlock) gets them on our next write.
      const bare = `${scope}-b`;
      await w.api.request({ method: 'POST', path: CMS, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${bare}-leader`, labels: { team: 'db' } } } });
      const l2 = w.lock({ name: undefined, scope: bare, kind: undefined });
      assert.ok(await l2.acquire('side-0'));
      const obj = (await w.api.request<KubeObject>({ method: 'GET', path: `${CMS}/${bare}-leader` })).body;
      assert.deepEqual(obj.metadata.labels, { team: 'db', application: 'patroni', 'cluster-name': bare });
    } finally {
      await w.close();
    }
  });

  it('(10) Patroni\'s `<scope>-failover` request (patronictl switchover --candidate) is honoured like our nomination, then cleared with all three fields', async () => {
    const w = world();
    const scope = `pgf-${seq}`;
    try {
      // patronictl switchover --leader pg-0 --candidate pg-2 --scheduled ...: Patroni's manual_failover()
      await w.api.request({
        method: 'POST',
        path: CMS,
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${scope}-failover`, labels: { application: 'patroni', 'cluster-name': scope }, annotations: { leader: 'pg-0', member: 'pg-2', scheduled_at: '2026-01-01T00:00:00+00:00' } } },
      });
      const other = w.lock({ name: undefined, scope, kind: undefined });
      const nominee = w.lock({ name: undefined, scope, kind: undefined });
      assert.equal(await other.acquire('pg-1'), undefined, 'pg-1 holds back: the request names pg-2');
      const term = await nominee.acquire('pg-2');
      assert.ok(term, 'the candidate takes the free leader object');
      const annotations = async (): Promise<Record<string, string>> =>
        (await w.api.request<KubeObject>({ method: 'GET', path: `${CMS}/${scope}-failover` })).body.metadata.annotations ?? {};
      await waitFor(async () => Object.keys(await annotations()).length === 0, 'failover request cleared');
      // A leftover scheduled_at never turns our handover into a scheduled switchover.
      await w.api.request({ method: 'PATCH', path: `${CMS}/${scope}-failover`, contentType: 'application/merge-patch+json', body: { metadata: { annotations: { scheduled_at: '2030-01-01T00:00:00+00:00' } } } });
      assert.ok(await nominee.release(term, { successor: 'pg-1' }));
      assert.deepEqual(await annotations(), { leader: 'pg-2', member: 'pg-1' });
      // A request nobody acts on expires for us like our own nomination: after ttl, anyone may take over.
      await w.api.request({ method: 'PATCH', path: `${CMS}/${scope}-leader`, contentType: 'application/merge-patch+json', body: { metadata: { annotations: { 'leaderlock.io/successor': null } } } });
      assert.equal(await other.acquire('pg-3'), undefined);
      await w.clock.advance(TTL);
      assert.ok(await other.acquire('pg-3'), 'the request is ttl old: no longer honoured');
    } finally {
      await w.close();
    }
  });
});

describe('issue 16: a Patroni member\'s name', () => {
  it('(12) a sidecar campaigning under its Patroni pod\'s name is refused with a clear error; another identity campaigns', async () => {
    const w = world();
    const scope = `pgn-${seq}`;
    try {
      // The Patroni member pod: Patroni's labels and its member data in the `status` annotation.
      await w.api.request({
        method: 'POST',
        path: `/api/v1/namespaces/${NS}/pods`,
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `${scope}-0`, labels: { application: 'patroni', 'cluster-name': scope }, annotations: { status: '{"role":"primary","state":"running"}' } },
          spec: { containers: [{ name: 'postgres', image: 'patroni' }] },
        },
      });
      const lock = w.lock({ name: undefined, scope, kind: undefined });
      await assert.rejects(lock.acquire(`${scope}-0`), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message));
      const obj = await w.api.request({ method: 'GET', path: `${CMS}/${scope}-leader`, accept: [404] });
      assert.equal(obj.status, 404, 'nothing written');
      assert.ok(await lock.acquire(`${scope}-0-sidecar`));
    } finally {
      await w.close();
    }
  });
});

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls a condition in real time (server round trips), bounded. */
async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
