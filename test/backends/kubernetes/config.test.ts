import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterConfig, isInCluster, kubeconfigConfig, kubeconfigPaths, KubeClient } from '../../../src/backends/kubernetes/index.js';
import { ConfigError } from '../../../src/core/errors.js';
import { FakeKubeApiServer, VirtualClock } from '../../../src/testing/index.js';

describe('kubernetes connection config', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'leaderlock-kube-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('in-cluster: service env (IPv6 bracketed), servername kubernetes.default.svc, namespace file, token re-read every 60 s', async () => {
    const sa = join(dir, 'sa');
    await mkdir(sa);
    await writeFile(join(sa, 'token'), 'tok-1\n');
    await writeFile(join(sa, 'ca.crt'), 'PEM');
    await writeFile(join(sa, 'namespace'), 'team-a\n');
    const clock = new VirtualClock();
    const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
    assert.equal(isInCluster(env), true);
    const cfg = inClusterConfig({ env, serviceAccountDir: sa, clock });
    assert.equal(cfg.server.href, 'https://[fd00::1]/');
    assert.equal(cfg.servername, 'kubernetes.default.svc');
    assert.equal(cfg.namespace, 'team-a');
    assert.equal(cfg.ca, 'PEM');
    assert.equal(await cfg.tokenSource.get(), 'tok-1');
    await writeFile(join(sa, 'token'), 'tok-2\n');
    await clock.advance(59_000);
    assert.equal(await cfg.tokenSource.get(), 'tok-1', 'cached for 60 s');
    await clock.advance(1_000);
    assert.equal(await cfg.tokenSource.get(), 'tok-2');
    await writeFile(join(sa, 'token'), 'tok-3\n');
    cfg.tokenSource.invalidate();
    assert.equal(await cfg.tokenSource.get(), 'tok-3', 're-read after invalidate (a 401)');
  });

  it('in-cluster: missing env and token are one ConfigError listing both', () => {
    assert.throws(
      () => inClusterConfig({ env: {}, serviceAccountDir: join(dir, 'nowhere') }),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 3,
    );
  });

  it('kubeconfig: current context, CA data, token, context namespace, tls-server-name, relative files', async () => {
    await writeFile(join(dir, 'ca.pem'), 'CA-FROM-FILE');
    const path = join(dir, 'kc');
    await writeFile(
      path,
      `apiVersion: v1
kind: Config
current-context: b
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: ${Buffer.from('CA-DATA').toString('base64')}
- name: c2
  cluster:
    server: https://api.example.com:443
    certificate-authority: ca.pem
    tls-server-name: kube.internal
users:
- name: u1
  user:
    token: tok
contexts:
- name: a
  context: {cluster: c1, user: u1}
- name: b
  context: {cluster: c2, user: u1, namespace: ops}
`,
    );
    const b = kubeconfigConfig({ path });
    assert.equal(b.server.href, 'https://api.example.com/');
    assert.equal(b.servername, 'kube.internal');
    assert.equal(b.ca, 'CA-FROM-FILE');
    assert.equal(b.namespace, 'ops');
    assert.equal(await b.tokenSource.get(), 'tok');
    const a = kubeconfigConfig({ path, context: 'a' });
    assert.equal(a.servername, '10.0.0.1');
    assert.equal(a.ca, 'CA-DATA');
    assert.equal(a.namespace, 'default');
    assert.throws(() => kubeconfigConfig({ path, context: 'zzz' }), ConfigError);
  });

  it('kubeconfig: insecure-skip-tls-verify, basic auth and auth-provider are refused together, with hints', async () => {
    const path = join(dir, 'kc-bad');
    await writeFile(
      path,
      `current-context: x
clusters: [{name: c, cluster: {server: "http://1.2.3.4", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {username: admin, password: pw, auth-provider: {name: gcp}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
`,
    );
    assert.throws(
      () => kubeconfigConfig({ path }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems.length, 4);
        assert.ok(!err.message.includes('pw'));
        assert.match(err.message, /always verifies the API server certificate/);
        return true;
      },
    );
    assert.throws(() => kubeconfigConfig({ path: join(dir, 'none') }), /no kubeconfig found .*: check the path/);
  });

  it('$KUBECONFIG is a path list', () => {
    assert.deepEqual(kubeconfigPaths({ KUBECONFIG: `/a:/b` }), ['/a', '/b']);
  });

  it('KubeClient.fromKubeconfig reaches the fake through the kubeconfig host as servername', async () => {
    const fake = await FakeKubeApiServer.start({ nodes: 1 });
    const path = join(dir, 'kc-fake');
    await writeFile(path, fake.kubeconfig({ namespace: 'team-b' }));
    const client = await KubeClient.fromKubeconfig(path);
    try {
      assert.equal(client.namespace, 'team-b');
      assert.equal(client.servername, '127.0.0.1');
      assert.equal((await client.request({ method: 'GET', path: '/api/v1/namespaces/team-b/configmaps' })).status, 200);
    } finally {
      await client.close();
      await fake.close();
    }
  });
});
