import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BackendUnavailableError, ConfigError, ForbiddenError, LeaderLockError, LockLostError, MalformedRecordError } from '../../../src/core/errors.js';
import type { LockState } from '../../../src/core/lock.js';
import { KubernetesLock } from '../../../src/backends/kubernetes/lock.js';
import type { KubernetesLockOptions } from '../../../src/backends/kubernetes/lock-options.js';
import { LeaderElector } from '../../../src/elector/index.js';
import { lockConformance } from '../../../src/testing/conformance.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';
import { StubKubeApi } from './stub-api.js';

/**
 * KubernetesLock against an in-memory API stub on a VirtualClock: exact and instant. The same lock
 * runs against FakeKubeApiServer over HTTPS in lock.test.ts.
 */
const TTL = 3000;
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/default/leases/demo';
const EP = '/api/v1/namespaces/default/endpoints/batman';
const CM = '/api/v1/namespaces/default/configmaps/batman-leader';

function setup(kind: 'Lease' | 'Endpoints' | 'ConfigMap' = 'Lease', extra: Partial<KubernetesLockOptions> = {}) {
  const api = new StubKubeApi();
  const clock = new VirtualClock();
  const locks: KubernetesLock[] = [];
  const make = (o: Partial<KubernetesLockOptions> = {}): KubernetesLock => {
    const name = kind === 'Lease' ? { name: 'demo' } : { scope: 'batman' };
    const lock = new KubernetesLock({ client: api, kind, ...name, ttlMs: TTL, clock, env: { POD_IP: '10.0.0.1', POD_NAME: 'pod-a' }, ...extra, ...o });
    locks.push(lock);
    return lock;
  };
  const close = async (): Promise<void> => {
    await Promise.all(locks.map((l) => l.close()));
  };
  return { api, clock, make, close };
}

for (const kind of ['Lease', 'Endpoints', 'ConfigMap'] as const) {
  const { api, clock, make, close } = setup(kind);
  lockConformance(
    {
      name: `kubernetes ${kind}, in-memory stub`,
      metadata: true,
      ttlMs: TTL,
      newLock: async () => make(),
      // Candidates that watch keep observing; a lock that was not asked in between judges from its last look.
      advance: (ms) => clock.advance(ms),
      cleanup: async () => {
        await close();
        api.objects.clear();
      },
    },
    { describe, it },
  );
}

describe('KubernetesLock (stub API, virtual clock)', () => {
  it('a record is judged expired only after it was seen unchanged for its duration; get() shows live: false', async () => {
    const { clock, make, close } = setup();
    try {
      const a = make();
      const b = make();
      const term = await a.acquire('node-a');
      assert.ok(term);
      await clock.advance(TTL * 2); // b has never looked: it starts counting now
      assert.equal((await b.get()).leader?.live, true);
      await clock.advance(TTL - 1);
      assert.equal((await b.get()).leader?.live, true);
      await clock.advance(1);
      const { leader } = await b.get();
      assert.equal(leader?.holder, 'node-a');
      assert.equal(leader?.live, false, 'stored but expired');
      assert.equal(term.isValid(), false, 'the holder’s own term ended long before');
    } finally {
      await close();
    }
  });

  it('another client patching the object does not extend a dead leader nor cut a live one (identity, not resourceVersion)', async () => {
    const { api, clock, make, close } = setup();
    try {
      const a = make();
      const b = make();
      assert.ok(await a.acquire('node-a'));
      assert.equal(await b.acquire('node-b'), undefined);
      for (let i = 0; i < 30; i++) {
        api.touch(LEASE, { metadata: { labels: { touched: String(i) } } });
        await clock.advance(100);
      }
      assert.ok(await b.acquire('node-b'), 'a stray writer kept the dead record alive');
    } finally {
      await close();
    }
  });

  it('a stray 409 during renew is re-read and renewed again; the term survives', async () => {
    const { api, clock, make, close } = setup();
    try {
      const a = make();
      const term = (await a.acquire('node-a'))!;
      let stray = 0;
      api.hook = (req) => {
        if (req.method === 'PUT' && stray < 3) {
          stray++;
          api.touch(LEASE, { metadata: { annotations: { [`x/${stray}`]: 'y' } } });
        }
      };
      await clock.advance(TTL / 3);
      const before = term.validUntil;
      assert.equal(await a.renew(term), term);
      assert.ok(term.validUntil > before);
      assert.equal(stray, 3, 'three conflicts were absorbed');
    } finally {
      await close();
    }
  });

  it('an elector keeps leadership while another client patches the lock object every 100 ms', async () => {
    const { api, clock, make, close } = setup();
    const lock = make();
    const elector = new LeaderElector(lock, { identity: 'node-a', clock });
    const lost: string[] = [];
    elector.on('lost', (_t, reason) => lost.push(reason));
    try {
      await elector.start();
      assert.equal(elector.isLeader, true);
      for (let i = 0; i < 100; i++) {
        // Conflicts land right between the elector's read and write too: the touch happens on every PUT as well.
        api.hook = (req) => (req.method === 'PUT' && i % 3 === 0 ? api.touch(LEASE, { metadata: { labels: { n: String(i) } } }) : undefined);
        api.touch(LEASE, { metadata: { labels: { tick: String(i) } } });
        await clock.advance(100);
      }
      assert.equal(elector.isLeader, true);
      assert.deepEqual(lost, []);
    } finally {
      api.hook = undefined;
      await elector.stop();
      await close();
    }
  });

  it('an ambiguous acquire or renew (applied, response lost) is re-read and counted as won', async () => {
    const { api, clock, make, close } = setup();
    try {
      const a = make();
      api.hook = (req) => (req.method === 'POST' || req.method === 'PUT' ? 'lose-response' : undefined);
      const sent = clock.now();
      const term = await a.acquire('node-a');
      assert.ok(term, 'our record was there on re-read');
      assert.equal(term.validUntil, sent + TTL * 0.99);
      // A whole second later: a Lease renew within the same wall-clock second counts from the first
      // write client-go saw in that second (issue 16, item 4; tested in interop.test.ts).
      await clock.advance(1000);
      await a.renew(term);
      assert.equal(term.validUntil, sent + 1000 + TTL * 0.99, 'validUntil counts from the send time of the confirmed write');
    } finally {
      api.hook = undefined;
      await close();
    }
  });

  it('a write the client re-sent after a reset meets its applied first copy as a 409: acquire and release still count as done', async () => {
    const { api, make, close } = setup();
    try {
      const a = make();
      const b = make();
      api.hook = (req) => (req.method !== 'GET' ? 'applied-then-409' : undefined);
      const t1 = await a.acquire('node-a');
      assert.ok(t1, 'created, then AlreadyExists for the copy: ours');
      assert.equal(await a.release(t1), true);
      assert.equal(t1.endReason, 'released');
      const t2 = await a.acquire('node-a');
      assert.ok(t2, 'updated, then Conflict for the copy: ours');
      assert.equal(t2.token, 2n);
      assert.equal(await a.renew(t2), t2, 'renew: 409 → re-read → still ours → renewed again');
      assert.equal(await a.release(t2, { successor: 'node-b' }), true);
      assert.equal(t2.endReason, 'handover');
      api.hook = undefined;
      assert.ok(await b.acquire('node-b'));
    } finally {
      api.hook = undefined;
      await close();
    }
  });

  it('RBAC forbids the object: ForbiddenError at once, one request', async () => {
    const { api, make, close } = setup();
    try {
      const a = make();
      api.hook = () => {
        throw new ForbiddenError('leases.coordination.k8s.io "demo" is forbidden', { backend: 'kubernetes', status: 403, reason: 'Forbidden' });
      };
      await assert.rejects(a.acquire('node-a'), (err: unknown) => err instanceof ForbiddenError && (err as LeaderLockError).status === 403);
      assert.equal(api.requests.length, 1);
    } finally {
      api.hook = undefined;
      await close();
    }
  });

  it('malformed Patroni annotations: MalformedRecordError, object untouched', async () => {
    const { api, make, close } = setup('Endpoints');
    try {
      api.objects.set(EP, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'batman', namespace: 'default', resourceVersion: '7', annotations: { leader: 'pg-0', ttl: 'thirty' } } });
      const before = JSON.stringify(api.objects.get(EP));
      const a = make();
      await assert.rejects(a.acquire('node-a'), (err: unknown) => err instanceof MalformedRecordError && /ttl/.test((err as Error).message));
      await assert.rejects(a.get(), MalformedRecordError);
      assert.equal(JSON.stringify(api.objects.get(EP)), before);
      assert.ok(api.requests.every((r) => r.method === 'GET'));
    } finally {
      await close();
    }
  });

  it('a released client-go Lease (empty holder) is free; every acquire increments leaseTransitions, same identity too', async () => {
    const { api, make, close } = setup();
    try {
      api.objects.set(LEASE, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'demo', namespace: 'default', resourceVersion: '5' },
        spec: { holderIdentity: '', leaseDurationSeconds: 1, leaseTransitions: 5, acquireTime: '2025-01-01T00:00:00.000000Z', renewTime: '2025-01-01T00:00:00.000000Z' },
      });
      const a = make();
      const t1 = (await a.acquire('node-a'))!;
      assert.equal(t1.token, 6n);
      const spec = api.get(LEASE)!.spec as Record<string, unknown>;
      assert.equal(spec.holderIdentity, 'node-a');
      assert.equal(spec.leaseDurationSeconds, 3);
      assert.match(String(spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.equal(await a.release(t1), true);
      const released = api.get(LEASE)!.spec as Record<string, unknown>;
      assert.equal(released.holderIdentity, undefined);
      assert.equal(released.leaseDurationSeconds, 1, 'as client-go ReleaseOnCancel');
      assert.equal(released.leaseTransitions, 6);
      const t2 = (await a.acquire('node-a'))!;
      assert.equal(t2.token, 7n, 'same identity after release is a new term');
    } finally {
      await close();
    }
  });

  it('Endpoints: the leader IP goes into subsets, release empties them and keeps the other annotations', async () => {
    const { api, make, close } = setup('Endpoints');
    try {
      const a = make();
      const term = (await a.acquire('pg-0'))!;
      const held = api.get(EP)!;
      assert.deepEqual(held.subsets, [{ addresses: [{ ip: '10.0.0.1' }], ports: [{ port: 5432, protocol: 'TCP' }] }], 'issue 16 (14): unnamed, as Patroni\'s default port');
      api.touch(EP, { metadata: { annotations: { optime: '1234' } } });
      assert.equal(await a.release(term), true);
      const after = api.get(EP)! as { subsets: unknown; metadata: { annotations: Record<string, string> } };
      assert.deepEqual(after.subsets, []);
      assert.equal(after.metadata.annotations.leader, undefined);
      assert.equal(after.metadata.annotations.optime, '1234');
      assert.equal(after.metadata.annotations.ttl, '3');
      assert.equal(after.metadata.annotations.transitions, '1');
    } finally {
      await close();
    }
  });

  it('Endpoints without a pod IP: ConfigError naming POD_IP', () => {
    const api = new StubKubeApi();
    assert.throws(
      () => new KubernetesLock({ client: api, kind: 'Endpoints', scope: 'batman', env: {} }),
      (err: unknown) => err instanceof ConfigError && /POD_IP/.test((err as Error).message),
    );
    assert.throws(
      () => new KubernetesLock({ client: api, kind: 'Lease', name: 'Bad_Name', ttlMs: -1, roleLabels: { leader: 'not valid!' }, env: {} }),
      (err: unknown) => err instanceof ConfigError && err.problems.length >= 4,
    );
  });

  it('handover on a Patroni layout writes <scope>-failover annotations; the nominee clears them', async () => {
    const { api, make, close } = setup('ConfigMap');
    try {
      const a = make();
      const b = make();
      const term = (await a.acquire('pg-0'))!;
      assert.equal(await a.release(term, { successor: 'pg-1' }), true);
      const fo = api.get('/api/v1/namespaces/default/configmaps/batman-failover') as { metadata: { annotations: Record<string, string> } };
      assert.deepEqual(fo.metadata.annotations, { leader: 'pg-0', member: 'pg-1' });
      assert.equal((await b.get()).successor, 'pg-1');
      assert.ok(await b.acquire('pg-1'));
      await b.roleLabels?.flush();
      await new Promise((r) => setImmediate(r));
      const cleared = api.get('/api/v1/namespaces/default/configmaps/batman-failover') as { metadata: { annotations?: Record<string, string> } };
      assert.equal(cleared.metadata.annotations?.member, undefined);
      assert.ok(api.get(CM));
    } finally {
      await close();
    }
  });

  it('watch emits live: false at the moment the record is judged expired', async () => {
    const { clock, make, close } = setup();
    const ac = new AbortController();
    try {
      const a = make();
      const w = make();
      assert.ok(await a.acquire('node-a'));
      const seen: LockState[] = [];
      const done = (async () => {
        for await (const s of w.watch({ signal: ac.signal })) seen.push(s);
      })();
      await clock.advance(0);
      assert.equal(seen.at(-1)?.leader?.live, true);
      await clock.advance(TTL - 1);
      assert.equal(seen.at(-1)?.leader?.live, true);
      await clock.advance(1);
      assert.equal(seen.at(-1)?.leader?.live, false);
      assert.equal(seen.at(-1)?.leader?.holder, 'node-a');
      ac.abort();
      await done;
    } finally {
      ac.abort();
      await close();
    }
  });
});

describe('KubernetesLock watch stream and foreign writers', () => {
  it('issue 16 item 3: a foreign release of our term seen on the watch ends the term at once; another holder costs the next renew one GET; our own release stays `released`', async () => {
    // With the real client-go v0.37.2 (test/real/interop-client-go.test.ts (e)) another candidate of
    // ours took the freed Lease a few ms before the wiped leader's renew noticed: every round trip the
    // wiped leader spends is overlap. Its renew used to PUT the cached object (409) and then GET.
    const { api, clock, make, close } = setup();
    const ac = new AbortController();
    const watching = async (lock: KubernetesLock): Promise<{ seen: LockState[]; done: Promise<void> }> => {
      const seen: LockState[] = [];
      const done = (async () => {
        for await (const st of lock.watch({ signal: ac.signal })) seen.push(st);
      })();
      for (let i = 0; i < 20 && seen.length === 0; i++) await clock.advance(0);
      return { seen, done };
    };
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) await clock.advance(0);
    };
    try {
      const a = make();
      const warnings: Error[] = [];
      a.on('warning', (e: Error) => warnings.push(e));
      const term = (await a.acquire('node-a'))!;
      const wa = await watching(a);
      assert.equal(wa.seen.at(-1)?.leader?.holder, 'node-a');
      // client-go's tryRelease: holder '', leaseDurationSeconds 1, our token kept, on a fresh resourceVersion.
      const before = api.requests.length;
      api.touch(LEASE, { spec: { holderIdentity: '', leaseDurationSeconds: 1 } });
      await settle();
      assert.equal(term.endReason, 'expired', 'ended by the watch event itself');
      assert.match(String(warnings.at(-1)?.message), /another writer released our term 1 of "node-a".*ReleaseOnCancel/);
      await assert.rejects(a.renew(term), (e: unknown) => e instanceof LockLostError && e.reason === 'expired');
      assert.equal(api.requests.length, before, 'no request was needed');

      // Another holder's record (a takeover): the cached object is dropped, so the renew is one GET, no PUT meeting a 409 first.
      const t2 = (await a.acquire('node-a'))!;
      await settle();
      api.touch(LEASE, { spec: { holderIdentity: 'go-0', leaseTransitions: Number(t2.token) + 1 } });
      await settle();
      assert.equal(t2.ended, false, 'a record with a holder is left to the renew (it checks the write)');
      const before2 = api.requests.length;
      await assert.rejects(a.renew(t2), (e: unknown) => e instanceof LockLostError && e.reason === 'taken');
      assert.deepEqual(api.requests.slice(before2).map((r) => r.method), ['GET']);

      // Our own release, seen on the watch before or after its reply: `released`, and renews of a live
      // term stay one PUT while the watch echoes them.
      const b = make();
      api.objects.clear();
      const t3 = (await b.acquire('node-b'))!;
      const wb = await watching(b);
      await b.renew(t3);
      await settle();
      const before3 = api.requests.length;
      await b.renew(t3);
      assert.deepEqual(api.requests.slice(before3).map((r) => r.method), ['PUT']);
      // The release's reply is lost (applied): the watch shows the released record while release() re-reads.
      api.hook = (req) => {
        const spec = (req.body as { spec?: { holderIdentity?: string } } | undefined)?.spec;
        return req.method === 'PUT' && spec !== undefined && !spec.holderIdentity ? 'lose-response' : undefined;
      };
      assert.equal(await b.release(t3), true);
      api.hook = undefined;
      await settle();
      assert.equal(t3.endReason, 'released');
      ac.abort();
      await Promise.all([wa.done, wb.done]);
    } finally {
      ac.abort();
      await close();
    }
  });

  it('watch re-lists after 410 Gone and keeps delivering changes', async () => {
    const { api, clock, make, close } = setup();
    const ac = new AbortController();
    try {
      const a = make();
      const w = make();
      api.watchStarts.push({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
      const seen: LockState[] = [];
      const done = (async () => {
        for await (const s of w.watch({ signal: ac.signal })) seen.push(s);
      })();
      await clock.advance(0);
      const gets = api.requests.filter((r) => r.method === 'GET').length;
      const t1 = (await a.acquire('node-a'))!;
      await clock.advance(0);
      assert.equal(seen.at(-1)?.leader?.token, t1.token, 'the change after the 410 arrived');
      assert.ok(api.requests.filter((r) => r.method === 'GET').length > gets, 're-listed');
      assert.ok(api.watchCalls >= 2);
      ac.abort();
      await done;
    } finally {
      ac.abort();
      await close();
    }
  });

  it('issue 12: one broken watch stream (an API node failing over) is no warning; three failures in a row are one', async () => {
    const { api, clock, make, close } = setup();
    const ac = new AbortController();
    let breaks = 1;
    let cut: AbortController | undefined;
    const watch = api.watch.bind(api);
    api.watch = (opts) => {
      if (breaks > 0) {
        breaks--;
        return (async function* (): AsyncGenerator<never> {
          throw new BackendUnavailableError(`watch ${opts.path} broke: UND_ERR_DESTROYED`, { backend: 'kubernetes' });
        })();
      }
      cut = new AbortController();
      return watch({ ...opts, signal: AbortSignal.any([opts.signal, cut.signal]) });
    };
    try {
      const w = make();
      const warnings: string[] = [];
      w.on('warning', (e: Error) => warnings.push(e.message));
      const seen: LockState[] = [];
      const done = (async () => {
        for await (const s of w.watch({ signal: ac.signal })) seen.push(s);
      })();
      await clock.advance(0);
      await clock.advance(150); // past the first backoff: the watch resumes
      const a = make();
      const t1 = (await a.acquire('node-a'))!;
      await clock.advance(0);
      assert.equal(seen.at(-1)?.leader?.token, t1.token, 'the watch resumed after the break');
      assert.deepEqual(warnings, []);
      // Now the stream ends and the next three attempts fail: that is worth one warning.
      breaks = 3;
      cut!.abort();
      await clock.advance(100 + 200 + 400 + 50);
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /watch .* broke: UND_ERR_DESTROYED/);
      ac.abort();
      await done;
    } finally {
      ac.abort();
      await close();
    }
  });

  it('a live client-go holder is respected until unchanged for its leaseDurationSeconds, then taken with token + 1; coordinated-election fields dropped as client-go does', async () => {
    const { api, clock, make, close } = setup();
    try {
      api.objects.set(LEASE, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'demo', namespace: 'default', resourceVersion: '5' },
        spec: { holderIdentity: 'kube-controller-manager-1', leaseDurationSeconds: 15, leaseTransitions: 41, acquireTime: '2025-01-01T00:00:00.000000Z', renewTime: '2025-06-01T00:00:00.000000Z', strategy: 'OldestEmulationVersion' },
      });
      const a = make();
      assert.equal(await a.acquire('node-a'), undefined, 'the record is old by wall clock, but we have not seen it unchanged for 15 s');
      await clock.advance(14_999);
      assert.equal(await a.acquire('node-a'), undefined);
      await clock.advance(1);
      const term = (await a.acquire('node-a'))!;
      assert.equal(term.token, 42n);
      const spec = api.get(LEASE)!.spec as Record<string, unknown>;
      assert.equal(spec.strategy, undefined, 'issue 16 (7): we do not take part in coordinated election; client-go writes drop it too');
      assert.equal(spec.leaseTransitions, 42);
    } finally {
      await close();
    }
  });

  it('issue 12: metadata rides in leaderlock.io/ annotations; client-go and Patroni fields unchanged; a foreign takeover hides it', async () => {
    for (const kind of ['Lease', 'Endpoints'] as const) {
      const { api, make, close } = setup(kind);
      try {
        const a = make();
        const term = (await a.acquire('node-a', { metadata: '10.0.0.1:5432' }))!;
        const path = kind === 'Lease' ? LEASE : EP;
        const obj = api.get(path)! as { metadata: { annotations: Record<string, string> }; spec?: Record<string, unknown> };
        assert.equal(obj.metadata.annotations['leaderlock.io/metadata'], '10.0.0.1:5432');
        assert.equal(obj.metadata.annotations['leaderlock.io/metadata-term'], String(term.token));
        if (kind === 'Lease') assert.equal(obj.spec?.holderIdentity, 'node-a', 'client-go reads the holder as before');
        else assert.equal(obj.metadata.annotations.leader, 'node-a', 'Patroni reads the leader as before');
        assert.equal((await make().get()).leader?.metadata, '10.0.0.1:5432');
        // A foreign writer takes over keeping our annotations (client-go updates the object it read):
        // the term changed, so the metadata is not shown for the new holder.
        if (kind === 'Lease') api.touch(path, { spec: { holderIdentity: 'kcm-2', leaseTransitions: Number(term.token) + 1 } });
        else api.touch(path, { metadata: { annotations: { leader: 'pg-2', transitions: String(Number(term.token) + 1) } } });
        const seen = (await make().get()).leader;
        assert.equal(seen?.token, term.token + 1n);
        assert.equal(seen?.metadata, undefined);
      } finally {
        await close();
      }
    }
  });

  it('a Patroni-written leader (annotations, isoformat times) is read and expires by its ttl annotation', async () => {
    const { api, clock, make, close } = setup('Endpoints');
    try {
      api.objects.set(EP, {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'batman', namespace: 'default', resourceVersion: '9', annotations: { leader: 'pg-0', ttl: '30', acquireTime: '2026-01-01T00:00:00.123456+00:00', renewTime: '2026-01-01T00:00:20.5+00:00', transitions: '3', optime: '67108864' } },
        subsets: [{ addresses: [{ ip: '10.0.0.9' }], ports: [{ name: 'postgresql', port: 5432 }] }],
      });
      const a = make();
      const { leader } = await a.get();
      assert.equal(leader?.holder, 'pg-0');
      assert.equal(leader?.token, 3n);
      assert.equal(leader?.ttlMs, 30_000);
      await clock.advance(30_000);
      const term = (await a.acquire('pg-1'))!;
      assert.equal(term.token, 4n);
      const ann = (api.get(EP)!.metadata as { annotations: Record<string, string> }).annotations;
      assert.equal(ann.optime, '67108864', 'Patroni annotations we do not own stay');
      assert.equal(ann.leader, 'pg-1');
    } finally {
      await close();
    }
  });
});

describe('KubernetesLock with a foreign record of huge duration (issue 13)', () => {
  // 3,000,000 s = 34.7 days: more than a Node timer's 2^31−1 ms, which Node fires after 1 ms.
  const HUGE_S = 3_000_000;
  const DAY = 86_400_000;
  const records = {
    Lease: (api: StubKubeApi) =>
      api.objects.set(LEASE, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'demo', namespace: 'default', resourceVersion: '9' },
        spec: { holderIdentity: 'other', leaseDurationSeconds: HUGE_S, acquireTime: '2026-01-01T00:00:00.000000Z', renewTime: '2026-01-01T00:00:00.000000Z', leaseTransitions: 1 },
      }),
    Endpoints: (api: StubKubeApi) =>
      api.objects.set(EP, {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'batman', namespace: 'default', resourceVersion: '9', annotations: { leader: 'pg-0', ttl: String(HUGE_S), acquireTime: '2026-01-01T00:00:00+00:00', renewTime: '2026-01-01T00:00:00+00:00', transitions: '3' } },
      }),
  };
  for (const kind of ['Lease', 'Endpoints'] as const) {
    it(`${kind}: the watch waits out the duration with a bounded number of timer firings, then reports it expired`, async () => {
      const { api, clock, make, close } = setup(kind);
      records[kind](api);
      const ac = new AbortController();
      try {
        const w = make();
        const seen: LockState[] = [];
        const done = (async () => {
          for await (const s of w.watch({ signal: ac.signal })) seen.push(s);
        })();
        await clock.advance(0);
        assert.equal(seen.at(-1)?.leader?.live, true);
        const fired = clock.firedTimers;
        // 40 virtual days in 1-day steps (each step lets the watch's continuations run).
        for (let d = 0; d < 40; d++) await clock.advance(DAY);
        const firings = clock.firedTimers - fired;
        // One chunk of 2^31−1 ms, then the rest: a handful. Without chunking Node re-arms every 1 ms.
        assert.ok(firings <= 10, `${firings} timer firings over 40 days`);
        assert.ok(seen.length <= 5, `${seen.length} states published`);
        assert.equal(seen.at(-1)?.leader?.live, false, 'judged expired after its 34.7 days');
        ac.abort();
        await done;
      } finally {
        ac.abort();
        await close();
      }
    });
  }
});

describe('KubernetesLock: huge values from the store in messages (issue 13)', () => {
  it('a 1 MB holder is kept whole in the record; a 1 MB malformed annotation is quoted cut in the error', async () => {
    const { api, make, close } = setup('Endpoints');
    try {
      const huge = 'p'.repeat(1_000_000);
      api.objects.set(EP, {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'batman', namespace: 'default', resourceVersion: '9', annotations: { leader: huge, ttl: '30', acquireTime: '2026-01-01T00:00:00+00:00', renewTime: '2026-01-01T00:00:00+00:00', transitions: '3' } },
      });
      const a = make();
      assert.equal((await a.get()).leader?.holder.length, 1_000_000, 'LeaderRecord.holder is the full value');
      api.touch(EP, { metadata: { annotations: { renewTime: huge } } });
      await assert.rejects(a.get(), (err: unknown) => {
        assert.ok(err instanceof MalformedRecordError);
        assert.ok(err.message.length < 600, `a ${err.message.length}-character message`);
        assert.match(err.message, /…\(1000000 bytes\)/);
        return true;
      });
    } finally {
      await close();
    }
  });
});

describe('KubernetesLock pod role labels', () => {
  const POD = '/api/v1/namespaces/default/pods/pod-a';

  it('primary on term start, replica on end; values configurable (master for old clusters)', async () => {
    const { api, clock, make, close } = setup('Lease', { roleLabels: { leader: 'master' } });
    try {
      api.objects.set(POD, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pod-a', namespace: 'default', resourceVersion: '1', labels: { app: 'x' } } });
      const a = make();
      const term = (await a.acquire('node-a'))!;
      await a.roleLabels!.flush();
      assert.deepEqual((api.get(POD)!.metadata as { labels: unknown }).labels, { app: 'x', role: 'master' });
      await clock.advance(TTL); // the term expires unrenewed
      assert.equal(term.ended, true);
      await a.roleLabels!.flush();
      assert.deepEqual((api.get(POD)!.metadata as { labels: unknown }).labels, { app: 'x', role: 'replica' });
    } finally {
      await close();
    }
  });

  it('a failed label write is a warning, never a reason to drop leadership', async () => {
    const { api, clock, make, close } = setup('Lease', { roleLabels: true });
    const lock = make();
    const warnings: Error[] = [];
    const elector = new LeaderElector(lock, { identity: 'node-a', clock });
    elector.on('warning', (e) => warnings.push(e));
    try {
      // No pod object: every PATCH is a 404.
      await elector.start();
      await lock.roleLabels!.flush();
      await clock.advance(TTL * 3);
      assert.equal(elector.isLeader, true);
      assert.ok(warnings.some((w) => /could not label pod default\/pod-a role=primary/.test(w.message)), warnings.map((w) => w.message).join('\n'));
    } finally {
      await elector.stop();
      await close();
    }
    assert.ok(api.requests.some((r) => r.method === 'PATCH' && r.path.endsWith('/pods/pod-a')));
  });
});
