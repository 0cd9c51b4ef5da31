import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKubeApiServer, VirtualClock, jsonPatch, mergePatch, strategicMergePatch } from '../../src/testing/index.js';
import { queryBool } from '../../src/testing/fake-kube/api.js';
import { raw, rawWatch } from '../real/harness/raw.js';

const KUBECTL = '/usr/bin/kubectl';
const CM = '/api/v1/namespaces/default/configmaps';
const PODS = '/api/v1/namespaces/default/pods';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** A raw HTTPS call (no leaderlock client), so the fake is checked on its own. */
function call(fake: FakeKubeApiServer, method: string, path: string, body?: unknown, opts: { token?: string; contentType?: string; url?: URL } = {}): Promise<Reply> {
  const url = opts.url ?? fake.node(0).url;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        ca: fake.ca,
        servername: fake.servername,
        agent: false,
        headers: {
          authorization: `Bearer ${opts.token ?? fake.token}`,
          ...(body !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('FakeKubeApiServer', () => {
  let fake: FakeKubeApiServer;
  // The fake's clock drives the endpoints update delay: the test moves it instead of sleeping.
  const clock = new VirtualClock({ startDate: new Date() });
  let pick = Math.random; // which node the service address forwards the next connection to
  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 3, endpointsUpdateDelayMs: 200, clock, random: () => pick() });
  });
  after(async () => {
    await fake.close();
  });

  it('writes Status bodies as the real API does: 404, 409 AlreadyExists, 409 Conflict, 401, 403', async () => {
    const nf = await call(fake, 'GET', `${CM}/missing`);
    assert.deepEqual(nf, {
      status: 404,
      body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'configmaps "missing" not found', reason: 'NotFound', details: { name: 'missing', kind: 'configmaps' }, code: 404 },
    });
    const made = await call(fake, 'POST', CM, { metadata: { name: 'c1' }, data: { a: '1' } });
    assert.equal(made.status, 201);
    const meta = made.body.metadata as Record<string, string>;
    assert.ok(meta.uid && meta.resourceVersion && meta.creationTimestamp);
    const again = await call(fake, 'POST', CM, { metadata: { name: 'c1' } });
    assert.equal(again.status, 409);
    assert.equal(again.body.reason, 'AlreadyExists');
    assert.equal(again.body.message, 'configmaps "c1" already exists');
    const stale = await call(fake, 'PUT', `${CM}/c1`, { metadata: { name: 'c1', resourceVersion: '1' }, data: {} });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, 'Conflict');
    assert.match(String(stale.body.message), /^Operation cannot be fulfilled on configmaps "c1": the object has been modified/);
    const unauth = await call(fake, 'GET', CM, undefined, { token: 'nope' });
    assert.deepEqual(unauth.body, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const lift = fake.deny({ verb: 'get', resource: 'leases', namespace: 'kube-system' });
    const denied = await call(fake, 'GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x');
    lift();
    assert.equal(denied.status, 403);
    assert.equal(
      denied.body.message,
      'leases.coordination.k8s.io "x" is forbidden: User "system:serviceaccount:default:leaderlock" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"',
    );
    const invalid = await call(fake, 'POST', CM, { metadata: { name: 'Bad_Name' } });
    assert.equal(invalid.status, 422);
    assert.equal(invalid.body.reason, 'Invalid');
  });

  it('rejects what a real server cannot decode or validate: non-MicroTime Lease times, string integers, bad label values', async () => {
    const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
    const millis = await call(fake, 'POST', LEASES, { metadata: { name: 'v1' }, spec: { renewTime: '2024-01-01T00:00:00.123Z' } });
    assert.equal(millis.status, 400);
    assert.equal(millis.body.reason, 'BadRequest');
    assert.match(String(millis.body.message), /^Lease in version "v1" cannot be handled as a Lease: parsing time/);
    const strInt = await call(fake, 'POST', LEASES, { metadata: { name: 'v2' }, spec: { leaseDurationSeconds: '15' } });
    assert.equal(strInt.status, 400);
    const label = await call(fake, 'POST', CM, { metadata: { name: 'v3', labels: { role: 'not ok!' } } });
    assert.equal(label.status, 422);
    assert.equal(label.body.reason, 'Invalid');
    const ok = await call(fake, 'POST', LEASES, { metadata: { name: 'v4' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: '2024-01-01T00:00:00.123456Z', leaseTransitions: 0 } });
    assert.equal(ok.status, 201);
  });

  it('reads boolean query flags as the API server does: watch=True (Patroni’s literal) opens a watch stream', async () => {
    assert.deepEqual(['true', 'True', '1', 'yes', ''].map(queryBool), [true, true, true, true, true]);
    assert.deepEqual([undefined, '0', 'false', 'FALSE'].map(queryBool), [false, false, false, false]);
    const target = { ...fake.clientOptions(), server: fake.node(0).url.href };
    const made = await call(fake, 'POST', CM, { metadata: { name: 'watch-true' }, data: { a: '1' } });
    const rv = (made.body.metadata as { resourceVersion: string }).resourceVersion;
    await call(fake, 'PUT', `${CM}/watch-true`, { metadata: { name: 'watch-true', resourceVersion: rv }, data: { a: '2' } });
    const w = await raw(target, 'GET', `${CM}?watch=True&resourceVersion=${rv}&fieldSelector=metadata.name%3Dwatch-true`, { firstLineOnly: true });
    assert.equal(w.json?.type, 'MODIFIED', `a watch stream, not a list: ${w.text.slice(0, 120)}`);
  });

  it('sends a watch BOOKMARK 2 s before its timeoutSeconds, as the real server does (test:real compares them)', async () => {
    const target = { ...fake.clientOptions(), server: fake.node(0).url.href };
    const w = rawWatch(target, `${CM}?watch=1&allowWatchBookmarks=true&timeoutSeconds=5&fieldSelector=metadata.name%3Dno-such`, 10_000);
    await w.opened;
    // I/O is real: wait (bounded) for what the virtual clock's move has sent to arrive.
    const arrived = async (pred: () => boolean): Promise<boolean> => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
      return pred();
    };
    await clock.advance(2_999);
    assert.equal(await arrived(() => w.events.length > 0), false, 'nothing before timeout − 2 s');
    await clock.advance(1);
    assert.equal(await arrived(() => w.events.length > 0), true, 'a bookmark at timeout − 2 s');
    assert.deepEqual(w.events.map((e) => e.type), ['BOOKMARK']);
    assert.equal((w.events[0]!.object.metadata as { resourceVersion: string }).resourceVersion, String(fake.store.resourceVersion));
    await clock.advance(2_000);
    assert.deepEqual(await w.ended, { byServer: true }, 'the server ends the watch at timeoutSeconds');
    assert.deepEqual(w.events.map((e) => e.type), ['BOOKMARK']);
  });

  it('checks a PUT’s metadata.uid first: a stale writer after delete and re-create gets 409 on the UID precondition', async () => {
    const first = await call(fake, 'POST', CM, { metadata: { name: 'uid-pre' }, data: { a: '1' } });
    const old = first.body.metadata as { uid: string; resourceVersion: string };
    assert.equal((await call(fake, 'DELETE', `${CM}/uid-pre`)).status, 200);
    assert.equal((await call(fake, 'POST', CM, { metadata: { name: 'uid-pre' }, data: { a: '2' } })).status, 201);
    const stale = await call(fake, 'PUT', `${CM}/uid-pre`, { metadata: { name: 'uid-pre', uid: old.uid, resourceVersion: old.resourceVersion }, data: { a: '3' } });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, 'Conflict');
    assert.match(String(stale.body.message), new RegExp(`Precondition failed: UID in precondition: ${old.uid}, UID in object meta: `));
  });

  it('serves Services (Patroni’s headless <scope>-config in Endpoints mode)', async () => {
    const svc = await call(fake, 'POST', '/api/v1/namespaces/default/services', { metadata: { name: 'demo-config' }, spec: { clusterIP: 'None' } });
    assert.equal(svc.status, 201);
    assert.equal((await call(fake, 'GET', '/api/v1/namespaces/default/services/demo-config')).status, 200);
  });

  it('keeps one resourceVersion counter across resources and nodes; PUT without resourceVersion is unconditional', async () => {
    const a = await call(fake, 'POST', CM, { metadata: { name: 'rv-a' } }, { url: fake.node(1).url });
    const b = await call(fake, 'POST', PODS, { metadata: { name: 'rv-b' }, spec: { containers: [{ name: 'c', image: 'x' }] } }, { url: fake.node(2).url });
    const rvA = Number((a.body.metadata as Record<string, string>).resourceVersion);
    const rvB = Number((b.body.metadata as Record<string, string>).resourceVersion);
    assert.equal(rvB, rvA + 1);
    const put = await call(fake, 'PUT', `${CM}/rv-a`, { metadata: { name: 'rv-a' }, data: { x: 'y' } });
    assert.equal(put.status, 200);
    assert.equal((put.body.metadata as Record<string, string>).uid, (a.body.metadata as Record<string, string>).uid);
  });

  it('lists with label and field selectors', async () => {
    for (const [name, labels] of [['sel-1', { app: 'db', role: 'primary' }], ['sel-2', { app: 'db', role: 'replica' }], ['sel-3', { app: 'web' }]] as const) {
      await call(fake, 'POST', PODS, { metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'x' }] }, status: { phase: 'Running' } });
    }
    const names = async (q: string) => ((await call(fake, 'GET', `${PODS}?${q}`)).body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name).filter((n) => n.startsWith('sel-'));
    assert.deepEqual(await names('labelSelector=app%3Ddb'), ['sel-1', 'sel-2']);
    assert.deepEqual(await names('labelSelector=app%3Ddb,role!%3Dprimary'), ['sel-2']);
    assert.deepEqual(await names('labelSelector=role%20in%20(primary,replica)'), ['sel-1', 'sel-2']);
    assert.deepEqual(await names('labelSelector=!role'), ['sel-3']);
    assert.deepEqual(await names('fieldSelector=metadata.name%3Dsel-3'), ['sel-3']);
    assert.deepEqual(await names('fieldSelector=status.phase%3DRunning,metadata.name!%3Dsel-1'), ['sel-2', 'sel-3']);
    const bad = await call(fake, 'GET', `${PODS}?fieldSelector=spec.unknown%3D1`);
    assert.equal(bad.status, 400);
  });

  it('patches: merge, strategic merge for labels and annotations, json patch with test; resourceVersion in a patch is a precondition', async () => {
    await call(fake, 'POST', CM, { metadata: { name: 'p1', labels: { a: '1', b: '2' } }, data: { k: 'v' } });
    const smp = await call(fake, 'PATCH', `${CM}/p1`, { metadata: { labels: { b: null, c: '3' }, annotations: { x: 'y' } } }, { contentType: 'application/strategic-merge-patch+json' });
    assert.deepEqual((smp.body.metadata as Record<string, unknown>).labels, { a: '1', c: '3' });
    const merge = await call(fake, 'PATCH', `${CM}/p1`, { data: { k: null, n: 'm' } }, { contentType: 'application/merge-patch+json' });
    assert.deepEqual(merge.body.data, { n: 'm' });
    const jp = await call(fake, 'PATCH', `${CM}/p1`, [{ op: 'test', path: '/data/n', value: 'm' }, { op: 'add', path: '/metadata/annotations/leaderlock.io~1successor', value: 'b' }], { contentType: 'application/json-patch+json' });
    assert.equal(((jp.body.metadata as Record<string, unknown>).annotations as Record<string, string>)['leaderlock.io/successor'], 'b');
    const failedTest = await call(fake, 'PATCH', `${CM}/p1`, [{ op: 'test', path: '/data/n', value: 'other' }], { contentType: 'application/json-patch+json' });
    assert.equal(failedTest.status, 422);
    const pre = await call(fake, 'PATCH', `${CM}/p1`, { metadata: { resourceVersion: '1' }, data: { z: '1' } }, { contentType: 'application/merge-patch+json' });
    assert.equal(pre.status, 409);
    const apply = await call(fake, 'PATCH', `${CM}/p1`, {}, { contentType: 'application/apply-patch+yaml' });
    assert.equal(apply.status, 415);
    assert.deepEqual(mergePatch({ a: { b: 1, c: 2 } }, { a: { b: null } }), { a: { c: 2 } });
    assert.deepEqual(strategicMergePatch({ m: { a: '1' } }, { m: { $patch: 'replace', b: '2' } }), { m: { b: '2' } });
    assert.deepEqual(jsonPatch({ l: [1, 3] }, [{ op: 'add', path: '/l/1', value: 2 }]), { l: [1, 2, 3] });
  });

  it('applies the write and drops the response on a dropResponse node (the ambiguous write)', async () => {
    fake.node(2).faults.dropResponse = true;
    try {
      await assert.rejects(call(fake, 'POST', CM, { metadata: { name: 'dropped' } }, { url: fake.node(2).url }));
    } finally {
      fake.node(2).heal();
    }
    assert.equal((await call(fake, 'GET', `${CM}/dropped`)).status, 200);
  });

  it('answers 5xx with a Status and Retry-After from a faulty node; unknown routes are recorded and fail loudly', async () => {
    Object.assign(fake.node(1).faults, { serverError: 503, retryAfterSeconds: 2 });
    const r = await call(fake, 'GET', CM, undefined, { url: fake.node(1).url });
    fake.node(1).heal();
    assert.equal(r.status, 503);
    assert.equal(r.body.reason, 'ServiceUnavailable');
    const before = fake.unknownRequests.length;
    const unk = await call(fake, 'GET', '/apis/apps/v1/namespaces/default/deployments');
    assert.equal(unk.status, 404);
    assert.match(String(unk.body.message), /FakeKubeApiServer has no route for GET/);
    assert.equal(fake.unknownRequests.length, before + 1);
  });

  it('lists live nodes in default/kubernetes; the service keeps forwarding to a dead node until the endpoints update', async () => {
    const ips = async () => ((await call(fake, 'GET', '/api/v1/namespaces/default/endpoints/kubernetes')).body.subsets as { addresses: { ip: string }[] }[])[0]!.addresses.map((a) => a.ip);
    assert.deepEqual(await ips(), fake.nodes.map((n) => n.ip));
    const dead = fake.node(2);
    await dead.down();
    assert.equal(fake.listedNodes.length, 3, 'still listed during endpointsUpdateDelayMs');
    assert.ok(fake.listedNodes.includes(dead));
    await clock.advance(199);
    assert.ok(fake.listedNodes.includes(dead), 'kube-proxy has not caught up yet');
    pick = () => 0.9; // the last listed node: the dead one
    await assert.rejects(call(fake, 'GET', CM, undefined, { url: fake.serviceUrl }), 'the service still forwards to the dead node');
    pick = Math.random;
    await clock.advance(1);
    assert.ok(!fake.listedNodes.includes(dead));
    assert.deepEqual(await ips(), [fake.node(0).ip, fake.node(1).ip]);
    const slice = await call(fake, 'GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes');
    const endpoints = (slice.body.items as { endpoints: { addresses: string[] }[]; ports: { name: string }[] }[])[0]!;
    assert.deepEqual(endpoints.endpoints.map((e) => e.addresses[0]), [fake.node(0).ip, fake.node(1).ip]);
    assert.equal(endpoints.ports[0]!.name, 'https');
    // Through the service now: only live nodes.
    for (let i = 0; i < 6; i++) assert.equal((await call(fake, 'GET', CM, undefined, { url: fake.serviceUrl })).status, 200);
    await dead.up();
    const added = await fake.addNode();
    assert.deepEqual(await ips(), fake.nodes.map((n) => n.ip));
    await fake.removeNode(added);
    assert.ok(!(await ips()).includes(added.ip));
  });
});

describe('FakeKubeApiServer with kubectl', () => {
  const missing = !existsSync(KUBECTL);
  let fake: FakeKubeApiServer;
  let dir: string;
  let kubeconfig: string;
  before(async () => {
    if (missing) return;
    fake = await FakeKubeApiServer.start({ nodes: 2 });
    dir = await mkdtemp(join(tmpdir(), 'leaderlock-kubectl-'));
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfig());
  });
  after(async () => {
    if (missing) return;
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  // kubectl runs as a child process: execFile (async), never execFileSync, or the fake in this process could not answer.
  const kubectl = (args: string[], input = ''): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = execFile(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), '--request-timeout=10s', ...args], { timeout: 30_000 }, (err, out, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(out),
      );
      child.stdin!.end(input);
    });

  it(
    'kubectl get/apply/patch/delete works on leases, endpoints, configmaps and pods',
    { skip: missing ? `${KUBECTL} is not installed (no package provides it here); skipping the kubectl fidelity test` : false, timeout: 120_000 },
    async () => {
      const manifests = `apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: demo
spec:
  holderIdentity: node-a
  leaseDurationSeconds: 15
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
  labels: {app: demo}
data:
  k: v
---
apiVersion: v1
kind: Endpoints
metadata:
  name: demo
  annotations: {leader: node-a}
subsets: []
---
apiVersion: v1
kind: Pod
metadata:
  name: demo-0
  labels: {app: demo}
spec:
  containers:
  - name: main
    image: busybox
`;
      assert.match(await kubectl(['apply', '-f', '-'], manifests), /lease.coordination.k8s.io\/demo created[\s\S]*pod\/demo-0 created/);
      assert.match(await kubectl(['apply', '-f', '-'], manifests.replace('k: v', 'k: w')), /configmap\/demo configured/);
      assert.equal(await kubectl(['get', 'configmap', 'demo', '-o', 'jsonpath={.data.k}']), 'w');
      assert.equal(await kubectl(['get', 'lease', 'demo', '-o', 'jsonpath={.spec.holderIdentity}']), 'node-a');
      await kubectl(['patch', 'lease', 'demo', '--type=merge', '-p', '{"spec":{"holderIdentity":"node-b"}}']);
      assert.equal(await kubectl(['get', 'lease', 'demo', '-o', 'jsonpath={.spec.holderIdentity}']), 'node-b');
      await kubectl(['patch', 'endpoints', 'demo', '-p', '{"metadata":{"annotations":{"leader":"node-b"}}}']);
      assert.equal(await kubectl(['get', 'endpoints', 'demo', '-o', 'jsonpath={.metadata.annotations.leader}']), 'node-b');
      await kubectl(['label', 'pod', 'demo-0', 'role=primary']);
      assert.equal(await kubectl(['get', 'pods', '-l', 'role=primary', '-o', 'jsonpath={.items[*].metadata.name}']), 'demo-0');
      await kubectl(['patch', 'configmap', 'demo', '--type=json', '-p', '[{"op":"add","path":"/data/x","value":"1"}]']);
      assert.equal(await kubectl(['get', 'configmap', 'demo', '-o', 'jsonpath={.data.x}']), '1');
      assert.match(await kubectl(['get', 'leases,configmaps,endpoints,pods']), /demo/);
      for (const what of ['lease/demo', 'configmap/demo', 'endpoints/demo', 'pod/demo-0']) assert.match(await kubectl(['delete', what]), /deleted/);
      assert.equal(await kubectl(['get', 'configmaps', '-o', 'jsonpath={.items[*].metadata.name}']), '');
      assert.deepEqual(fake.unknownRequests.map((r) => `${r.method} ${r.path}`), []);
    },
  );
});
