import { describe, it, before, after } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient, endpointsResolver, execTokenSource, fileTokenSource, staticResolver, type WatchEvent } from '../../../src/backends/kubernetes/index.js';
import { FakeKubeApiServer, VirtualClock } from '../../../src/testing/index.js';
import { AbortedError, BackendUnavailableError, DeadlineExceededError, ForbiddenError, LeaderLockError } from '../../../src/core/errors.js';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
const lease = (name: string, holder = 'a') => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name }, spec: { holderIdentity: holder, leaseDurationSeconds: 15 } });

function causeCodes(err: unknown): string[] {
  const out: string[] = [];
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e.code) out.push(e.code);
  return out;
}

describe('KubeClient', () => {
  let fake: FakeKubeApiServer;
  let dir: string;
  let fakeToken = '';
  const clients: KubeClient[] = [];
  const track = (c: KubeClient) => (clients.push(c), c);

  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 2, bookmarkIntervalMs: 100 });
    fakeToken = fake.token;
    dir = await mkdtemp(join(tmpdir(), 'leaderlock-kube-client-'));
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates, reads, CAS-updates and deletes; Status bodies become typed errors with status and reason', async () => {
    const c = track(new KubeClient(fake.clientOptions()));
    const created = await c.request<{ metadata: { resourceVersion: string } }>({ method: 'POST', path: LEASES, body: lease('crud') });
    assert.equal(created.status, 201);
    const dup = await c.request({ method: 'POST', path: LEASES, body: lease('crud'), accept: [409] });
    assert.equal(dup.status, 409);
    assert.equal((dup.body as { reason: string }).reason, 'AlreadyExists');
    const stale = { ...lease('crud', 'b'), metadata: { name: 'crud', resourceVersion: '1' } };
    await assert.rejects(c.request({ method: 'PUT', path: `${LEASES}/crud`, body: stale }), (err: LeaderLockError) => {
      assert.ok(err instanceof LeaderLockError);
      assert.equal(err.status, 409);
      assert.equal(err.reason, 'Conflict');
      assert.match(err.message, /the object has been modified/);
      return true;
    });
    const ok = { ...lease('crud', 'b'), metadata: { name: 'crud', resourceVersion: created.body.metadata.resourceVersion } };
    assert.equal((await c.request({ method: 'PUT', path: `${LEASES}/crud`, body: ok })).status, 200);
    const patched = await c.request<{ metadata: { labels: Record<string, string> } }>({ method: 'PATCH', path: `${LEASES}/crud`, body: { metadata: { labels: { role: 'primary' } } } });
    assert.deepEqual(patched.body.metadata.labels, { role: 'primary' });
    assert.equal((await c.request({ method: 'DELETE', path: `${LEASES}/crud` })).status, 200);
    await assert.rejects(c.request({ method: 'GET', path: `${LEASES}/crud` }), (err: LeaderLockError) => err.status === 404 && err.reason === 'NotFound');
    assert.equal((await c.request({ method: 'GET', path: `${LEASES}/crud`, accept: [404] })).status, 404);
  });

  it('403 is a ForbiddenError with the Status reason', async () => {
    const c = track(new KubeClient(fake.clientOptions()));
    const lift = fake.deny({ verb: 'update', resource: 'leases' });
    try {
      await c.request({ method: 'POST', path: LEASES, body: lease('denied') });
      await assert.rejects(c.request({ method: 'PUT', path: `${LEASES}/denied`, body: lease('denied') }), (err: unknown) => {
        assert.ok(err instanceof ForbiddenError);
        assert.equal(err.status, 403);
        assert.equal(err.reason, 'Forbidden');
        assert.match(err.message, /cannot update resource "leases"/);
        return true;
      });
    } finally {
      lift();
    }
  });

  it('re-reads the token file on 401 and retries once; a still-refused token is a ForbiddenError without the token in it', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'secret-old-token\n');
    fake.setTokens(['secret-old-token']);
    const c = track(new KubeClient({ ...fake.clientOptions(), token: undefined, tokenFile }));
    assert.equal((await c.request({ method: 'GET', path: LEASES })).status, 200);
    // Kubelet rotates the projected token; the server stops accepting the old one.
    await writeFile(tokenFile, 'secret-new-token\n');
    fake.setTokens(['secret-new-token']);
    const mark = fake.requests.length;
    assert.equal((await c.request({ method: 'GET', path: LEASES })).status, 200);
    assert.deepEqual(fake.requests.slice(mark).map((r) => r.status), [401, 200]);
    fake.setTokens(['something-else']);
    await assert.rejects(c.request({ method: 'GET', path: LEASES }), (err: unknown) => {
      assert.ok(err instanceof ForbiddenError);
      assert.equal(err.status, 401);
      assert.ok(!err.message.includes('secret-new-token'));
      return true;
    });
    fake.setTokens([fakeToken]);
  });

  it('uses an exec credential plugin token and runs the plugin again when it expires or is refused', async () => {
    const counter = join(dir, 'exec-count');
    const plugin = join(dir, 'plugin.mjs');
    await writeFile(counter, '0');
    await writeFile(
      plugin,
      `import { readFileSync, writeFileSync } from 'node:fs';
const n = Number(readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1;
writeFileSync(${JSON.stringify(counter)}, String(n));
if (!process.env.KUBERNETES_EXEC_INFO) process.exit(3);
const exp = new Date(Date.now() + 12_000).toISOString();
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'exec-token-' + n, expirationTimestamp: exp } }));
`,
    );
    const kubeconfig = join(dir, 'exec-kubeconfig');
    const base = fake.kubeconfig();
    await writeFile(kubeconfig, base.replace(/user:\n\s+token: .*\n/, `user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: ${process.execPath}\n        args: [${JSON.stringify(plugin)}]\n        interactiveMode: Never\n`));
    const clock = new VirtualClock({ startDate: new Date() }); // the plugin stamps real wall time
    fake.setTokens(['exec-token-1', 'exec-token-2', 'exec-token-3']);
    try {
      const c = track(await KubeClient.fromKubeconfig(kubeconfig, undefined, { clock }));
      await c.request({ method: 'GET', path: LEASES });
      await c.request({ method: 'GET', path: LEASES });
      const auths = () => fake.requests.filter((r) => r.path === LEASES).length;
      assert.ok(auths() > 0);
      const { readFile } = await import('node:fs/promises');
      assert.equal(await readFile(counter, 'utf8'), '1', 'cached while valid');
      // 12 s lifetime minus the 10 s margin: well after that on our clock the plugin runs again.
      await clock.advance(10_000);
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(await readFile(counter, 'utf8'), '2');
      // Refused (revoked): the plugin runs again at once.
      fake.setTokens(['exec-token-3']);
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(await readFile(counter, 'utf8'), '3');
    } finally {
      fake.setTokens([fakeToken]);
    }
  });

  it('verifies the certificate against servername even when dialing a bare IP', async () => {
    const wrong = track(new KubeClient({ ...fake.clientOptions(), servername: 'wrong.example', resolver: staticResolver([fake.node(0).url]), requestTimeoutMs: 1000 }));
    await assert.rejects(wrong.request({ method: 'GET', path: LEASES }), (err: unknown) => {
      assert.ok(err instanceof BackendUnavailableError);
      assert.ok(causeCodes(err).includes('ERR_TLS_CERT_ALTNAME_INVALID'), causeCodes(err).join());
      return true;
    });
    const noCa = track(new KubeClient({ ...fake.clientOptions(), ca: undefined, resolver: staticResolver([fake.node(0).url]), requestTimeoutMs: 1000 }));
    await assert.rejects(noCa.request({ method: 'GET', path: LEASES }), BackendUnavailableError);
    const right = track(new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(0).url]) }));
    assert.equal((await right.request({ method: 'GET', path: LEASES })).status, 200);
  });

  it('honours Retry-After on 429 within the deadline, and fails at once when it does not fit', async () => {
    const c = track(new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(1).url]) }));
    await c.request({ method: 'GET', path: LEASES });
    Object.assign(fake.node(1).faults, { serverError: 429, retryAfterSeconds: 1 });
    const healer = setTimeout(() => fake.node(1).heal(), 300);
    try {
      const t0 = performance.now();
      assert.equal((await c.request({ method: 'GET', path: LEASES, timeoutMs: 3000 })).status, 200);
      assert.ok(performance.now() - t0 >= 900, 'waited as told');
      Object.assign(fake.node(1).faults, { serverError: 503, retryAfterSeconds: 5 });
      const t1 = performance.now();
      await assert.rejects(c.request({ method: 'GET', path: LEASES, timeoutMs: 1000 }), (err: LeaderLockError) => err instanceof BackendUnavailableError && err.status === 503);
      assert.ok(performance.now() - t1 < 500, 'did not sleep past the deadline');
    } finally {
      clearTimeout(healer);
      fake.node(1).heal();
    }
  });

  it('times out a blackholed server with DeadlineExceededError and reconnects on a fresh pool afterwards; abort is AbortedError', async () => {
    const c = track(new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(0).url]) }));
    await c.request({ method: 'GET', path: LEASES });
    fake.node(0).blackhole();
    try {
      await assert.rejects(c.request({ method: 'GET', path: LEASES, timeoutMs: 300 }), DeadlineExceededError);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      await assert.rejects(c.request({ method: 'GET', path: LEASES, signal: ac.signal, timeoutMs: 5000 }), AbortedError);
    } finally {
      fake.node(0).heal();
    }
    const t0 = performance.now();
    assert.equal((await c.request({ method: 'GET', path: LEASES, timeoutMs: 2000 })).status, 200);
    assert.ok(performance.now() - t0 < 1000);
  });

  it('watches: events from a resourceVersion, bookmarks, and 410 Expired after compaction', async () => {
    const c = track(new KubeClient(fake.clientOptions()));
    const created = await c.request<{ metadata: { resourceVersion: string } }>({ method: 'POST', path: LEASES, body: lease('watched') });
    const rv = created.body.metadata.resourceVersion;
    const ac = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of c.watch({ path: LEASES, query: { resourceVersion: rv, allowWatchBookmarks: true, fieldSelector: 'metadata.name=watched' }, signal: ac.signal })) {
        seen.push(ev);
        if (seen.some((e) => e.type === 'BOOKMARK') && seen.some((e) => e.type === 'DELETED')) ac.abort();
      }
    })();
    await c.request({ method: 'PATCH', path: `${LEASES}/watched`, body: { spec: { holderIdentity: 'b' } } });
    await c.request({ method: 'POST', path: LEASES, body: lease('other') });
    await c.request({ method: 'DELETE', path: `${LEASES}/watched` });
    const bound = setTimeout(() => ac.abort(), 3000);
    await done;
    clearTimeout(bound);
    const types = seen.filter((e) => e.type !== 'BOOKMARK').map((e) => e.type);
    assert.deepEqual(types, ['MODIFIED', 'DELETED']);
    assert.ok(seen.some((e) => e.type === 'BOOKMARK'));

    fake.store.compact();
    const ac2 = new AbortController();
    const events: WatchEvent[] = [];
    for await (const ev of c.watch({ path: LEASES, query: { resourceVersion: rv }, signal: ac2.signal })) events.push(ev);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'ERROR');
    assert.deepEqual([(events[0]!.object as { code: number }).code, (events[0]!.object as { reason: string }).reason], [410, 'Expired']);
  });

  it('watch: connecting rotates past a dead endpoint; a silent stream ends with DeadlineExceededError after idleTimeoutMs', async () => {
    const c = track(new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(0).url, fake.node(1).url]) }));
    await fake.node(0).down();
    try {
      const ac = new AbortController();
      const t0 = performance.now();
      const events: WatchEvent[] = [];
      await assert.rejects(
        (async () => {
          for await (const ev of c.watch({ path: LEASES, query: { fieldSelector: 'metadata.name=never' }, signal: ac.signal, idleTimeoutMs: 300 })) events.push(ev);
        })(),
        DeadlineExceededError,
      );
      const took = performance.now() - t0;
      assert.ok(took >= 250 && took < 3000, `took ${took} ms`);
      assert.equal(events.length, 0);
      assert.equal(c.stats.endpoint, fake.node(1).url.href);
    } finally {
      await fake.node(0).up();
    }
  });

  it('close() ends in-flight requests and is idempotent; a closed client rejects with AbortedError', async () => {
    const c = new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(0).url]) });
    await c.request({ method: 'GET', path: LEASES });
    fake.node(0).blackhole();
    try {
      const inflight = c.request({ method: 'GET', path: LEASES, timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await Promise.all([c.close(), c.close()]);
      await assert.rejects(inflight, LeaderLockError);
      assert.ok(performance.now() - t0 < 1000, 'did not wait for the deadline');
      await assert.rejects(c.request({ method: 'GET', path: LEASES }), AbortedError);
    } finally {
      fake.node(0).heal();
    }
  });

  it('rejects bad explicit options at construction, listing every problem', () => {
    assert.throws(
      () => new KubeClient({ server: 'http://127.0.0.1:1', token: 'a', tokenFile: '/x', requestTimeoutMs: -1 }),
      (err: { problems?: string[] }) => err.problems?.length === 3,
    );
  });
});

describe('KubeClient: the request deadline covers the token and the first API server list (issue 13)', () => {
  let fake: FakeKubeApiServer;
  let dir: string;
  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 2 });
    dir = await mkdtemp(join(tmpdir(), 'leaderlock-kube-deadline-'));
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Rejection and how long it took (real time); gives up after 6 s so a hang fails instead of hanging. */
  async function timed(p: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
    const t0 = performance.now();
    let bound: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<'hung'>((r) => (bound = setTimeout(() => r('hung'), 6000)));
    try {
      const outcome = await Promise.race([p.then(() => 'resolved' as const), hung]);
      assert.fail(`expected a rejection, the request ${outcome} after ${Math.round(performance.now() - t0)} ms`);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      return { err, ms: performance.now() - t0 };
    } finally {
      clearTimeout(bound);
    }
  }

  it('a hung exec credential plugin: a 300 ms request settles in time with DeadlineExceededError', async () => {
    // A plugin that never answers (the plugin's own limit is 30 s).
    const plugin = join(dir, 'hung-plugin.mjs');
    await writeFile(plugin, 'setTimeout(() => {}, 60_000);\n');
    const tokenSource = execTokenSource({ command: process.execPath, args: [plugin] }, { timeoutMs: 5_000 });
    const c = new KubeClient({ ...fake.clientOptions(), token: undefined, tokenSource, requestTimeoutMs: 300 });
    try {
      const { err, ms } = await timed(c.request({ method: 'GET', path: LEASES }));
      assert.ok(err instanceof DeadlineExceededError, String(err));
      assert.match((err as Error).message, /credential \(token file or exec plugin\) was not ready within the request.s deadline of 300 ms/);
      assert.ok(ms < 1500, `settled after ${Math.round(ms)} ms`);
      // The caller's signal still wins over the deadline.
      const ac = new AbortController();
      const slow = new KubeClient({ ...fake.clientOptions(), token: undefined, tokenSource, requestTimeoutMs: 10_000 });
      const pending = timed(slow.request({ method: 'GET', path: LEASES, signal: ac.signal }));
      setTimeout(() => ac.abort(), 50);
      const aborted = await pending;
      assert.ok(aborted.err instanceof AbortedError, String(aborted.err));
      assert.ok(aborted.ms < 1500, `aborted after ${Math.round(aborted.ms)} ms`);
      await slow.close();
    } finally {
      await c.close();
    }
  });

  it('a hung token file read (a FIFO nobody writes): DeadlineExceededError within the deadline', async () => {
    const fifo = join(dir, 'token-fifo');
    await promisify(execFile)('mkfifo', [fifo]);
    const c = new KubeClient({ ...fake.clientOptions(), token: undefined, tokenSource: fileTokenSource(fifo), requestTimeoutMs: 300 });
    try {
      const { err, ms } = await timed(c.request({ method: 'GET', path: LEASES }));
      assert.ok(err instanceof DeadlineExceededError, String(err));
      assert.ok(ms < 1500, `settled after ${Math.round(ms)} ms`);
    } finally {
      // Unblock the reader (a libuv worker thread is stuck in open()) so the process can exit.
      await writeFile(fifo, fake.token);
      await c.close();
    }
  });

  it('endpointsResolver: the first list wait is clamped to the request deadline', async () => {
    // Every API server answers after 3 s: the list read (refreshTimeoutMs 2 s, twice) would take 4 s.
    for (const n of fake.nodes) n.faults.latencyMs = 3000;
    const c = new KubeClient({ ...fake.clientOptions(), resolver: endpointsResolver({ pick: () => 0 }), requestTimeoutMs: 300 });
    c.on('warning', () => undefined);
    try {
      const { err, ms } = await timed(c.request({ method: 'GET', path: LEASES }));
      assert.ok(err instanceof DeadlineExceededError, String(err));
      assert.ok(ms < 1500, `settled after ${Math.round(ms)} ms`);
    } finally {
      for (const n of fake.nodes) n.heal();
      await c.close();
    }
  });
});
