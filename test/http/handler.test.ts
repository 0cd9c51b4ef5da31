import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHealthHandler, judge, PROBES, type HealthStatus } from '../../src/http/index.js';
import { loadPromClient } from '../../src/http/prom.js';
import { ConfigError } from '../../src/core/errors.js';

const leader: HealthStatus = { identity: 'a', role: 'leader', holder: 'a', token: 7n, isValid: true, loopStalled: false, backend: 'memory', key: 'leader', ttlMs: 15000, lastRenewAgeMs: 1500, transitions: 1, renewFailures: 0 };
const staleLeader: HealthStatus = { ...leader, isValid: false, lastRenewAgeMs: 16000 };
const follower: HealthStatus = { identity: 'b', role: 'follower', holder: 'a', token: 7n, isValid: false, loopStalled: false, backend: 'memory', key: 'leader' };
const candidate: HealthStatus = { identity: 'b', role: 'candidate', isValid: false, loopStalled: false };
const observer: HealthStatus = { identity: 'o', role: 'observer', holder: 'a', isValid: false, loopStalled: false };
const stalled: HealthStatus = { ...follower, loopStalled: true };
const stopped: HealthStatus = { identity: 'b', role: 'stopped', isValid: false, loopStalled: false };

/** A plain-object source whose status the test sets. */
class Source extends EventEmitter {
  current: HealthStatus = leader;
  status(): HealthStatus {
    return this.current;
  }
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('probe verdicts (what load balancers and Kubernetes rely on)', () => {
  const table: Array<[string, HealthStatus, Record<string, boolean>]> = [
    ['valid leader', leader, { leader: true, primary: true, master: true, replica: false, readiness: true, liveness: true }],
    ['leader past validUntil', staleLeader, { leader: false, primary: false, master: false, replica: false, readiness: false, liveness: true }],
    ['follower of a live leader', follower, { leader: false, primary: false, replica: true, readiness: true, liveness: true }],
    ['candidate with no leader known (e.g. an ex-primary cut off from the DCS)', candidate, { leader: false, replica: false, readiness: false, liveness: true }],
    ['observer with a known leader', observer, { leader: false, replica: true, readiness: true, liveness: true }],
    ['stalled loop', stalled, { replica: true, readiness: false, liveness: false, health: false }],
    ['stopped elector', stopped, { leader: false, replica: false, readiness: false, liveness: true }],
  ];
  for (const [name, status, expected] of table) {
    it(name, () => {
      for (const [probe, want] of Object.entries(expected)) {
        assert.equal(judge(probe as (typeof PROBES)[number], status), want, `${probe} for ${name}`);
      }
    });
  }
  it('a leader is never a replica and liveness never depends on leadership', () => {
    for (const s of [leader, staleLeader, follower, candidate, observer, stopped]) {
      assert.ok(!(judge('leader', s) && judge('replica', s)));
      assert.equal(judge('liveness', s), true);
    }
  });
});

describe('createHealthHandler over node:http', () => {
  const source = new Source();
  let server: Server;
  let url: string;
  const handler = createHealthHandler(source);
  before(async () => ({ server, url } = await listen(handler)));
  after(async () => {
    handler.close();
    await new Promise((r) => server.close(r));
  });

  it('answers 200/503 per role as the leader moves, with the status as JSON', async () => {
    source.current = leader;
    for (const p of ['/leader', '/primary', '/master']) assert.equal((await fetch(url + p)).status, 200, p);
    assert.equal((await fetch(url + '/replica')).status, 503);
    source.current = follower;
    for (const p of ['/leader', '/primary', '/master']) assert.equal((await fetch(url + p)).status, 503, p);
    const r = await fetch(url + '/replica');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { identity: 'b', role: 'follower', holder: 'a', token: '7', isValid: false, loopStalled: false, backend: 'memory', key: 'leader' });
  });

  it('a stale leader and a cut-off ex-leader are not ready (dropped from the Service) but stay live; followers are ready', async () => {
    source.current = staleLeader;
    assert.equal((await fetch(url + '/readiness')).status, 503);
    assert.equal((await fetch(url + '/liveness')).status, 200);
    source.current = follower;
    assert.equal((await fetch(url + '/readiness')).status, 200);
    source.current = candidate; // its term ended, it sees no leader: it may still carry role=primary
    assert.equal((await fetch(url + '/readiness')).status, 503);
  });

  it('/health carries the token as a decimal string and goes 503 when the loop stalls', async () => {
    source.current = { ...leader, token: 2n ** 64n + 1n };
    const r = await fetch(url + '/health');
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { token: string }).token, '18446744073709551617');
    source.current = stalled;
    assert.equal((await fetch(url + '/health')).status, 503);
    assert.equal((await fetch(url + '/liveness')).status, 503);
  });

  it('HEAD has the status and no body; trailing slash and query are ignored; other methods get 405', async () => {
    source.current = leader;
    const head = await fetch(url + '/leader/?x=1', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await fetch(url + '/leader', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD, OPTIONS');
    assert.equal((await fetch(url + '/nope')).status, 404);
  });

  it('issue 16 (13): Patroni haproxy checks work unchanged — OPTIONS/HEAD answer the status code, `/` is `/primary`', async () => {
    // Patroni's haproxy template: `option httpchk OPTIONS /primary` + `http-check expect status 200`;
    // confd/other templates use `HEAD /` or `GET /`, where `/` means `/primary`.
    for (const [status, want] of [[leader, 200], [follower, 503]] as const) {
      source.current = status;
      for (const method of ['OPTIONS', 'HEAD', 'GET']) {
        for (const path of ['/primary', '/']) {
          const r = await fetch(url + path, { method });
          assert.equal(r.status, want, `${method} ${path} as ${status.role}`);
          const text = await r.text();
          if (method !== 'GET') assert.equal(text, '', `${method} ${path} has no body`);
        }
      }
      const replica = await fetch(url + '/replica', { method: 'OPTIONS' });
      assert.equal(replica.status, want === 200 ? 503 : 200);
      await replica.text();
    }
  });

  it('issue 16 (13): under Express (next given) `/` stays the application\'s', async () => {
    const h = createHealthHandler(source, { metrics: false });
    const s = await listen((req, res) => h(req, res, () => res.writeHead(299).end()));
    try {
      assert.equal((await fetch(s.url + '/')).status, 299);
    } finally {
      s.server.close();
      h.close();
    }
  });

  it('a status() that throws gives 500 with the reason, never a crash', async () => {
    const broken = createHealthHandler({ status: () => { throw new Error('boom'); } }, { metrics: false });
    const s = await listen(broken);
    try {
      const r = await fetch(s.url + '/readiness');
      assert.equal(r.status, 500);
      assert.deepEqual(await r.json(), { error: 'boom' });
    } finally {
      await new Promise((r) => s.server.close(r));
    }
  });
});

describe('Express-style use', () => {
  it('calls next() for paths it does not own and answers its own', async () => {
    const handler = createHealthHandler({ status: () => follower }, { metrics: false });
    const calls: string[] = [];
    // What Express does: the middleware sees the path relative to its mount point.
    const s = await listen((req, res) => {
      handler(req, res, () => {
        calls.push(req.url ?? '');
        res.end('app');
      });
    });
    try {
      assert.equal(await (await fetch(s.url + '/api/users')).text(), 'app');
      assert.equal((await fetch(s.url + '/replica')).status, 200);
      assert.equal((await fetch(s.url + '/metrics')).status, 404);
      assert.deepEqual(calls, ['/api/users']);
    } finally {
      await new Promise((r) => s.server.close(r));
    }
  });

  it('rejects a source without status() with a ConfigError', () => {
    assert.throws(() => createHealthHandler({} as never), ConfigError);
    assert.throws(() => createHealthHandler({ status: () => leader }, { resolver: {} as never }), /resolver/);
  });
});

describe('/metrics (prom-client)', () => {
  it('exposes the leaderlock metrics labelled by backend and key, fed by elector events', async () => {
    const source = new Source();
    source.current = { ...leader, transitions: 0 };
    const resolver = new EventEmitter();
    const handler = createHealthHandler(source, { resolver: resolver as never });
    const s = await listen(handler);
    try {
      source.emit('elected', {});
      source.emit('renew', { ok: true, durationMs: 3 });
      source.emit('renew', { ok: false, durationMs: 1200, error: new Error('x') });
      resolver.emit('switch', { to: new URL('https://127.0.0.1') }); // the first pick is no switch
      resolver.emit('switch', { from: new URL('https://127.0.0.1'), to: new URL('https://127.0.0.2'), reason: 'ECONNREFUSED' });
      const r = await fetch(s.url + '/metrics');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
      const text = await r.text();
      const labels = '{backend="memory",key="leader"}';
      assert.match(text, new RegExp(`leaderlock_is_leader${escape(labels)} 1`));
      assert.match(text, new RegExp(`leaderlock_term_token${escape(labels)} 7`));
      assert.match(text, new RegExp(`leaderlock_transitions_total${escape(labels)} 1`));
      assert.match(text, new RegExp(`leaderlock_renew_failures_total${escape(labels)} 1`));
      assert.match(text, new RegExp(`leaderlock_last_renew_age_seconds${escape(labels)} 1.5`));
      assert.match(text, new RegExp(`leaderlock_resolver_switches_total${escape(labels)} 1`));
      assert.match(text, /leaderlock_renew_duration_seconds_count\{backend="memory",key="leader"\} 2/);
      assert.match(text, /leaderlock_renew_duration_seconds_bucket\{le="0.005",backend="memory",key="leader"\} 1/);
      // The gauge follows the status at scrape time: the leader moved away.
      source.current = follower;
      const after = await (await fetch(s.url + '/metrics')).text();
      assert.match(after, new RegExp(`leaderlock_is_leader${escape(labels)} 0`));
      // After close() events no longer count.
      handler.close();
      source.emit('elected', {});
      assert.equal(source.listenerCount('elected'), 0);
      assert.equal(resolver.listenerCount('switch'), 0);
    } finally {
      await new Promise((r) => s.server.close(r));
    }
  });

  it('plain sources: counters from status() fields, switches from a numeric counter; a user registry is used', async () => {
    const prom = await import('prom-client');
    const registry = new prom.Registry();
    const st = { ...follower, transitions: 3, renewFailures: 2 };
    const resolver = { switches: 4 };
    const handler = createHealthHandler({ status: () => st }, { registry, resolver });
    try {
      const m = await handler.metrics();
      assert.ok(m);
      assert.match(m.body, /leaderlock_transitions_total\{backend="memory",key="leader"\} 3/);
      assert.match(m.body, /leaderlock_renew_failures_total\{backend="memory",key="leader"\} 2/);
      assert.match(m.body, /leaderlock_resolver_switches_total\{backend="memory",key="leader"\} 4/);
      resolver.switches = 6;
      st.renewFailures = 5;
      const text = await registry.metrics();
      assert.match(text, /leaderlock_resolver_switches_total\{backend="memory",key="leader"\} 6/);
      assert.match(text, /leaderlock_renew_failures_total\{backend="memory",key="leader"\} 5/);
    } finally {
      handler.close();
    }
  });

  it('two electors can share one registry, one series each', async () => {
    const prom = await import('prom-client');
    const registry = new prom.Registry();
    const a = createHealthHandler({ status: () => ({ ...leader, key: 'k1' }) }, { registry });
    const b = createHealthHandler({ status: () => ({ ...follower, key: 'k2' }) }, { registry });
    try {
      await a.metrics();
      const text = (await b.metrics())!.body;
      assert.match(text, /leaderlock_is_leader\{backend="memory",key="k1"\} 1/);
      assert.match(text, /leaderlock_is_leader\{backend="memory",key="k2"\} 0/);
    } finally {
      a.close();
      b.close();
    }
  });

  it('prom-client absent resolves to undefined (the handler then answers 501 with how to install it)', async () => {
    assert.equal(await loadPromClient('leaderlock-no-such-package-for-test'), undefined);
  });
});

describe('/metrics built in, no prom-client (issue 12)', () => {
  /** Feeds one source the same events and returns its exposition text. */
  async function scrape(registry?: import('prom-client').Registry): Promise<{ contentType: string; body: string }> {
    const source = new Source();
    source.current = { ...leader, key: 'a"b\\c', transitions: 0 };
    const resolver = new EventEmitter();
    const handler = createHealthHandler(source, registry ? { resolver: resolver as never, registry } : { resolver: resolver as never });
    try {
      source.emit('elected', {});
      for (const ms of [0.3, 3, 3, 40, 1200, 60_000]) source.emit('renew', { ok: ms < 1000, durationMs: ms });
      resolver.emit('switch', { from: new URL('https://127.0.0.1'), to: new URL('https://127.0.0.2'), reason: 'x' });
      const m = await handler.metrics();
      assert.ok(m);
      return m;
    } finally {
      handler.close();
    }
  }

  it('serves the same exposition text as prom-client, without prom-client', async () => {
    const builtin = await scrape();
    const prom = await import('prom-client');
    const viaProm = await scrape(new prom.Registry());
    assert.equal(builtin.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    // prom-client orders metrics by registration and series by first sight, as we do; compare line sets
    // so a harmless difference in metric order would not hide a real difference in content.
    const lines = (t: string) => t.split('\n').filter(Boolean).sort();
    assert.deepEqual(lines(builtin.body), lines(viaProm.body));
    const labels = 'backend="memory",key="a\\"b\\\\c"';
    assert.ok(builtin.body.includes(`leaderlock_is_leader{${labels}} 1\n`), builtin.body);
    assert.ok(builtin.body.includes(`leaderlock_renew_duration_seconds_bucket{le="0.005",${labels}} 3\n`), builtin.body);
    assert.ok(builtin.body.includes(`leaderlock_renew_duration_seconds_bucket{le="+Inf",${labels}} 6\n`), builtin.body);
    assert.ok(builtin.body.includes(`leaderlock_renew_duration_seconds_count{${labels}} 6\n`), builtin.body);
    assert.ok(builtin.body.includes(`leaderlock_renew_failures_total{${labels}} 2\n`), builtin.body);
    assert.ok(builtin.body.includes('# TYPE leaderlock_renew_duration_seconds histogram\n'), builtin.body);
  });
});

function escape(s: string): string {
  return s.replace(/[{}]/g, (c) => `\\${c}`);
}
