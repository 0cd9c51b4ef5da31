import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliIo } from '../../src/cli/cli.js';
import type { ChildLike } from '../../src/cli/supervise.js';
import { FakeConsulServer, FakeKubeApiServer } from '../../src/testing/index.js';

/**
 * The CLI builds each backend's lock from its flags (dynamic import of the backend entry) and the
 * commands work against it: Consul and Kubernetes through their fakes, in-process.
 */
function io(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const spawned: NodeJS.ProcessEnv[] = [];
  const value: CliIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env,
    signals: new EventEmitter() as never,
    // A command that checks it got a token, then exits 3 on its own.
    spawn: (_cmd, _args, childEnv) => {
      spawned.push(childEnv);
      const c = new EventEmitter() as ChildLike & EventEmitter;
      Object.assign(c, { pid: 1, kill: () => true });
      queueMicrotask(() => c.emit('exit', 3, null));
      return c;
    },
  };
  return { out, err, spawned, io: value };
}

describe('CLI against Consul (FakeConsulServer)', () => {
  let consul: FakeConsulServer;
  before(async () => (consul = await FakeConsulServer.start()));
  after(async () => consul.close());

  it('run leads, passes the token, exits with the command code and releases; status sees it free again', async () => {
    const backend = `consul://${consul.address}`;
    const r = io();
    const code = await runCli(['run', '--backend', backend, '--key', 'service/cli/leader', '--identity', 'c1', '--quiet', '--', 'daemon'], r.io);
    assert.equal(code, 3, r.err.join('\n'));
    assert.match(r.spawned[0]!.LEADERLOCK_TOKEN ?? '', /^\d+$/);
    const s = io();
    assert.equal(await runCli(['status', '--backend', backend, '--key', 'service/cli/leader', '--json'], s.io), 0, s.err.join('\n'));
    assert.equal((JSON.parse(s.out[0]!) as { holder: unknown }).holder, null);
    assert.deepEqual(consul.unknownRequests, []);
  });

  it('bare "consul" uses CONSUL_HTTP_ADDR; an ACL-less token flag is passed through', async () => {
    const s = io({ CONSUL_HTTP_ADDR: consul.address });
    assert.equal(await runCli(['status', '--backend', 'consul', '--key', 'service/cli/leader', '--token', 'anything'], s.io), 0, s.err.join('\n'));
    assert.deepEqual(s.out, ['no leader']);
  });
});

describe('CLI against Kubernetes (FakeKubeApiServer, kubeconfig)', () => {
  let kube: FakeKubeApiServer;
  let dir: string;
  let kubeconfig: string;
  before(async () => {
    kube = await FakeKubeApiServer.start({ nodes: 1 });
    dir = mkdtempSync(join(tmpdir(), 'leaderlock-cli-'));
    kubeconfig = join(dir, 'config');
    writeFileSync(kubeconfig, kube.kubeconfig({ namespace: 'team' }));
  });
  after(async () => {
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['lease', 'configmap'] as const) {
    it(`run on kubernetes:${kind} leads with a token and releases; status reads the object`, async () => {
      const backend = `kubernetes:${kind}`;
      const r = io();
      const code = await runCli(['run', '--backend', backend, '--kubeconfig', kubeconfig, '--key', `team/cli-${kind}`, '--identity', 'pod-a', '--quiet', '--', 'daemon'], r.io);
      assert.equal(code, 3, r.err.join('\n'));
      assert.match(r.spawned[0]!.LEADERLOCK_TOKEN ?? '', /^\d+$/);
      const s = io();
      assert.equal(await runCli(['status', '--backend', backend, '--kubeconfig', kubeconfig, '--namespace', 'team', '--key', `cli-${kind}`, '--json'], s.io), 0, s.err.join('\n'));
      const j = JSON.parse(s.out[0]!) as { holder: string | null; live: boolean };
      assert.ok(j.holder === null || j.live === false, `released: ${s.out[0]}`);
      assert.deepEqual(kube.unknownRequests, []);
    });
  }

  it('RBAC denial exits 77 with one line naming the problem', async () => {
    const allow = kube.deny({ resource: 'leases', namespace: 'team' });
    try {
      const r = io();
      assert.equal(await runCli(['status', '--backend', 'kubernetes', '--kubeconfig', kubeconfig, '--key', 'team/denied'], r.io), 77);
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, /^leaderlock: permission denied: /);
    } finally {
      allow();
    }
  });

  it('a --key namespace that contradicts --namespace is a usage error', async () => {
    const r = io();
    assert.equal(await runCli(['status', '--backend', 'kubernetes', '--kubeconfig', kubeconfig, '--namespace', 'a', '--key', 'b/x'], r.io), 64);
    assert.match(r.err[0]!, /names namespace b but --namespace is a/);
  });
});
