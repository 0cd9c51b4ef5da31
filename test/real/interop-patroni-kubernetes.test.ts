import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient, KubernetesLock } from '../../src/backends/kubernetes/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { FakeKubeApiServer } from '../../src/testing/index.js';
import { patroniBanner, patroniDcs, type PatroniCluster as Cluster } from './harness/patroni-dcs.js';

/**
 * Issue 16 (items 9, 10, 12) with Patroni 4.1.x's Kubernetes DCS (test/peers/patroni/dcs.py, through a
 * kubeconfig) next to KubernetesLock, on FakeKubeApiServer (kube-apiserver is issue 14's tier).
 * ConfigMap mode, Patroni's default. Needs the build script's Patroni venv (scripts/real/build.sh patroni).
 */

let fake: FakeKubeApiServer;
let dir: string;
let api: KubeClient;
const locks: KubernetesLock[] = [];
let n = 0;

async function patroni<T>(scope: string, name: string, cmd: string, ...args: string[]): Promise<T> {
  // Async on purpose: the fake API server answers from this process's event loop.
  return patroniDcs<T>({ dcs: 'kubernetes', context: 'fake', scope, name, ttl: 10 }, cmd, args, { timeoutMs: 60_000, env: { ...process.env, KUBECONFIG: join(dir, 'config') } });
}

function lock(scope: string): KubernetesLock {
  const l = new KubernetesLock({ client: api, scope, ttlMs: 10_000 });
  l.on('warning', () => undefined);
  locks.push(l);
  return l;
}

/** Patroni 4 reads a failover object whose three fields were cleared as "no request". */
const noRequest = (f: Cluster['failover']): boolean => f === null || (f.leader === null && f.member === null && f.scheduled_at === null);

before(async () => {
  console.log(`# peers: ${patroniBanner()} (kubernetes DCS, ConfigMaps); server: FakeKubeApiServer`);
  fake = await FakeKubeApiServer.start({ nodes: 1 });
  dir = mkdtempSync(join(tmpdir(), 'leaderlock-patroni-k8s-'));
  writeFileSync(join(dir, 'config'), fake.kubeconfig(), { mode: 0o600 });
  api = new KubeClient({ ...fake.clientOptions(), requestTimeoutMs: 8000 });
});
after(async () => {
  await Promise.allSettled(locks.map((l) => l.close()));
  await api?.close();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('issue 16: leaderlock next to Patroni 4 on Kubernetes (FakeKubeApiServer)', () => {
  it('(9) Patroni sees the leader object we create (its labels), cannot take it while we hold it, and takes it after our release', async () => {
    const scope = `pk${++n}`;
    const l = lock(scope);
    const term = (await l.acquire('side-0'))!;
    assert.ok(term);
    assert.equal((await patroni<Cluster>(scope, 'pg-9', 'cluster')).leader, 'side-0', 'Patroni lists it with its label selector');
    assert.equal((await patroni<{ ok: boolean }>(scope, 'pg-1', 'ha_acquire')).ok, false, 'Patroni\'s HA loop sees a live leader: no acquire');
    assert.ok(await l.release(term));
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-1', 'ha_acquire')).ok, 'and takes it once released');
  });

  it('(10) `patronictl switchover --candidate pg-2 --scheduled`: only pg-2 takes the leader object; Patroni then sees no request', async () => {
    const scope = `pf${++n}`;
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'acquire')).ok);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'switchover', 'pg-0', 'pg-2', '2026-01-01T00:00:00+00:00')).ok);
    assert.ok((await patroni<{ ok: boolean }>(scope, 'pg-0', 'delete_leader')).ok);
    assert.equal(await lock(scope).acquire('pg-1'), undefined, 'pg-1 holds back');
    const term = await lock(scope).acquire('pg-2');
    assert.ok(term);
    let c: Cluster | undefined;
    for (let i = 0; i < 20; i++) {
      c = await patroni<Cluster>(scope, 'pg-9', 'cluster');
      if (noRequest(c.failover)) break;
    }
    assert.equal(c!.leader, 'pg-2');
    assert.ok(noRequest(c!.failover), `request cleared, scheduled_at included: ${JSON.stringify(c!.failover)}`);
    // Our handover after a leftover schedule: Patroni reads a plain switchover request.
    await api.request({ method: 'PATCH', path: `/api/v1/namespaces/default/configmaps/${scope}-failover`, contentType: 'application/merge-patch+json', body: { metadata: { annotations: { scheduled_at: '2030-01-01T00:00:00+00:00' } } } });
    assert.ok(await locks.at(-1)!.release(term!, { successor: 'pg-1' }));
    assert.deepEqual((await patroni<Cluster>(scope, 'pg-9', 'cluster')).failover, { leader: 'pg-2', member: 'pg-1', scheduled_at: null });
  });

  it('(12) a sidecar taking its Patroni member pod\'s name is refused with a clear error', async () => {
    const scope = `pm${++n}`;
    await api.request({
      method: 'POST',
      path: '/api/v1/namespaces/default/pods',
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${scope}-0`, labels: { application: 'patroni', 'cluster-name': scope } }, spec: { containers: [{ name: 'pg', image: 'patroni' }] } },
    });
    assert.ok((await patroni<{ ok: boolean }>(scope, `${scope}-0`, 'touch_member')).ok, 'Patroni writes its member status on its pod');
    await assert.rejects(lock(scope).acquire(`${scope}-0`), (e: unknown) => e instanceof ConfigError && /Patroni member/.test(e.message));
    assert.ok(await lock(scope).acquire(`${scope}-0-sidecar`));
  });
});
