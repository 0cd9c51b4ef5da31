import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { inspect, promisify } from 'node:util';
import { ConsulLock } from '../../src/backends/consul/index.js';
import { EtcdLock } from '../../src/backends/etcd/index.js';
import { KubeClient } from '../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../src/backends/kubernetes/lock.js';
import { BackendUnavailableError, DeadlineExceededError, ForbiddenError, LeaderLockError, safeCause } from '../../src/core/errors.js';
import { FakeConsulServer } from '../../src/testing/index.js';
import { FakeKubeApiServer } from '../../src/testing/fake-kube/index.js';
import { ETCDCTL_BIN, startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';

/**
 * Issue 13: a secret configured on a backend (Consul ACL token, Kubernetes bearer token, etcd
 * password) must not be readable from any error the backend throws, including through the `cause`
 * chain that `util.inspect(err)` prints in full (a Consul 403 printed its `x-consul-token` header).
 */

/** Everything a user could print or log from the error: inspect at full depth, and JSON of own fields. */
function assertClean(err: unknown, secrets: readonly string[], what: string): void {
  assert.ok(err instanceof LeaderLockError, `${what}: a LeaderLockError, got ${String(err)}`);
  const printed = inspect(err, { depth: Infinity, showHidden: true, getters: false });
  for (const s of secrets) assert.ok(!printed.includes(s), `${what}: util.inspect(err) contains the secret ${JSON.stringify(s)}:\n${printed.slice(0, 4000)}`);
  assert.ok(printed.length < 20_000, `${what}: ${printed.length} characters of inspect output (a request object in the cause chain?)`);
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

describe('safeCause', () => {
  it('keeps class, message, codes and nested causes; drops requests, headers, metadata and credential fields', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1 Authorization: Bearer abc.def'), { code: 'ECONNREFUSED', errno: -111 });
    class ResponseError extends Error {}
    const mid = Object.assign(new ResponseError('ACL not found', { cause: root }), {
      isResponse: true,
      statusCode: 403,
      token: 'tok-1',
      response: { req: { headers: { 'x-consul-token': 'tok-2' } } },
      metadata: { get: () => ['tok-3'] },
    });
    const err = new ForbiddenError('denied', { backend: 'consul', status: 403, cause: mid });
    const cause = err.cause as ResponseError & { statusCode?: number; isResponse?: boolean; cause?: Error & { code?: string; errno?: number } };
    assert.ok(cause instanceof ResponseError);
    assert.equal(cause.message, 'ACL not found');
    assert.equal(cause.statusCode, 403);
    assert.equal(cause.isResponse, true);
    assert.equal(cause.cause?.code, 'ECONNREFUSED');
    assert.equal(cause.cause?.errno, -111);
    assert.match(cause.cause?.message ?? '', /Bearer \[redacted\]/);
    assertClean(err, ['tok-1', 'tok-2', 'tok-3', 'abc.def'], 'synthetic');
  });

  it('handles cycles, AggregateError, non-Error causes and keeps a LeaderLockError cause as is', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    a.cause = a;
    assert.doesNotThrow(() => inspect(new BackendUnavailableError('x', { cause: a })));
    const agg = new AggregateError([new Error('?token=s3cret'), 'password=x'], 'all failed');
    const err = new BackendUnavailableError('x', { cause: agg });
    assertClean(err, ['s3cret'], 'aggregate');
    assert.equal(safeCause('Authorization: Bearer zzz'), 'Authorization: Bearer [redacted]');
    assert.deepEqual(safeCause({ headers: { authorization: 'x' }, status: 500 }), { status: 500 });
    // An AbortSignal's reason (DOMException: getters that throw on a copy) still inspects.
    const ac = new AbortController();
    ac.abort();
    const aborted = new BackendUnavailableError('x', { cause: ac.signal.reason });
    assert.match(inspect(aborted), /AbortError/);
    assert.equal((aborted.cause as Error).name, 'AbortError');
    const inner = new DeadlineExceededError('late');
    assert.equal(new BackendUnavailableError('x', { cause: inner }).cause, inner);
  });
});

describe('Consul: no error carries the ACL token', () => {
  let fake: FakeConsulServer;
  const SECRET = 'consul-secret-7f3a9c1e-acl-token';
  const READ_ONLY = 'consul-readonly-55aa2b9d-token';
  before(async () => {
    fake = await FakeConsulServer.start({ acl: { tokens: { [READ_ONLY]: 'read' } } });
  });
  after(() => fake.close());

  const lockWith = (token: string, requestTimeoutMs = 2000) => new ConsulLock({ address: fake.address, token, ttlMs: 10_000, requestTimeoutMs, env: {} });

  it('403 (unknown token, read-only token), 5xx, refused and deadline errors', async () => {
    const cases: Array<[string, string, () => Promise<unknown>, (e: unknown) => boolean]> = [];
    const unknown = lockWith(SECRET);
    const readOnly = lockWith(READ_ONLY);
    const slow = lockWith(SECRET, 300);
    try {
      cases.push(['403 unknown token', SECRET, () => unknown.acquire('a'), (e) => e instanceof ForbiddenError]);
      cases.push(['403 read-only token', READ_ONLY, () => readOnly.acquire('a'), (e) => e instanceof ForbiddenError]);
      for (const [what, secret, run, kind] of cases) {
        const err = await caught(run());
        assert.ok(kind(err), `${what}: ${String(err)}`);
        assertClean(err, [secret], what);
      }
      const lift = fake.addFault({ kind: 'error', status: 500 });
      const e500 = await caught(unknown.get());
      lift();
      assert.ok(e500 instanceof BackendUnavailableError, String(e500));
      assertClean(e500, [SECRET], '500');
      const liftHole = fake.addFault({ kind: 'blackhole', match: { path: '/v1/kv' } });
      const late = await caught(slow.get());
      liftHole();
      assert.ok(late instanceof DeadlineExceededError, String(late));
      assertClean(late, [SECRET], 'deadline');
      await fake.down();
      const refused = await caught(unknown.get());
      await fake.up();
      assert.ok(refused instanceof BackendUnavailableError, String(refused));
      assertClean(refused, [SECRET], 'refused');
    } finally {
      await Promise.allSettled([unknown.close(), readOnly.close(), slow.close()]);
    }
  });
});

describe('Kubernetes: no error carries the bearer token', () => {
  let fake: FakeKubeApiServer;
  const SECRET = 'kube-secret-9d8c7b6a-bearer-token';
  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 1 });
  });
  after(() => fake.close());

  it('401 (token refused), 403 (RBAC) and an unreachable server', async () => {
    const refused = new KubeClient({ ...fake.clientOptions(), token: SECRET, requestTimeoutMs: 3000 });
    const good = new KubeClient({ ...fake.clientOptions(), requestTimeoutMs: 3000 });
    const dead = new KubeClient({ ...fake.clientOptions(), server: 'https://127.0.0.1:1', token: SECRET, requestTimeoutMs: 1000 });
    for (const c of [refused, good, dead]) c.on('warning', () => undefined);
    const lift = fake.deny({ resource: 'leases', name: 'secret-denied' });
    const locks = [
      new KubernetesLock({ client: refused, kind: 'Lease', name: 'secret-401', ttlMs: 3000 }),
      new KubernetesLock({ client: good, kind: 'Lease', name: 'secret-denied', ttlMs: 3000 }),
      new KubernetesLock({ client: dead, kind: 'Lease', name: 'secret-dead', ttlMs: 3000, requestTimeoutMs: 1000 }),
    ];
    try {
      const e401 = await caught(locks[0]!.acquire('a'));
      assert.ok(e401 instanceof ForbiddenError && e401.status === 401, String(e401));
      assertClean(e401, [SECRET], '401');
      const e403 = await caught(locks[1]!.acquire('a'));
      assert.ok(e403 instanceof ForbiddenError && e403.status === 403, String(e403));
      assertClean(e403, [fake.token], '403');
      const eDead = await caught(locks[2]!.acquire('a'));
      assert.ok(eDead instanceof BackendUnavailableError, String(eDead));
      assertClean(eDead, [SECRET], 'unreachable');
    } finally {
      lift();
      await Promise.allSettled(locks.map((l) => l.close()));
      await Promise.allSettled([refused, good, dead].map((c) => c.close()));
    }
  });
});

describe('etcd: no error carries the password', () => {
  let cluster: EtcdCluster;
  const SECRET = 'etcd-secret-41c2e0f8-password';
  before(async () => {
    cluster = await startEtcd();
    const ctl = (...args: string[]) => promisify(execFile)(ETCDCTL_BIN, ['--endpoints', cluster.endpoints[0]!, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    await ctl('user', 'add', 'root', '--new-user-password', 'rootpw');
    await ctl('user', 'add', 'app', '--new-user-password', SECRET);
    await ctl('role', 'add', 'app');
    await ctl('role', 'grant-permission', 'app', '--prefix=true', 'readwrite', '/app/');
    await ctl('user', 'grant-role', 'app', 'app');
    await ctl('auth', 'enable');
  });
  after(() => cluster?.stop());

  it('wrong password, permission denied and an unreachable endpoint', async () => {
    const opts = { ttlMs: 5000, requestTimeoutMs: 3000, username: 'app' };
    const wrong = new EtcdLock({ ...opts, endpoints: cluster.endpoints, key: '/app/leader', password: `${SECRET}-wrong` });
    const denied = new EtcdLock({ ...opts, endpoints: cluster.endpoints, key: '/other/leader', password: SECRET });
    const dead = new EtcdLock({ ...opts, endpoints: ['http://127.0.0.1:1'], key: '/app/leader', password: SECRET, requestTimeoutMs: 1000 });
    try {
      const eWrong = await caught(wrong.acquire('a'));
      assert.ok(eWrong instanceof ForbiddenError, String(eWrong));
      assertClean(eWrong, [SECRET], 'wrong password');
      const eDenied = await caught(denied.acquire('a'));
      assert.ok(eDenied instanceof ForbiddenError, String(eDenied));
      assertClean(eDenied, [SECRET], 'permission denied');
      const eDead = await caught(dead.acquire('a'));
      assert.ok(eDead instanceof BackendUnavailableError, String(eDead));
      assertClean(eDead, [SECRET], 'unreachable');
    } finally {
      await Promise.allSettled([wrong.close(), denied.close(), dead.close()]);
    }
  });
});
