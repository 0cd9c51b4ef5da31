import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Consul from 'consul';
import { ConsulServiceRegistration, patroniServiceName } from '../../../src/backends/consul/index.js';
import { ConfigError } from '../../../src/core/errors.js';
import { EventEmitter } from 'node:events';
import { ConsulWorld } from './harness.js';

interface HealthRow {
  Service: { ID: string; Tags: string[] };
  Checks: Array<{ CheckID: string; Status: string }>;
}

describe('ConsulServiceRegistration', () => {
  let w: ConsulWorld;
  let consul: { health: { service(o: { service: string; tag?: string; passing?: boolean }): Promise<HealthRow[]> }; destroy(): void };
  beforeEach(async () => {
    w = await ConsulWorld.start();
    // Read back through the `consul` npm client, the way service discovery would.
    consul = new Consul({ host: '127.0.0.1', port: w.fake.port }) as unknown as typeof consul;
  });
  afterEach(async () => {
    consul.destroy();
    await w.close();
  });

  const reg = (identity: string, extra: Partial<ConstructorParameters<typeof ConsulServiceRegistration>[0]> = {}): ConsulServiceRegistration =>
    new ConsulServiceRegistration({ client: w.client(), service: 'pg', identity, port: 5432, clock: w.clock, checkTtlMs: 30_000, ...extra });

  it('tags follow the role: primary + master while leading (legacyMasterTag), replica otherwise', async () => {
    const r = reg('pg-0', { tags: ['pg16'] });
    await r.start();
    assert.deepEqual(w.fake.services()[0]?.tags, ['pg16', 'replica']);
    await r.setRole('primary');
    assert.deepEqual(w.fake.services()[0]?.tags, ['pg16', 'primary', 'master']);
    const masters = await consul.health.service({ service: 'pg', tag: 'master', passing: true });
    assert.deepEqual(masters.map((m) => m.Service.ID), ['pg-pg-0']);
    await r.setRole('replica');
    assert.deepEqual(w.fake.services()[0]?.tags, ['pg16', 'replica']);
    assert.equal((await consul.health.service({ service: 'pg', tag: 'master' })).length, 0, 'master only while primary');
    await r.stop();
  });

  it('issue 16 (11): with `scope`, registers as Patroni 4 does — normalised service name, id <scope>/<name> — and deregisters', async () => {
    assert.equal(patroniServiceName('Batman_DB.eu west'), 'batman-db-eu-west');
    assert.equal(patroniServiceName('pg/é'), 'pgu0047u0233');
    const r = new ConsulServiceRegistration({ client: w.client(), scope: 'Batman_DB', identity: 'pg-0', port: 5432, clock: w.clock, checkTtlMs: 30_000 });
    assert.equal(r.id, 'Batman_DB/pg-0');
    await r.start('primary');
    const rows = await consul.health.service({ service: 'batman-db', tag: 'primary', passing: true });
    assert.deepEqual(rows.map((m) => m.Service.ID), ['Batman_DB/pg-0']);
    await r.stop();
    assert.equal(w.fake.services().length, 0, 'deregistered (the id is URL-encoded)');
    assert.throws(() => new ConsulServiceRegistration({ client: w.client(), scope: 'a', service: 'b', identity: 'x' }), ConfigError);
  });

  it('without legacyMasterTag the primary carries only primary', async () => {
    const r = reg('pg-0', { legacyMasterTag: false });
    await r.start('primary');
    assert.deepEqual(w.fake.services()[0]?.tags, ['primary']);
    await r.stop();
  });

  it('keeps the TTL check passing on its clock; it goes critical when passes stop', async () => {
    const r = reg('pg-0');
    await r.start();
    const status = (): string | undefined => w.fake.checks().find((c) => c.id === r.checkId)?.status;
    assert.equal(status(), 'passing');
    for (let i = 0; i < 6; i++) await w.advance(10_000);
    assert.equal(status(), 'passing', 'passed every checkTtl/3');
    const passes = w.fake.requests.filter((q) => decodeURIComponent(q.path) === `/v1/agent/check/pass/${r.checkId}`).length;
    assert.ok(passes >= 6, `${passes} passes`);
    // The process is wedged (its passes no longer arrive): Consul marks the instance critical.
    r.on('warning', () => undefined);
    w.fake.addFault({ kind: 'error', status: 500, match: { path: '/v1/agent/check/pass/' } });
    await w.advance(31_000);
    assert.equal(status(), 'critical');
    assert.equal((await consul.health.service({ service: 'pg', passing: true })).length, 0);
    w.fake.clearFaults();
    await r.stop();
    assert.equal(w.fake.services().length, 0, 'deregistered on stop');
    await r.stop();
  });

  it('attach(elector) maps elected → primary and lost → replica', async () => {
    const elector = new EventEmitter();
    const r = reg('pg-0');
    const detach = r.attach(elector as unknown as Parameters<typeof r.attach>[0]);
    await w.settle();
    assert.deepEqual(w.fake.services()[0]?.tags, ['replica']);
    elector.emit('elected', {});
    await w.settle();
    assert.deepEqual(w.fake.services()[0]?.tags, ['primary', 'master']);
    elector.emit('lost', {}, 'taken');
    await w.settle();
    assert.deepEqual(w.fake.services()[0]?.tags, ['replica']);
    detach();
    elector.emit('elected', {});
    await w.settle();
    assert.deepEqual(w.fake.services()[0]?.tags, ['replica'], 'detached');
    await r.stop();
  });

  it('a failed tag update is a warning and converges on the next pass', async () => {
    const r = reg('pg-0');
    await r.start();
    const warnings: Error[] = [];
    r.on('warning', (e) => warnings.push(e));
    w.fake.addFault({ kind: 'error', status: 500, match: { path: '/v1/agent/service/register' }, times: 1 });
    await r.setRole('primary');
    assert.equal(warnings.length, 1);
    assert.deepEqual(w.fake.services()[0]?.tags, ['replica']);
    await w.advance(10_000);
    assert.deepEqual(w.fake.services()[0]?.tags, ['primary', 'master']);
    await r.stop();
  });

  it('rejects bad options at construction', () => {
    assert.throws(() => new ConsulServiceRegistration({ service: 'bad name', identity: '', checkTtlMs: 10, env: {} }), (e) => e instanceof ConfigError && e.problems.length === 3);
  });
});
