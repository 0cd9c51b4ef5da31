/**
 * The Kubernetes backend on a real control plane (harness/kube.ts): three kube-apiservers sharing
 * one etcd 3.6, RBAC on, static tokens, the lease endpoint reconciler. KubernetesLock's conformance
 * suite for each kind, the endpoint resolver through kill -9 and SIGSTOP of the sticky API server,
 * `kubectl get` of our Lease, and the peers (client-go leaderelection, Patroni 4's DCS code) taking,
 * holding and releasing a lock on the same servers. Real time throughout.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeClient } from '../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../src/backends/kubernetes/lock.js';
import { LeaderElector } from '../../src/elector/index.js';
import { endpointsResolver, type EndpointsResolver } from '../../src/backends/kubernetes/resolver.js';
import { lockConformance } from '../../src/testing/conformance.js';
import { systemClock } from '../../src/core/clock.js';
import type { LeaderLock } from '../../src/core/lock.js';
import { electorSuite } from '../elector/suite.js';
import { realBin, realVersion } from './harness/bins.js';
import { bindClusterRole, startKubeCluster, type KubeCluster } from './harness/kube.js';
import { sh, waitFor } from './harness/procs.js';
import { raw, rawWatch, type RawResponse, type RawTarget, type WatchEvent } from './harness/raw.js';
import { FakeKubeApiServer } from '../../src/testing/fake-kube/index.js';
import { assertPatroniTakesHoldsReleases, clientGoPeer, clientGoPeerVersions, patroniPeer } from './harness/peers.js';

// ttl / 3 (the conformance renew step) is a whole second: Lease renews within one wall-clock second do
// not move validUntil (client-go's whole-second view, issue 16 item 4), as in test/backends/kubernetes.
const TTL = 3000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: KubeCluster;
const clients = new Set<KubeClient>();
function client(resolver: EndpointsResolver = endpointsResolver({ refreshMs: 2000 }), requestTimeoutMs = 5000): KubeClient {
  const c = new KubeClient({ ...cluster.clientOptions(), resolver, requestTimeoutMs });
  c.on('warning', () => undefined);
  clients.add(c);
  return c;
}
async function closeClients(): Promise<void> {
  const all = [...clients];
  clients.clear();
  await Promise.allSettled(all.map((c) => c.close()));
}

// A server the build could not make fails here with the build script's message (never a silent skip).
it('the servers this file needs were built (scripts/real/build.sh)', () => {
  realBin('kube-apiserver');
  realBin('kubectl');
});

before(async () => {
  const started = Date.now();
  cluster = await startKubeCluster();
  console.log(`real server: kube-apiserver ${sh(realBin('kube-apiserver'), ['--version']).trim()} ×3 on ${cluster.apiServers.map((s) => s.ip).join(', ')}, up in ${Date.now() - started} ms`);
  console.log(`real server: ${sh(realBin('kubectl'), ['version', '--client']).split('\n')[0]}`);
});
after(async () => {
  await closeClients();
  await cluster?.stop();
});

let seq = 0;
for (const kind of ['Lease', 'Endpoints', 'ConfigMap'] as const) {
  const locks: KubernetesLock[] = [];
  let name = `real-${kind.toLowerCase()}-${seq}`;
  lockConformance(
    {
      name: `kubernetes ${kind}, real kube-apiservers via endpointsResolver`,
      ttlMs: TTL,
      newLock: async () => {
        // podIp is data in the Endpoints object only (nothing dials it): an address of the test hosts.
        const lock = new KubernetesLock({ client: client(), kind, name, ttlMs: TTL, requestTimeoutMs: 5000, podIp: kind === 'Endpoints' ? cluster.apiServers[0]!.ip.replace(/\.\d+$/, '.9') : undefined });
        locks.push(lock);
        return lock;
      },
      advance: sleep,
      cleanup: async () => {
        await Promise.allSettled(locks.splice(0).map((l) => l.close()));
        await closeClients();
        name = `real-${kind.toLowerCase()}-${++seq}`;
      },
    },
    { describe, it },
  );
}


// The shared elector suite (test/elector/suite.ts, also run on the memory fake by `npm test`) on a
// Lease, each elector with its own KubeClient through endpointsResolver on the three API servers, as
// separate processes would. A crash closes that client without a release: nothing more reaches the
// server, and the others judge the Lease expired on their own clocks (unchanged for its duration).
{
  const ELECTOR_TTL = 4000;
  let name = 'real-elector-0';
  let seqE = 0;
  const clientOf = new Map<LeaderLock, KubeClient>();
  electorSuite(
    {
      name: `kubernetes Lease, ${realVersion('kube-apiserver')} kube-apiservers via endpointsResolver, real time`,
      ttlMs: ELECTOR_TTL,
      expiryMs: ELECTOR_TTL + 1000,
      newLock: async () => {
        const c = client(endpointsResolver({ refreshMs: 2000 }), 1500);
        const lock = new KubernetesLock({ client: c, kind: 'Lease', name, ttlMs: ELECTOR_TTL, requestTimeoutMs: 1500 });
        clientOf.set(lock, c);
        return lock;
      },
      crash: async (lock) => {
        await clientOf.get(lock)!.close();
      },
      advance: sleep,
      now: () => systemClock.now(),
      cleanup: async () => {
        clientOf.clear();
        await closeClients();
        name = `real-elector-${++seqE}`;
      },
    },
    { describe, it },
  );
}

/**
 * Fakes proven against the real server: the same scripted requests to FakeKubeApiServer and to a
 * real kube-apiserver, comparing status codes, Status reasons and the fields our code and Patroni
 * read. Each step prints both answers when they differ.
 */
describe('differential: FakeKubeApiServer vs a real kube-apiserver', () => {
  let fake: FakeKubeApiServer;
  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 1 });
  });
  after(async () => {
    await fake?.close();
  });
  const targets = (): { fake: RawTarget; real: RawTarget } => ({
    fake: fake.clientOptions(),
    real: { server: cluster.apiServers[0]!.url, servername: 'kubernetes.default.svc', ca: cluster.ca, token: cluster.token },
  });
  const leases = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
  const lease = (name: string, holder: string, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, ...extra }, spec: { holderIdentity: holder, leaseDurationSeconds: 15 } });
  /** Runs `step` on both servers; asserts the same status and Status reason; returns both answers. */
  async function same(what: string, step: (t: RawTarget) => Promise<RawResponse>): Promise<{ fake: RawResponse; real: RawResponse }> {
    const t = targets();
    const [f, r] = [await step(t.fake), await step(t.real)];
    const show = `${what}\n  fake: ${f.status} ${f.text.slice(0, 300)}\n  real: ${r.status} ${r.text.slice(0, 300)}`;
    assert.equal(f.status, r.status, `status differs: ${show}`);
    assert.equal(f.json?.reason, r.json?.reason, `Status reason differs: ${show}`);
    return { fake: f, real: r };
  }

  it('create, 409 AlreadyExists, 404 NotFound, CAS 409 Conflict, bad body 400, bad token 401', async () => {
    const n = `diff-${Date.now()}`;
    const created = await same('create', (t) => raw(t, 'POST', leases, { body: lease(n, 'a') }));
    assert.equal(created.real.status, 201);
    for (const side of [created.fake, created.real]) {
      const spec = side.json?.spec as { holderIdentity?: string; leaseDurationSeconds?: number };
      assert.equal(spec.holderIdentity, 'a');
      assert.equal(spec.leaseDurationSeconds, 15);
      assert.equal(typeof (side.json?.metadata as { resourceVersion?: unknown }).resourceVersion, 'string');
    }
    const again = await same('create again', (t) => raw(t, 'POST', leases, { body: lease(n, 'b') }));
    assert.equal(again.real.status, 409);
    assert.equal(again.real.json?.reason, 'AlreadyExists');
    const missing = await same('get missing', (t) => raw(t, 'GET', `${leases}/${n}-missing`));
    assert.equal(missing.real.status, 404);
    assert.deepEqual((missing.fake.json?.details as { kind?: string }).kind, (missing.real.json?.details as { kind?: string }).kind);
    const stale = await same('PUT with a stale resourceVersion', (t) => raw(t, 'PUT', `${leases}/${n}`, { body: lease(n, 'c', { resourceVersion: '1' }) }));
    assert.equal(stale.real.json?.reason, 'Conflict');
    const badJson = await same('POST a body that is not JSON', (t) => raw(t, 'POST', leases, { body: '{"metadata": ' }));
    assert.equal(badJson.real.status, 400);
    const badName = await same('PUT whose name differs from the URL', (t) => raw(t, 'PUT', `${leases}/${n}`, { body: lease(`${n}-other`, 'c') }));
    assert.equal(badName.real.status, 400);
    const unauth = await same('bad token', (t) => raw(t, 'GET', leases, { token: 'not-a-token' }));
    assert.equal(unauth.real.status, 401);
  });

  it('403 Forbidden: same reason, details and message shape when RBAC denies a list and a get', async () => {
    const lift = fake.deny({ resource: 'configmaps' });
    try {
      const t = targets();
      const real = { ...t.real, token: cluster.leasesOnlyToken };
      for (const path of ['/api/v1/namespaces/default/configmaps', '/api/v1/namespaces/default/configmaps/some-cm']) {
        const [f, r] = [await raw(t.fake, 'GET', path), await raw(real, 'GET', path)];
        const show = `${path}\n  fake: ${f.text}\n  real: ${r.text}`;
        assert.equal(r.status, 403, show);
        assert.equal(f.status, r.status, show);
        assert.equal(f.json?.reason, r.json?.reason, show);
        assert.deepEqual(f.json?.details, r.json?.details, show);
        // The user differs; the rest of the sentence must not.
        const shape = (m: unknown): string => String(m).replace(/User "[^"]*"/, 'User "U"');
        assert.equal(shape(f.json?.message), shape(r.json?.message), show);
      }
    } finally {
      lift();
    }
  });

  it('a stale PUT after the object was deleted and re-created: 409 on the UID precondition on both', async () => {
    const n = `diff-uid-${Date.now()}`;
    const t = targets();
    const answers: RawResponse[] = [];
    for (const target of [t.fake, t.real]) {
      const first = await raw(target, 'POST', leases, { body: lease(n, 'a') });
      assert.equal(first.status, 201);
      const old = first.json!.metadata as { uid: string; resourceVersion: string };
      assert.equal((await raw(target, 'DELETE', `${leases}/${n}`)).status, 200);
      assert.equal((await raw(target, 'POST', leases, { body: lease(n, 'b') })).status, 201);
      answers.push(await raw(target, 'PUT', `${leases}/${n}`, { body: lease(n, 'a', { uid: old.uid, resourceVersion: old.resourceVersion }) }));
    }
    const [f, r] = answers as [RawResponse, RawResponse];
    console.log(`stale PUT after re-create: fake ${f.status} ${String(f.json?.message)} | real ${r.status} ${String(r.json?.message)}`);
    assert.equal(r.status, 409);
    assert.equal(f.status, r.status);
    assert.equal(f.json?.reason, r.json?.reason);
    for (const side of [f, r]) assert.match(String(side.json?.message), /Precondition failed: UID in precondition: [-0-9a-f]+, UID in object meta: [-0-9a-f]+/);
  });

  it('watch=True (the literal Patroni sends) opens a watch stream on both', async () => {
    const n = `diff-watch-${Date.now()}`;
    const t = targets();
    for (const [side, target] of [['fake', t.fake], ['real', t.real]] as const) {
      const created = await raw(target, 'POST', leases, { body: lease(n, 'a') });
      const rv = (created.json!.metadata as { resourceVersion: string }).resourceVersion;
      const updated = await raw(target, 'PUT', `${leases}/${n}`, { body: lease(n, 'b', { resourceVersion: rv }) });
      assert.equal(updated.status, 200, `${side}: update ${updated.text}`);
      const w = await raw(target, 'GET', `${leases}?watch=True&resourceVersion=${rv}&fieldSelector=metadata.name%3D${n}`, { firstLineOnly: true });
      assert.equal(w.status, 200, `${side}: ${w.text}`);
      assert.equal(w.json?.type, 'MODIFIED', `${side}: watch=True must stream events, got ${w.text.slice(0, 200)}`);
      assert.equal(((w.json?.object as { spec: { holderIdentity: string } }).spec.holderIdentity), 'b');
    }
  });

  it('a watch from a resourceVersion older than the server keeps: 200, then one ERROR event 410 Expired, then the end, on both', async () => {
    // What "too old" means: the real API server serves watches from its watch cache, which starts at
    // the list it makes when it starts and keeps every event since (etcd compaction does not touch
    // it). So an older resourceVersion is one from before an API server (re)started: we kill -9 and
    // restart one, as a rolling upgrade does, and watch it from before. The fake's equivalent is
    // `store.compact()` (drops its event history).
    const t = targets();
    const n = `diff-gone-${Date.now()}`;
    const answers: Record<string, { status: number; events: WatchEvent[]; byServer: boolean; rvs: string[] }> = {};
    const rvOf = (res: RawResponse): string => (res.json!.metadata as { resourceVersion: string }).resourceVersion;
    for (const [side, target] of [['fake', t.fake], ['real', t.real]] as const) {
      const created = await raw(target, 'POST', leases, { body: lease(n, 'a') });
      assert.equal(created.status, 201, `${side}: ${created.text}`);
      const updated = await raw(target, 'PUT', `${leases}/${n}`, { body: lease(n, 'b', { resourceVersion: rvOf(created) }) });
      assert.equal(updated.status, 200, `${side}: ${updated.text}`);
      if (side === 'fake') fake.store.compact();
      else {
        const s = cluster.apiServers[0]!;
        await s.signal('SIGKILL');
        await s.restart();
      }
      const w = rawWatch(target, `${leases}?watch=1&resourceVersion=${rvOf(created)}&fieldSelector=metadata.name%3D${n}`, 10_000);
      const { byServer } = await w.ended;
      answers[side] = { status: w.status, events: w.events, byServer, rvs: [rvOf(created), rvOf(updated)] };
    }
    const f = answers.fake!;
    const r = answers.real!;
    const show = `\n  fake: ${f.status} ${JSON.stringify(f.events)}\n  real: ${r.status} ${JSON.stringify(r.events)}`;
    console.log(`watch from a resourceVersion older than the server keeps:${show}`);
    assert.equal(r.status, 200, show);
    assert.equal(f.status, r.status, show);
    for (const side of [f, r]) {
      assert.equal(side.byServer, true, `the server ends the stream after the error${show}`);
      assert.deepEqual(side.events.map((e) => e.type), ['ERROR'], show);
      const st = side.events[0]!.object;
      assert.equal(st.kind, 'Status', show);
      assert.equal(st.apiVersion, 'v1', show);
      assert.equal(st.status, 'Failure', show);
      assert.equal(st.code, 410, show);
      assert.equal(st.reason, 'Expired', show);
      const m = /^too old resource version: (\d+) \((\d+)\)$/.exec(String(st.message));
      assert.ok(m, `message shape${show}`);
      assert.equal(m[1], side.rvs[0], show);
      assert.ok(BigInt(m[2]!) >= BigInt(side.rvs[1]!), `the oldest resourceVersion it keeps is at least the last write's${show}`);
    }
    // Leave three API servers listed for the tests after this one.
    const admin = cluster.admin();
    try {
      await waitFor('default/kubernetes to list all three API servers again', 60_000, async () => {
        const res = await admin.request<{ subsets?: { addresses?: { ip: string }[] }[] }>({ method: 'GET', path: '/api/v1/namespaces/default/endpoints/kubernetes' });
        return (res.body.subsets?.[0]?.addresses?.length ?? 0) === 3;
      });
    } finally {
      await admin.close();
    }
  });

  it('watch event order: ADDED, MODIFIED, DELETED with increasing resourceVersions (replayed and live), then a BOOKMARK before the timeout', async () => {
    const t = targets();
    const seen: Record<string, { events: WatchEvent[]; rvs: string[]; byServer: boolean }> = {};
    for (const [side, target] of [['fake', t.fake], ['real', t.real]] as const) {
      const n = `diff-order-${side}-${Date.now()}`;
      const list = await raw(target, 'GET', `${leases}?fieldSelector=metadata.name%3D${n}`);
      assert.equal(list.status, 200, `${side}: list ${list.text}`);
      const listRv = (list.json!.metadata as { resourceVersion: string }).resourceVersion;
      const rvOf = (res: RawResponse): string => (res.json!.metadata as { resourceVersion: string }).resourceVersion;
      // Two writes before the watch opens (replayed from listRv), two while it is open (live).
      const created = await raw(target, 'POST', leases, { body: lease(n, 'a') });
      assert.equal(created.status, 201, `${side}: ${created.text}`);
      const updated = await raw(target, 'PUT', `${leases}/${n}`, { body: lease(n, 'b', { resourceVersion: rvOf(created) }) });
      assert.equal(updated.status, 200, `${side}: ${updated.text}`);
      const w = rawWatch(target, `${leases}?watch=1&resourceVersion=${listRv}&fieldSelector=metadata.name%3D${n}&allowWatchBookmarks=true&timeoutSeconds=5`, 15_000);
      await w.opened;
      for (let i = 0; i < 100 && w.events.length < 2; i++) await sleep(20);
      assert.equal(w.events.length, 2, `${side}: the two earlier writes replayed: ${JSON.stringify(w.events)}`);
      const again = await raw(target, 'PUT', `${leases}/${n}`, { body: lease(n, 'c', { resourceVersion: rvOf(updated) }) });
      assert.equal(again.status, 200, `${side}: ${again.text}`);
      const deleted = await raw(target, 'DELETE', `${leases}/${n}`);
      assert.equal(deleted.status, 200, `${side}: ${deleted.text}`);
      const { byServer } = await w.ended;
      seen[side] = { events: w.events, rvs: [rvOf(created), rvOf(updated), rvOf(again)], byServer };
    }
    const brief = (evs: WatchEvent[]): string =>
      evs.map((e) => `${e.type}@${(e.object.metadata as { resourceVersion?: string } | undefined)?.resourceVersion}+${e.atMs.toFixed(0)}ms${e.type === 'BOOKMARK' ? JSON.stringify(e.object) : ''}`).join(' ');
    const show = `\n  fake: ${brief(seen.fake!.events)}\n  real: ${brief(seen.real!.events)}`;
    console.log(`watch event order:${show}`);
    for (const side of ['fake', 'real'] as const) {
      const { events, rvs, byServer } = seen[side]!;
      const changes = events.filter((e) => e.type !== 'BOOKMARK');
      assert.deepEqual(changes.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED'], `${side}${show}`);
      const evRvs = changes.map((e) => (e.object.metadata as { resourceVersion: string }).resourceVersion);
      assert.deepEqual(evRvs.slice(0, 3), rvs, `${side}: events carry the resourceVersions the writes returned${show}`);
      for (let i = 1; i < evRvs.length; i++) assert.ok(BigInt(evRvs[i]!) > BigInt(evRvs[i - 1]!), `${side}: increasing resourceVersions${show}`);
      assert.deepEqual(changes.map((e) => (e.object.spec as { holderIdentity: string }).holderIdentity), ['a', 'b', 'c', 'c'], `${side}${show}`);
      const bookmarks = events.filter((e) => e.type === 'BOOKMARK');
      assert.ok(bookmarks.length >= 1, `${side}: a BOOKMARK before the 5 s timeout${show}`);
      for (const b of bookmarks) {
        assert.equal(b.object.kind, 'Lease', `${side}${show}`);
        assert.equal(b.object.apiVersion, 'coordination.k8s.io/v1', `${side}${show}`);
        assert.ok(BigInt((b.object.metadata as { resourceVersion: string }).resourceVersion) >= BigInt(evRvs.at(-1)!), `${side}: a bookmark is not behind the events${show}`);
      }
      assert.ok(events.indexOf(bookmarks[0]!) > events.indexOf(changes.at(-1)!), `${side}: the bookmark came after the writes${show}`);
      assert.equal(byServer, true, `${side}: the server ends the watch at timeoutSeconds${show}`);
    }
  });

  it('services: Patroni’s headless <scope>-config Service can be created and read', async () => {
    const n = `diff-svc-${Date.now()}`;
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: `${n}-config`, labels: { application: 'patroni' } }, spec: { clusterIP: 'None' } });
    const created = await same('POST a headless Service', (t) => raw(t, 'POST', '/api/v1/namespaces/default/services', { body }));
    assert.equal(created.real.status, 201);
    const got = await same('GET it', (t) => raw(t, 'GET', `/api/v1/namespaces/default/services/${n}-config`));
    assert.equal(got.real.status, 200);
    for (const side of [got.fake, got.real]) assert.equal((side.json?.spec as { clusterIP: string }).clusterIP, 'None');
  });
});

describe('real kube-apiservers', () => {
  it('kubectl get lease shows our holder', async () => {
    const lock = new KubernetesLock({ client: client(), kind: 'Lease', name: 'kubectl-visible', ttlMs: 10_000 });
    try {
      const term = await lock.acquire('node-kubectl');
      assert.ok(term);
      const lease = JSON.parse(await cluster.kubectl(['get', 'lease', 'kubectl-visible', '-o', 'json'])) as { spec: { holderIdentity: string; leaseDurationSeconds: number } };
      assert.equal(lease.spec.holderIdentity, 'node-kubectl');
      assert.equal(lease.spec.leaseDurationSeconds, 10);
      const table = await cluster.kubectl(['get', 'lease', 'kubectl-visible']);
      assert.match(table, /kubectl-visible\s+node-kubectl/);
      assert.equal(await lock.release(term), true);
    } finally {
      await lock.close();
      await closeClients();
    }
  });

  for (const version of clientGoPeerVersions()) {
    it(`client-go ${version} leaderelection peer takes, holds and releases a Lease`, async () => {
      const name = `clientgo-${version.replace(/\./g, '-')}`;
      const peer = clientGoPeer(version, ['-server', cluster.serviceUrl, '-ca-file', cluster.caFile, '-token-file', cluster.tokenFile, '-name', name, '-identity', 'go-peer', '-lease-duration', '4s', '-renew-deadline', '3s', '-retry-period', '500ms']);
      const ours = new KubernetesLock({ client: client(), kind: 'Lease', name, ttlMs: 4000 });
      try {
        const v = await peer.waitFor((e) => e.event === 'version', 10_000, 'version line');
        console.log(`peer: client-go ${String(v.clientGo)} (${String(v.go)})`);
        assert.equal(v.clientGo, version);
        await peer.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        assert.equal((await ours.get()).leader?.holder, 'go-peer');
        // Held: renewed past its lease duration, and we cannot take it.
        await sleep(5000);
        assert.equal(await ours.acquire('node-a'), undefined);
        const state = await ours.get();
        assert.equal(state.leader?.holder, 'go-peer');
        assert.equal(state.leader?.live, true);
        assert.equal(await peer.stop(), 0);
        assert.ok(peer.events.some((e) => e.event === 'stopped-leading'));
        // Released (ReleaseOnCancel): we take it without waiting out the lease.
        const term = await ours.acquire('node-a');
        if (!term) assert.fail(`no acquire after the client-go release; lease now ${await cluster.kubectl(['get', 'lease', name, '-o', 'json'])}`);
        await ours.release(term);
      } finally {
        peer.kill();
        await ours.close();
        await closeClients();
      }
    });
  }

  for (const mode of ['ConfigMap', 'Endpoints'] as const) {
    it(`Patroni 4 (Kubernetes DCS, ${mode} mode) takes, holds and releases its leader`, async () => {
      const kubeconfig = join(cluster.dir, 'patroni-kubeconfig');
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          'current-context': 'real',
          clusters: [{ name: 'real', cluster: { server: cluster.serviceUrl, 'certificate-authority': cluster.caFile } }],
          users: [{ name: 'leaderlock', user: { token: cluster.token } }],
          contexts: [{ name: 'real', context: { cluster: 'real', user: 'leaderlock', namespace: 'default' } }],
        }),
      );
      const scope = `patroni-real-${mode.toLowerCase()}`;
      // Endpoints mode writes pod_ip into the leader Endpoints (data only, never dialled; a real server refuses loopback there).
      const podIp = cluster.apiServers[0]!.ip.replace(/\.\d+$/, '.9');
      const endpoints = mode === 'Endpoints' ? { use_endpoints: true, pod_ip: podIp } : {};
      const peer = patroniPeer(
        { scope, name: 'patroni-a', ttl: 30, loop_wait: 1, retry_timeout: 10, kubernetes: { namespace: 'default', context: 'real', labels: { application: 'patroni' }, bypass_api_service: false, ...endpoints } },
        4,
        { ...process.env, KUBECONFIG: kubeconfig },
      );
      const ours = new KubernetesLock({ client: client(), kind: mode, scope, ttlMs: 30_000, ...(mode === 'Endpoints' ? { podIp } : {}) });
      try {
        await assertPatroniTakesHoldsReleases(peer, ours);
      } finally {
        await closeClients();
      }
    });
  }

  it('role labels on a real Pod: primary while leading, replica after release', async () => {
    const admin = cluster.admin();
    const pod = 'role-pod-a';
    const labelOf = async (): Promise<string | undefined> =>
      (await admin.request<{ metadata: { labels?: Record<string, string> } }>({ method: 'GET', path: `/api/v1/namespaces/default/pods/${pod}` })).body.metadata.labels?.role;
    const until = async (want: string): Promise<void> => {
      for (let i = 0; i < 50 && (await labelOf()) !== want; i++) await sleep(100);
      assert.equal(await labelOf(), want);
    };
    // No kubelet runs here: the Pod is only an API object, which is all the label patch needs.
    await admin.request({ method: 'POST', path: '/api/v1/namespaces/default/pods', body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, labels: { app: 'demo' } }, spec: { containers: [{ name: 'c', image: 'example.invalid/none' }] } } });
    const lock = new KubernetesLock({ client: client(), kind: 'Lease', name: 'role-labels', ttlMs: 5000, roleLabels: { pod } });
    try {
      const term = await lock.acquire('node-a');
      assert.ok(term);
      await until('primary');
      assert.equal(await lock.release(term), true);
      await until('replica');
      const labels = (await admin.request<{ metadata: { labels: Record<string, string> } }>({ method: 'GET', path: `/api/v1/namespaces/default/pods/${pod}` })).body.metadata.labels;
      assert.equal(labels.app, 'demo', 'other labels untouched');
    } finally {
      await lock.close();
      await admin.close();
      await closeClients();
    }
  });

  it('endpointsResolver under RBAC that forbids EndpointSlices and Endpoints: the service address, one warning', async () => {
    const resolver = endpointsResolver({ refreshMs: 200 });
    const c = new KubeClient({ ...cluster.clientOptions(), token: cluster.leasesOnlyToken, resolver, requestTimeoutMs: 5000 });
    const warnings: Error[] = [];
    c.on('warning', (w: Error) => warnings.push(w));
    const lock = new KubernetesLock({ client: c, kind: 'Lease', name: 'rbac-fallback', ttlMs: 4000 });
    try {
      const term = await lock.acquire('node-a');
      assert.ok(term, 'the lock works through the service address');
      for (let i = 0; i < 3; i++) {
        await sleep(300);
        assert.equal(await lock.renew(term), term);
      }
      assert.equal(resolver.stats.fallback, true);
      assert.equal(warnings.length, 1, `one warning: ${warnings.map((w) => w.message).join(' | ')}`);
      assert.match(warnings[0]!.message, /forbidden \(EndpointSlices and Endpoints: 403\)/);
      assert.equal(new URL(c.stats.endpoint!).href, new URL(cluster.serviceUrl).href);
      await lock.release(term);
    } finally {
      await lock.close();
      await c.close();
    }
  });

  it('a token rotated on disk: the client re-reads its token file on the 401 and the elector keeps its term', async () => {
    // A ServiceAccount allowed leases only, and two bound tokens from the TokenRequest API, each bound
    // to its own Secret: deleting Secret A invalidates token A (after the API servers' 10 s token
    // cache), as a kubelet-rotated projected token stops working when its pod goes.
    const admin = cluster.admin();
    const sa = 'token-rotation';
    const tokenFile = join(cluster.dir, 'rotating-token');
    const renews: { at: number; ok: boolean; ms: number; error?: string }[] = [];
    let elector: LeaderElector | undefined;
    let c: KubeClient | undefined;
    try {
      await admin.request({ method: 'POST', path: '/api/v1/namespaces/default/serviceaccounts', body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } } });
      await bindClusterRole(admin, sa, 'leaderlock-leases-only', { kind: 'ServiceAccount', name: sa, namespace: 'default' });
      const boundToken = async (secret: string): Promise<string> => {
        const made = await admin.request<{ metadata: { uid: string } }>({ method: 'POST', path: '/api/v1/namespaces/default/secrets', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: secret }, type: 'Opaque' } });
        const tr = await admin.request<{ status: { token: string } }>({
          method: 'POST',
          path: `/api/v1/namespaces/default/serviceaccounts/${sa}/token`,
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600, boundObjectRef: { kind: 'Secret', apiVersion: 'v1', name: secret, uid: made.body.metadata.uid } } },
        });
        return tr.body.status.token;
      };
      const tokenA = await boundToken('token-rotation-a');
      const tokenB = await boundToken('token-rotation-b');
      const leasesVia = (s: (typeof cluster.apiServers)[number], token: string): Promise<RawResponse> =>
        raw({ server: s.url, servername: 'kubernetes.default.svc', ca: cluster.ca, token }, 'GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases');
      for (const s of cluster.apiServers) for (const tok of [tokenA, tokenB]) assert.equal((await leasesVia(s, tok)).status, 200, `both tokens work on ${s.ip}`);

      writeFileSync(tokenFile, `${tokenA}\n`, { mode: 0o600 });
      const { token: _static, ...conn } = cluster.clientOptions();
      c = new KubeClient({ ...conn, tokenFile, requestTimeoutMs: 2000 });
      const lock = new KubernetesLock({ client: c, kind: 'Lease', name: 'token-rotation', ttlMs: 4000, requestTimeoutMs: 2000 });
      elector = new LeaderElector(lock, { identity: 'rotating', retryPeriodMs: 300 });
      const lost: string[] = [];
      elector.on('lost', (_t, reason) => lost.push(reason));
      elector.on('warning', () => undefined);
      elector.on('renew', (info) => renews.push({ at: systemClock.now(), ok: info.ok, ms: info.durationMs, ...(info.error ? { error: info.error.message } : {}) }));
      await elector.start();
      assert.equal(elector.isLeader, true);
      const term = elector.term!;
      await sleep(1500);

      // Rotate on disk as the kubelet does (a new file swapped in), then invalidate the old token.
      writeFileSync(`${tokenFile}.new`, `${tokenB}\n`, { mode: 0o600 });
      renameSync(`${tokenFile}.new`, tokenFile);
      const rotatedAt = systemClock.now();
      await admin.request({ method: 'DELETE', path: '/api/v1/namespaces/default/secrets/token-rotation-a' });
      const deletedAt = systemClock.now();
      // Bounded: token A is refused by every API server (their success cache lasts 10 s).
      await waitFor('token A to be refused by all three API servers', 30_000, async () => (await Promise.all(cluster.apiServers.map(async (s) => (await leasesVia(s, tokenA)).status))).every((st) => st === 401));
      const refusedAt = systemClock.now();
      // Keep renewing well past that: every renew from here on can only have used token B.
      await sleep(3000);
      for (const s of cluster.apiServers) assert.equal((await leasesVia(s, tokenB)).status, 200, `token B still works on ${s.ip}`);

      assert.deepEqual(lost, [], 'no term lost');
      assert.equal(elector.isLeader, true);
      assert.equal(elector.term, term, 'the same term throughout');
      assert.ok(term.isValid());
      const after = renews.filter((r) => r.at > refusedAt);
      assert.ok(after.length >= 5 && after.every((r) => r.ok), `renews after token A was refused everywhere all succeeded: ${JSON.stringify(after)}`);
      const ok = renews.filter((r) => r.ok && r.at >= rotatedAt - 2000);
      let gap = 0;
      for (let i = 1; i < ok.length; i++) gap = Math.max(gap, ok[i]!.at - ok[i - 1]!.at);
      const failed = renews.filter((r) => !r.ok);
      const slowest = Math.max(...renews.filter((r) => r.at >= rotatedAt).map((r) => r.ms));
      console.log(
        `token rotated on disk: token A refused by all API servers ${(refusedAt - deletedAt).toFixed(0)} ms after Secret A was deleted; ` +
          `${renews.filter((r) => r.at >= rotatedAt).length} renews since the rotation, ${failed.length} failed; largest gap between confirmed renews ${gap.toFixed(0)} ms (retry period 300 ms); slowest renew ${slowest.toFixed(0)} ms`,
      );
      assert.equal(failed.length, 0, `no renew failed: ${JSON.stringify(failed)}`);
      assert.ok(gap < 2000, `renews kept their pace: largest gap ${gap.toFixed(0)} ms`);
      await elector.stop();
    } finally {
      await elector?.stop().catch(() => undefined);
      await c?.close();
      for (const path of ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/token-rotation', '/api/v1/namespaces/default/secrets/token-rotation-b', `/api/v1/namespaces/default/serviceaccounts/${sa}`]) {
        await admin.request({ method: 'DELETE', path, accept: [404] }).catch(() => undefined);
      }
      await admin.close();
    }
  });

  // Last: it kills API servers. Renews go on through the resolver's rotation; the worst renew is reported.
  it('endpointsResolver: renews keep going through kill -9 and SIGSTOP of the sticky API server', async () => {
    const resolver = endpointsResolver({ refreshMs: 1000 });
    const c = client(resolver, 3000);
    const lock = new KubernetesLock({ client: c, kind: 'Lease', name: 'resolver-failover', ttlMs: 6000, requestTimeoutMs: 3000 });
    const latencies: { phase: string; ms: number }[] = [];
    try {
      const term = await lock.acquire('node-a');
      assert.ok(term);
      assert.equal(resolver.stats.addresses.length, 3, `default/kubernetes lists the three API servers: ${resolver.stats.addresses.join(', ')}`);
      const renewFor = async (phase: string, ms: number): Promise<void> => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const t0 = performance.now();
          assert.equal(await lock.renew(term), term, `renew during ${phase}`);
          latencies.push({ phase, ms: performance.now() - t0 });
          await sleep(300);
        }
      };
      const sticky = (): (typeof cluster.apiServers)[number] => {
        const host = new URL(c.stats.endpoint!).hostname;
        const s = cluster.apiServers.find((a) => a.ip === host);
        assert.ok(s, `the sticky endpoint ${c.stats.endpoint} is one of the API servers`);
        return s;
      };
      await renewFor('steady', 2000);
      const killed = sticky();
      await killed.signal('SIGKILL');
      await renewFor(`after kill -9 of ${killed.ip}`, 6000);
      const stopped = sticky();
      assert.notEqual(stopped.ip, killed.ip, 'rotated away from the killed server');
      stopped.proc.child.kill('SIGSTOP');
      try {
        await renewFor(`while ${stopped.ip} is SIGSTOPped`, 6000);
        assert.notEqual(sticky().ip, stopped.ip, 'rotated away from the stopped server');
      } finally {
        stopped.proc.child.kill('SIGCONT');
      }
      assert.ok(term.isValid());
      const worst = latencies.reduce((a, b) => (b.ms > a.ms ? b : a));
      const byPhase = [...new Set(latencies.map((l) => l.phase))].map((p) => `${p}: worst ${Math.max(...latencies.filter((l) => l.phase === p).map((l) => l.ms)).toFixed(0)} ms over ${latencies.filter((l) => l.phase === p).length} renews`);
      console.log(`endpointsResolver on 3 real API servers: worst renew ${worst.ms.toFixed(0)} ms (${worst.phase}); ${byPhase.join('; ')}; rotations ${resolver.stats.rotations}`);
      assert.ok(worst.ms < 6000, 'every renew finished within the ttl');
      await lock.release(term);
    } finally {
      await lock.close();
      await closeClients();
    }
  });
});
