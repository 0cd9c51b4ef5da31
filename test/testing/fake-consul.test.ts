import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Consul from 'consul';
import { FakeConsulServer, VirtualClock } from '../../src/testing/index.js';

/**
 * Fidelity of FakeConsulServer, checked with the `consul` npm client itself and raw fetch (python-consul
 * cannot be installed here). Shapes and status codes follow Consul's HTTP API documentation.
 */

interface Kv {
  Key: string;
  Value: string | null;
  Session?: string;
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
  Flags: number;
}
// The slice of the untyped client these tests call.
interface Client {
  kv: {
    get(o: string | { key: string; recurse?: boolean }): Promise<Kv | Kv[] | undefined>;
    keys(o: { key: string; separator?: string }): Promise<string[]>;
    set(o: { key: string; value: string; cas?: number; acquire?: string; release?: string; flags?: number }): Promise<boolean>;
    del(o: string | { key: string; cas?: number; recurse?: boolean }): Promise<boolean>;
  };
  session: {
    create(o?: { ttl?: string; lockdelay?: string; behavior?: string; checks?: string[]; name?: string }): Promise<{ ID: string }>;
    info(id: string): Promise<Record<string, unknown> | undefined>;
    list(): Promise<Array<Record<string, unknown>>>;
    node(node: string): Promise<Array<Record<string, unknown>>>;
    renew(id: string): Promise<unknown>;
    destroy(id: string): Promise<unknown>;
  };
  agent: {
    service: { register(o: Record<string, unknown>): Promise<unknown>; deregister(id: string): Promise<unknown>; list(): Promise<Record<string, { Tags: string[] }>> };
    check: { pass(o: { id: string; note?: string }): Promise<unknown>; fail(o: { id: string; note?: string }): Promise<unknown> };
  };
  catalog: { service: { nodes(o: { service: string; tag?: string }): Promise<Array<{ ServiceID: string; ServiceTags: string[]; ServicePort: number }>> } };
  health: { service(o: { service: string; passing?: boolean }): Promise<Array<{ Service: { ID: string }; Checks: Array<{ CheckID: string; Status: string; Output: string }> }>> };
  destroy(): void;
}

describe('FakeConsulServer', () => {
  let clock: VirtualClock;
  let fake: FakeConsulServer;
  let consul: Client;
  beforeEach(async () => {
    clock = new VirtualClock();
    fake = await FakeConsulServer.start({ clock });
    consul = new Consul({ host: '127.0.0.1', port: fake.port }) as unknown as Client;
  });
  afterEach(async () => {
    consul.destroy();
    await fake.close();
  });
  const raw = (path: string, init?: RequestInit): Promise<Response> => fetch(`${fake.url}${path}`, init);
  // The consul client resolves a JSON `false` body as undefined (papi drops falsy values).
  const bool = async (p: Promise<unknown>): Promise<boolean> => (await p) === true;

  it('KV through the consul client: set/get/keys/delete, cas, flags, recurse, raw', async () => {
    assert.equal(await bool(consul.kv.set({ key: 'app/a', value: 'one', flags: 42 })), true);
    assert.equal(await bool(consul.kv.set({ key: 'app/b/c', value: 'two' })), true);
    const a = (await consul.kv.get('app/a')) as Kv;
    assert.equal(a.Value, 'one');
    assert.equal(a.Flags, 42);
    assert.equal(a.CreateIndex, a.ModifyIndex);
    assert.equal(await bool(consul.kv.set({ key: 'app/a', value: 'x', cas: 0 })), false, 'cas=0 only creates');
    assert.equal(await bool(consul.kv.set({ key: 'app/a', value: 'x', cas: a.ModifyIndex + 100 })), false);
    assert.equal(await bool(consul.kv.set({ key: 'app/a', value: 'x', cas: a.ModifyIndex })), true);
    const a2 = (await consul.kv.get('app/a')) as Kv;
    assert.equal(a2.CreateIndex, a.CreateIndex);
    assert.ok(a2.ModifyIndex > a.ModifyIndex);
    assert.deepEqual(((await consul.kv.get({ key: 'app/', recurse: true })) as Kv[]).map((e) => e.Key), ['app/a', 'app/b/c']);
    assert.deepEqual(await consul.kv.keys({ key: 'app/', separator: '/' }), ['app/a', 'app/b/']);
    assert.equal(await (await raw('/v1/kv/app/a?raw')).text(), 'x');
    assert.equal(await consul.kv.get('missing'), undefined);
    const miss = await raw('/v1/kv/missing');
    assert.equal(miss.status, 404);
    assert.ok(Number(miss.headers.get('x-consul-index')) >= 1, 'X-Consul-Index on a 404 too');
    assert.equal(await bool(consul.kv.del({ key: 'app/a', cas: 1 })), false);
    assert.equal(await bool(consul.kv.del({ key: 'app/a', cas: a2.ModifyIndex })), true);
    assert.equal(await bool(consul.kv.del({ key: 'app/', recurse: true })), true);
    assert.equal(await consul.kv.get({ key: 'app/', recurse: true }), undefined);
    assert.deepEqual(fake.unknownRequests, []);
  });

  it('sessions: Consul defaults, explicit lock-delay, TTL bounds, info/list/node, renew 404', async () => {
    const { ID: def } = await consul.session.create();
    const info = (await consul.session.info(def))!;
    assert.deepEqual(info.NodeChecks, ['serfHealth'], 'no checks given → serfHealth');
    assert.equal(info.LockDelay, 15e9, 'default lock-delay 15 s, in ns');
    assert.equal(info.Behavior, 'release');
    // What the consul client does with a falsy lockdelay: it drops it, so Consul's 15 s applies.
    const { ID: dropped } = await consul.session.create({ lockdelay: '', ttl: '10s' });
    assert.equal((await consul.session.info(dropped))!.LockDelay, 15e9);
    const { ID: explicit } = await consul.session.create({ lockdelay: '0s', ttl: '10s', behavior: 'delete', checks: [] });
    const ex = (await consul.session.info(explicit))!;
    assert.equal(ex.LockDelay, 0);
    assert.deepEqual(ex.NodeChecks, []);
    assert.equal(ex.TTL, '10s');
    assert.equal((await consul.session.list()).length, 3);
    assert.equal((await consul.session.node('fake-node')).length, 3);
    await assert.rejects(consul.session.create({ ttl: '5s' }), (err: Error & { statusCode?: number }) => err.statusCode === 500 && /Invalid Session TTL '5000000000', must be between \[10s=24h0m0s\]/.test(err.message));
    await assert.rejects(consul.session.create({ ttl: '90000s' }), (err: Error & { statusCode?: number }) => err.statusCode === 500 && /Invalid Session TTL '90000000000000'/.test(err.message));
    await assert.rejects(consul.session.create({ behavior: 'explode' }), (err: Error & { statusCode?: number }) => err.statusCode === 500 && /Invalid Behavior setting 'explode'/.test(err.message));
    await assert.rejects(consul.session.renew('00000000-0000-0000-0000-000000000000'), (err: Error & { statusCode?: number }) => err.statusCode === 404);
    assert.equal(await consul.session.info('00000000-0000-0000-0000-000000000000'), undefined);
    // Numeric LockDelay: below 1000 means seconds, otherwise nanoseconds (Consul's rule).
    const r = await raw('/v1/session/create', { method: 'PUT', body: JSON.stringify({ LockDelay: 3 }) });
    const { ID } = (await r.json()) as { ID: string };
    assert.equal(fake.session(ID)?.lockDelayMs, 3000);
  });

  it('?acquire / ?release: LockIndex, Session, invalid session → 500, cas ignored next to acquire', async () => {
    const { ID: s1 } = await consul.session.create({ ttl: '10s' });
    const { ID: s2 } = await consul.session.create({ ttl: '10s' });
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'a', acquire: s1, cas: 999 })), true, 'Consul applies acquire and ignores cas');
    let e = (await consul.kv.get('l')) as Kv;
    assert.equal(e.Session, s1);
    assert.equal(e.LockIndex, 1);
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'b', acquire: s2 })), false, 'held by another session');
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'a2', acquire: s1 })), true, 'the holder may update');
    assert.equal(((await consul.kv.get('l')) as Kv).LockIndex, 1, 're-acquire by the holder does not bump LockIndex');
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'x', release: s2 })), false);
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'x', release: s1 })), true);
    e = (await consul.kv.get('l')) as Kv;
    assert.equal(e.Session, undefined);
    assert.equal(await bool(consul.kv.set({ key: 'l', value: 'b', acquire: s2 })), true);
    assert.equal(((await consul.kv.get('l')) as Kv).LockIndex, 2);
    await assert.rejects(consul.kv.set({ key: 'l2', value: 'v', acquire: 'no-such-session' }), (err: Error & { statusCode?: number }) => err.statusCode === 500 && /Invalid session/.test(err.message));
  });

  it('invalidates sessions at sessionTtlFactor × TTL on its clock, per behavior, with lock-delay', async () => {
    const { ID: rel } = await consul.session.create({ ttl: '10s', behavior: 'release', lockdelay: '5s' });
    const { ID: del } = await consul.session.create({ ttl: '10s', behavior: 'delete', lockdelay: '0s' });
    await consul.kv.set({ key: 'r', value: 'v', acquire: rel });
    await consul.kv.set({ key: 'd', value: 'v', acquire: del });
    const ended: string[] = [];
    fake.on('session-ended', (e) => ended.push(`${e.id === rel ? 'rel' : 'del'}:${e.reason}`));
    await clock.advance(19_999);
    assert.equal(fake.sessions().length, 2, 'default factor 2: alive until 2 × TTL');
    await consul.session.renew(del);
    await clock.advance(1);
    assert.deepEqual(ended, ['rel:ttl']);
    assert.equal(((await consul.kv.get('r')) as Kv).Session, undefined, 'behavior=release keeps the key, unheld');
    const { ID: other } = await consul.session.create({ ttl: '0s' });
    assert.equal(await bool(consul.kv.set({ key: 'r', value: 'w', acquire: other })), false, 'lock-delay 5 s');
    await clock.advance(5_000);
    assert.equal(await bool(consul.kv.set({ key: 'r', value: 'w', acquire: other })), true);
    await clock.advance(20_000);
    assert.equal(await consul.kv.get('d'), undefined, 'behavior=delete removes the key');
    assert.equal(await bool(consul.kv.set({ key: 'd', value: 'w', acquire: other })), true, 'no lock-delay with 0s');
    fake.sessionTtlFactor = 1;
    const { ID: quick } = await consul.session.create({ ttl: '10s' });
    await clock.advance(10_000);
    assert.equal(fake.session(quick), undefined, 'factor 1: Consul’s earliest invalidation');
  });

  it('blocking queries: wait on the fake’s clock, wake on change (also a delete), X-Consul-Index', async () => {
    await consul.kv.set({ key: 'w', value: '1' });
    const first = await raw('/v1/kv/w');
    const index = Number(first.headers.get('x-consul-index'));
    const pending = raw(`/v1/kv/w?index=${index}&wait=30s`);
    await fake.waitForRequest((r) => r.query.index === String(index));
    await clock.advance(29_000);
    assert.equal(fake.parkedRequests, 1, 'still waiting before `wait` passes');
    await clock.advance(1_000);
    const timedOut = await pending;
    assert.equal(Number(timedOut.headers.get('x-consul-index')), index, 'same index after the wait');
    const woken = raw(`/v1/kv/w?index=${index}`);
    await fake.waitForRequest((r) => r.query.index === String(index) && r.search === `index=${index}`);
    await consul.kv.del('w');
    const r = await woken;
    assert.equal(r.status, 404);
    assert.ok(Number(r.headers.get('x-consul-index')) > index, 'the tombstone index wakes the query');
    assert.equal((await raw('/v1/kv/w?index=x')).status, 400);
    assert.equal((await raw('/v1/kv/w?index=1&wait=soon')).status, 400);
  });

  it('ACL tokens: 403 Permission denied / ACL not found; header, bearer or ?token=', async () => {
    fake.setAcl({ tokens: { rw: 'write', ro: 'read' } });
    const denied = await raw('/v1/kv/x');
    assert.equal(denied.status, 403);
    assert.equal(await denied.text(), 'Permission denied');
    assert.equal(await (await raw('/v1/kv/x', { headers: { 'X-Consul-Token': 'nope' } })).text(), 'ACL not found');
    assert.equal((await raw('/v1/kv/x', { headers: { 'X-Consul-Token': 'ro' } })).status, 404);
    assert.equal((await raw('/v1/kv/x', { method: 'PUT', body: 'v', headers: { 'X-Consul-Token': 'ro' } })).status, 403);
    assert.equal((await raw('/v1/kv/x', { method: 'PUT', body: 'v', headers: { Authorization: 'Bearer rw' } })).status, 200);
    assert.equal((await raw('/v1/kv/x?token=rw')).status, 200);
    const withToken = new Consul({ host: '127.0.0.1', port: fake.port, defaults: { token: 'rw' } }) as unknown as Client;
    assert.equal(((await withToken.kv.get('x')) as Kv).Value, 'v');
    withToken.destroy();
  });

  it('faults: down = refused, latency on its clock, 5xx, apply-then-drop, blackhole; unknown routes are loud', async () => {
    await fake.down();
    await assert.rejects(raw('/v1/kv/x'), (err: Error & { cause?: { code?: string } }) => err.cause?.code === 'ECONNREFUSED');
    await fake.up();
    assert.equal((await raw('/v1/kv/x')).status, 404);

    fake.addFault({ kind: 'latency', latencyMs: 2000, times: 1 });
    let done = false;
    const slow = raw('/v1/status/leader').then((r) => ((done = true), r));
    await fake.waitForRequest((r) => r.path === '/v1/status/leader');
    await clock.advance(1999);
    assert.equal(done, false);
    await clock.advance(1);
    assert.equal((await slow).status, 200);

    fake.addFault({ kind: 'error', status: 503, match: { method: 'PUT' }, times: 1 });
    assert.equal((await raw('/v1/kv/y', { method: 'PUT', body: 'v' })).status, 503);
    assert.equal(fake.kv('y'), undefined, 'an injected error is not applied');

    fake.addFault({ kind: 'drop-response', match: { path: '/v1/kv/y' }, times: 1 });
    await assert.rejects(raw('/v1/kv/y', { method: 'PUT', body: 'v' }));
    assert.equal(fake.kv('y')?.value.toString(), 'v', 'applied, though the client never heard back');

    fake.addFault({ kind: 'blackhole', times: 1 });
    await assert.rejects(raw('/v1/kv/y', { signal: AbortSignal.timeout(200) }));

    const unknown = await raw('/v1/acl/bootstrap', { method: 'PUT' });
    assert.equal(unknown.status, 404);
    assert.match(await unknown.text(), /unknown route PUT \/v1\/acl\/bootstrap/);
    assert.equal(fake.unknownRequests.length, 1);
    assert.equal(fake.requests.length, 6, 'every request that reached the fake is recorded');
  });

  it('agent services and TTL checks, read back through catalog and health', async () => {
    await consul.agent.service.register({ name: 'pg', id: 'pg-0', tags: ['primary', 'master'], port: 5432, check: { ttl: '30s', checkid: 'pg-0-ttl', name: 'alive' } });
    await consul.agent.service.register({ name: 'pg', id: 'pg-1', tags: ['replica'], port: 5433, check: { ttl: '30s' } });
    assert.deepEqual((await consul.catalog.service.nodes({ service: 'pg', tag: 'master' })).map((n) => n.ServiceID), ['pg-0']);
    assert.equal((await consul.health.service({ service: 'pg', passing: true })).length, 0, 'TTL checks start critical');
    await consul.agent.check.pass({ id: 'pg-0-ttl', note: 'ok' });
    await consul.agent.check.pass({ id: 'service:pg-1' });
    const healthy = await consul.health.service({ service: 'pg', passing: true });
    assert.deepEqual(healthy.map((h) => h.Service.ID), ['pg-0', 'pg-1']);
    assert.deepEqual(healthy[0]!.Checks.map((c) => c.CheckID), ['serfHealth', 'pg-0-ttl']);
    await clock.advance(30_000);
    assert.equal((await consul.health.service({ service: 'pg', passing: true })).length, 0, 'TTL ran out');
    await consul.agent.check.fail({ id: 'pg-0-ttl' });
    await assert.rejects(consul.agent.check.pass({ id: 'nope' }), (err: Error & { statusCode?: number }) => err.statusCode === 404);
    await consul.agent.service.deregister('pg-1');
    assert.deepEqual(Object.keys(await consul.agent.service.list()), ['pg-0']);
    await assert.rejects(consul.agent.service.deregister('pg-1'), (err: Error & { statusCode?: number }) => err.statusCode === 404);
    assert.deepEqual(fake.unknownRequests, []);
  });
});
