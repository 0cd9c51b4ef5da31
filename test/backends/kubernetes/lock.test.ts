import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ForbiddenError, MalformedRecordError } from '../../../src/core/errors.js';
import { KubeClient } from '../../../src/backends/kubernetes/client.js';
import { endpointsResolver } from '../../../src/backends/kubernetes/resolver.js';
import { KubernetesLock } from '../../../src/backends/kubernetes/lock.js';
import type { KubernetesLockOptions } from '../../../src/backends/kubernetes/lock-options.js';
import { LeaderElector } from '../../../src/elector/index.js';
import { lockConformance } from '../../../src/testing/conformance.js';
import { FakeKubeApiServer } from '../../../src/testing/fake-kube/index.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';

/**
 * KubernetesLock against FakeKubeApiServer over HTTPS, each lock with its own KubeClient that
 * bypasses the service through `endpointsResolver()`. Lock decisions run on a VirtualClock (the
 * expiry is the observer's judgement, not the server's), requests in real time.
 */
// ttl / 3 (the conformance renew step) is a whole second: Lease renews within one wall-clock second do
// not move validUntil (client-go's whole-second view, issue 16 item 4).
const TTL = 3000;
const realPause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let fake: FakeKubeApiServer;
const clients = new Set<KubeClient>();
function client(): KubeClient {
  const c = new KubeClient({ ...fake.clientOptions(), resolver: endpointsResolver(), requestTimeoutMs: 8000 });
  c.on('warning', () => undefined);
  clients.add(c);
  return c;
}
async function closeClients(): Promise<void> {
  const all = [...clients];
  clients.clear();
  await Promise.allSettled(all.map((c) => c.close()));
}

before(async () => {
  fake = await FakeKubeApiServer.start({ nodes: 3, endpointsUpdateDelayMs: 60_000 });
});
after(async () => {
  await closeClients();
  await fake.close();
});

let seq = 0;
for (const kind of ['Lease', 'Endpoints', 'ConfigMap'] as const) {
  const clock = new VirtualClock();
  const locks: KubernetesLock[] = [];
  let name = `conf-${kind.toLowerCase()}-${seq}`;
  lockConformance(
    {
      name: `kubernetes ${kind}, FakeKubeApiServer via endpointsResolver`,
      metadata: true,
      ttlMs: TTL,
      newLock: async () => {
        // Generous request deadline: 20 locks open TLS connections at once on a busy 2-core machine.
        const lock = new KubernetesLock({ client: client(), kind, name, ttlMs: TTL, clock, requestTimeoutMs: 8000, podIp: kind === 'Endpoints' ? '10.1.2.3' : undefined });
        locks.push(lock);
        return lock;
      },
      // Virtual time for the observers, plus a moment of real time for responses and watch events in flight.
      advance: async (ms) => {
        await clock.advance(ms);
        await realPause(2);
      },
      cleanup: async () => {
        await Promise.allSettled(locks.splice(0).map((l) => l.close()));
        await closeClients();
        name = `conf-${kind.toLowerCase()}-${++seq}`;
      },
    },
    { describe, it },
  );
}

function lockOn(c: KubeClient, o: Partial<KubernetesLockOptions> = {}): KubernetesLock {
  return new KubernetesLock({ client: c, kind: 'Lease', ...(o.scope ? {} : { name: 'x' }), ttlMs: 3000, ...o });
}

describe('KubernetesLock on FakeKubeApiServer', () => {
  it('RBAC forbids the lock object: ForbiddenError at once, not minutes of backoff', async () => {
    const lift = fake.deny({ resource: 'leases', name: 'rbac-denied' });
    const lock = lockOn(client(), { name: 'rbac-denied' });
    try {
      fake.clearRequests();
      const started = performance.now();
      await assert.rejects(lock.acquire('node-a'), (err: unknown) => err instanceof ForbiddenError && (err as ForbiddenError).status === 403);
      assert.ok(performance.now() - started < 1000, 'no backoff on 403');
      assert.equal(fake.requests.filter((r) => r.name === 'rbac-denied').length, 1, 'one request, no retries');
    } finally {
      lift();
      await lock.close();
      await closeClients();
    }
  });

  it('a write applied on the sticky node whose response is lost (the client re-sends it to another node) still counts', async () => {
    const c = client();
    const lock = lockOn(c, { name: 'dropped' });
    const dropOnSticky = (): (() => void) => {
      const node = fake.nodeByIp(new URL(c.stats.endpoint!).hostname)!;
      node.faults.dropResponse = true;
      return () => (node.faults.dropResponse = false);
    };
    const heal: Array<() => void> = [];
    try {
      await lock.get();
      heal.push(dropOnSticky());
      const term = await lock.acquire('node-a');
      assert.ok(term, 'our record was applied: the 409 of the re-sent copy must not read as someone else');
      heal.push(dropOnSticky());
      assert.equal(await lock.renew(term), term);
      heal.push(dropOnSticky());
      assert.equal(await lock.release(term), true);
      assert.equal(term.endReason, 'released');
      assert.ok(fake.requests.some((r) => r.name === 'dropped' && r.status === 409), 'the re-sent copies met 409s');
    } finally {
      for (const h of heal) h();
      await lock.close();
      await closeClients();
    }
  });

  it('malformed Patroni annotations: MalformedRecordError, object untouched', async () => {
    const c = client();
    await c.request({
      method: 'POST',
      path: '/api/v1/namespaces/default/configmaps',
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bad-leader', annotations: { leader: 'pg-0', transitions: 'many' } } },
    });
    const read = async (): Promise<{ metadata: { resourceVersion: string } }> =>
      (await c.request<{ metadata: { resourceVersion: string } }>({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/bad-leader' })).body;
    const before = await read();
    const lock = lockOn(c, { kind: 'ConfigMap', name: 'bad-leader' });
    try {
      await assert.rejects(lock.acquire('node-a'), MalformedRecordError);
      assert.equal((await read()).metadata.resourceVersion, before.metadata.resourceVersion);
    } finally {
      await lock.close();
      await closeClients();
    }
  });

  it('the sticky API node dies and another client patches the lock every 100 ms: the elector keeps leadership', async () => {
    const c = client();
    const lock = lockOn(c, { name: 'sticky', ttlMs: 3000 });
    const elector = new LeaderElector(lock, { identity: 'node-a', renewDeadlineMs: 2000, retryPeriodMs: 300 });
    const lost: string[] = [];
    elector.on('lost', (_t, reason) => lost.push(reason));
    elector.on('warning', () => undefined);
    const other = client();
    let patches = 0;
    let stop = false;
    const patcher = (async () => {
      while (!stop) {
        await other
          .request({ method: 'PATCH', path: '/apis/coordination.k8s.io/v1/namespaces/default/leases/sticky', contentType: 'application/merge-patch+json', body: { metadata: { labels: { tick: String(patches++) } } } })
          .catch(() => undefined);
        await realPause(100);
      }
    })();
    try {
      await elector.start();
      assert.equal(elector.isLeader, true);
      await realPause(400);
      const sticky = c.stats.endpoint;
      assert.ok(sticky, 'the client has a sticky endpoint');
      const node = fake.nodeByIp(new URL(sticky).hostname)!;
      await node.down(); // listed for another 60 s: only rotation saves us
      await realPause(3500); // longer than ttl: several renews must have gone to another node
      assert.equal(elector.isLeader, true);
      assert.deepEqual(lost, []);
      assert.notEqual(c.stats.endpoint, sticky, 'requests moved to a live node');
      assert.ok(patches >= 20, `the other client kept patching (${patches})`);
      await node.up();
    } finally {
      stop = true;
      await patcher;
      await elector.stop();
      await lock.close();
      await closeClients();
    }
  });

  it('pod role labels: primary while leading, replica after; a forbidden label write is a warning and leadership stays', async () => {
    const c = client();
    await c.request({ method: 'POST', path: '/api/v1/namespaces/default/pods', body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pod-7', labels: { app: 'db' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    const labels = async (): Promise<Record<string, string>> =>
      (await c.request<{ metadata: { labels: Record<string, string> } }>({ method: 'GET', path: '/api/v1/namespaces/default/pods/pod-7' })).body.metadata.labels;
    const lock = lockOn(c, { name: 'labels', roleLabels: { pod: 'pod-7', leader: 'master' } });
    const warnings: Error[] = [];
    lock.on('warning', (e: Error) => warnings.push(e));
    let lift: (() => void) | undefined;
    try {
      const t1 = (await lock.acquire('node-a'))!;
      await lock.roleLabels!.flush();
      assert.deepEqual(await labels(), { app: 'db', role: 'master' });
      await lock.release(t1);
      await lock.roleLabels!.flush();
      assert.deepEqual(await labels(), { app: 'db', role: 'replica' });
      lift = fake.deny({ resource: 'pods', verb: 'patch' });
      const t2 = (await lock.acquire('node-a'))!;
      await lock.roleLabels!.flush();
      assert.ok(warnings.some((w) => /could not label pod default\/pod-7 role=master/.test(w.message) && (w as { status?: number }).status === 403));
      assert.equal(await lock.renew(t2), t2, 'leadership is not affected');
      assert.ok(t2.isValid());
    } finally {
      lift?.();
      await lock.close();
      await closeClients();
    }
  });

  const kubectl = '/usr/bin/kubectl';
  it('kubectl reads what we write, as client-go and Patroni expect it', { skip: !existsSync(kubectl) && 'no /usr/bin/kubectl' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'leaderlock-kubectl-'));
    const kubeconfig = join(dir, 'config');
    writeFileSync(kubeconfig, fake.kubeconfig(), { mode: 0o600 });
    const get = async (what: string): Promise<Record<string, unknown>> => {
      const { stdout } = await promisify(execFile)(kubectl, ['--kubeconfig', kubeconfig, 'get', what, '-o', 'yaml'], { timeout: 20_000 });
      return parseYaml(stdout) as Record<string, unknown>;
    };
    const c = client();
    const locks = [
      lockOn(c, { name: 'kubectl-lease', ttlMs: 15000 }),
      lockOn(c, { kind: 'Endpoints', scope: 'kubectl', ttlMs: 30000, podIp: '10.9.8.7' }),
      lockOn(c, { kind: 'ConfigMap', scope: 'kubectl', ttlMs: 30000 }),
    ];
    try {
      const terms = await Promise.all(locks.map((l) => l.acquire('pod-0')));
      assert.ok(terms.every(Boolean));
      const [lease, ep, cm] = await Promise.all([get('lease/kubectl-lease'), get('endpoints/kubectl'), get('configmap/kubectl-leader')]);
      const spec = lease.spec as Record<string, unknown>;
      assert.equal(spec.holderIdentity, 'pod-0');
      assert.equal(spec.leaseDurationSeconds, 15);
      assert.equal(spec.leaseTransitions, 1);
      assert.match(String(spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime with microseconds');
      assert.match(String(spec.acquireTime), /\.\d{6}Z$/);
      for (const obj of [ep, cm]) {
        const a = (obj.metadata as { annotations: Record<string, string> }).annotations;
        assert.equal(a.leader, 'pod-0');
        assert.equal(a.ttl, '30');
        assert.equal(a.transitions, '1');
        assert.ok(!Number.isNaN(Date.parse(a.renewTime!)) && !Number.isNaN(Date.parse(a.acquireTime!)));
      }
      assert.deepEqual((ep.subsets as unknown[])[0], { addresses: [{ ip: '10.9.8.7' }], ports: [{ port: 5432, protocol: 'TCP' }] });
      await Promise.all(locks.map((l, i) => l.release(terms[i]!)));
      const released = (await get('lease/kubectl-lease')).spec as Record<string, unknown>;
      assert.equal(released.holderIdentity, undefined, 'released as client-go ReleaseOnCancel: no holder');
      assert.equal(released.leaseDurationSeconds, 1);
      const epAfter = await get('endpoints/kubectl');
      assert.equal((epAfter.metadata as { annotations: Record<string, string> }).annotations.leader, undefined);
      assert.equal((epAfter.metadata as { annotations: Record<string, string> }).annotations.transitions, '1');
    } finally {
      await Promise.allSettled(locks.map((l) => l.close()));
      await closeClients();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
