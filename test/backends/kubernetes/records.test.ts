import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MalformedRecordError } from '../../../src/core/errors.js';
import {
  annotationsToRecord,
  formatMicroTime,
  leaseSpecToRecord,
  parseTime,
  recordIdentity,
  recordToAnnotations,
  recordToLeaseSpec,
  toLeaderRecord,
  ttlSeconds,
  type WireRecord,
} from '../../../src/backends/kubernetes/records.js';
import { mapperFor, patroniScope, SUCCESSOR_ANNOTATION } from '../../../src/backends/kubernetes/kinds.js';

const isMalformed = (err: unknown): boolean => err instanceof MalformedRecordError && err.code === 'LEADERLOCK_MALFORMED';

const timeArb = fc
  .tuple(fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }), fc.integer({ min: 0, max: 999 }))
  .map(([d, us]) => formatMicroTime(d, us));
const recordArb: fc.Arbitrary<WireRecord> = fc.record({
  holder: fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: undefined }),
  durationSeconds: fc.option(fc.integer({ min: 1, max: 86400 }), { nil: undefined }),
  acquireTime: fc.option(timeArb, { nil: undefined }),
  renewTime: fc.option(timeArb, { nil: undefined }),
  transitions: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

describe('kubernetes records: wire mapping', () => {
  it('MicroTime has six fractional digits and Z, as client-go writes it', () => {
    assert.equal(formatMicroTime(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05.678000Z');
    assert.equal(formatMicroTime(new Date('2026-01-02T03:04:05.678Z'), 9), '2026-01-02T03:04:05.678009Z');
    assert.match(formatMicroTime(new Date(0)), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('parses client-go MicroTime, metav1.Time and Patroni isoformat (offset, with or without fraction)', () => {
    assert.equal(parseTime('2026-01-02T03:04:05.678901Z', 'x').toISOString(), '2026-01-02T03:04:05.678Z');
    assert.equal(parseTime('2026-01-02T03:04:05Z', 'x').toISOString(), '2026-01-02T03:04:05.000Z');
    assert.equal(parseTime('2026-01-02T03:04:05.123456+00:00', 'x').toISOString(), '2026-01-02T03:04:05.123Z');
    assert.equal(parseTime('2026-01-02T05:04:05+02:00', 'x').toISOString(), '2026-01-02T03:04:05.000Z');
    assert.throws(() => parseTime('yesterday', 'renewTime'), isMalformed);
    assert.throws(() => parseTime('2026-13-45T99:00:00Z', 'renewTime'), isMalformed);
  });

  it('durations in whole seconds are rounded up: rounding only adds safety', () => {
    assert.equal(ttlSeconds(15000), 15);
    assert.equal(ttlSeconds(15001), 16);
    assert.equal(ttlSeconds(1), 1);
    assert.equal(ttlSeconds(2500), 3);
  });

  it('Lease spec round-trips every record (property)', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        assert.deepEqual(leaseSpecToRecord(recordToLeaseSpec(r)), { ...r });
      }),
    );
  });

  it('Patroni annotations round-trip every record (property), keeping foreign annotations', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const a = recordToAnnotations(r, { optime: '123', slots: '{}' });
        assert.equal(a.optime, '123');
        assert.equal(a.slots, '{}');
        assert.deepEqual(annotationsToRecord(a), { ...r });
      }),
    );
  });

  it('writes exactly the client-go Lease fields and keeps unknown ones (strategy, preferredHolder)', () => {
    const spec = recordToLeaseSpec(
      { holder: 'a', durationSeconds: 15, acquireTime: '2026-01-01T00:00:00.000000Z', renewTime: '2026-01-01T00:00:01.000000Z', transitions: 3 },
      { strategy: 'OldestEmulationVersion', holderIdentity: 'old' },
    );
    assert.deepEqual(spec, {
      strategy: 'OldestEmulationVersion',
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTime: '2026-01-01T00:00:00.000000Z',
      renewTime: '2026-01-01T00:00:01.000000Z',
      leaseTransitions: 3,
    });
    const released = recordToLeaseSpec({ holder: undefined, durationSeconds: 1, acquireTime: undefined, renewTime: undefined, transitions: 3 }, spec);
    assert.equal('holderIdentity' in released, false, 'a released Lease has no holderIdentity, as client-go ReleaseOnCancel');
    assert.equal(released.leaseTransitions, 3);
  });

  it('an empty client-go holderIdentity means free', () => {
    assert.equal(leaseSpecToRecord({ holderIdentity: '', leaseDurationSeconds: 1, leaseTransitions: 7 }).holder, undefined);
    assert.equal(toLeaderRecord(leaseSpecToRecord({ holderIdentity: '' }), true, 1000), undefined);
  });

  it('Patroni annotations as Patroni writes them (strings, isoformat times) read correctly', () => {
    const r = annotationsToRecord({
      leader: 'pg-0',
      ttl: '30',
      acquireTime: '2026-01-01T00:00:00.123456+00:00',
      renewTime: '2026-01-01T00:00:10.5+00:00',
      transitions: '4',
      optime: '50331648',
    });
    assert.deepEqual(r, { holder: 'pg-0', durationSeconds: 30, acquireTime: '2026-01-01T00:00:00.123456+00:00', renewTime: '2026-01-01T00:00:10.5+00:00', transitions: 4 });
    const leader = toLeaderRecord(r, true, 15000)!;
    assert.equal(leader.token, 4n);
    assert.equal(leader.ttlMs, 30000);
    assert.equal(leader.renewedAt?.toISOString(), '2026-01-01T00:00:10.500Z');
    // After Patroni's delete_leader the `leader` annotation is gone and the rest stays.
    assert.equal(annotationsToRecord({ ttl: '30', transitions: '4' }).holder, undefined);
  });

  it('malformed annotations or spec fields throw MalformedRecordError', () => {
    for (const bad of [{ leader: 'x', ttl: 'abc' }, { leader: 'x', ttl: '0' }, { leader: 'x', transitions: '-1' }, { leader: 'x', transitions: '1.5' }, { leader: 'x', renewTime: 'soon' }, { leader: 7 }]) {
      assert.throws(() => annotationsToRecord(bad as Record<string, unknown>), isMalformed, JSON.stringify(bad));
    }
    for (const bad of [{ holderIdentity: 5 }, { leaseDurationSeconds: -1 }, { leaseTransitions: 1.5 }, { renewTime: 'later' }]) {
      assert.throws(() => leaseSpecToRecord(bad as Record<string, unknown>), isMalformed, JSON.stringify(bad));
    }
  });

  it('a record without duration gets the observer’s ttl; identity changes with every write', () => {
    const r: WireRecord = { holder: 'a', durationSeconds: undefined, acquireTime: undefined, renewTime: '2026-01-01T00:00:00.000000Z', transitions: 1 };
    assert.equal(toLeaderRecord(r, true, 7000)?.ttlMs, 7000);
    assert.notEqual(recordIdentity(r), recordIdentity({ ...r, renewTime: '2026-01-01T00:00:00.000001Z' }));
    assert.notEqual(recordIdentity(r), recordIdentity({ ...r, transitions: 2 }));
    assert.equal(recordIdentity(r), recordIdentity({ ...r }));
  });
});

describe('kubernetes kinds: object mappers', () => {
  const rec: WireRecord = { holder: 'pg-0', durationSeconds: 30, acquireTime: '2026-01-01T00:00:00.000000Z', renewTime: '2026-01-01T00:00:00.000000Z', transitions: 2 };

  it('paths per kind', () => {
    assert.equal(mapperFor('Lease').objectPath('ns', 'x'), '/apis/coordination.k8s.io/v1/namespaces/ns/leases/x');
    assert.equal(mapperFor('Endpoints').collectionPath('ns'), '/api/v1/namespaces/ns/endpoints');
    assert.equal(mapperFor('ConfigMap').objectPath('ns', 'x-leader'), '/api/v1/namespaces/ns/configmaps/x-leader');
  });

  it('Endpoints carries the leader IP in subsets and empties them on release; the successor annotation is set and removed', () => {
    const m = mapperFor('Endpoints');
    const ports = [{ name: 'postgresql', port: 5432, protocol: 'TCP' as const }];
    const held = m.write(undefined, { namespace: 'ns', name: 'pg' }, rec, { podIp: '10.0.0.7', ports, labels: { application: 'patroni' } });
    assert.deepEqual(held.subsets, [{ addresses: [{ ip: '10.0.0.7' }], ports }]);
    assert.deepEqual(held.metadata.labels, { application: 'patroni' });
    assert.equal(held.metadata.annotations?.leader, 'pg-0');
    const released = m.write(held, { namespace: 'ns', name: 'pg' }, { ...rec, holder: undefined }, { podIp: '10.0.0.7', ports, successor: 'pg-1' });
    assert.deepEqual(released.subsets, []);
    assert.equal(released.metadata.annotations?.leader, undefined);
    assert.equal(released.metadata.annotations?.ttl, '30', 'the other annotations stay');
    assert.equal(released.metadata.annotations?.[SUCCESSOR_ANNOTATION], 'pg-1');
    assert.equal(held.metadata.annotations?.[SUCCESSOR_ANNOTATION], undefined, 'write never mutates its input');
    const taken = m.write(released, { namespace: 'ns', name: 'pg' }, rec, { successor: null });
    assert.equal(taken.metadata.annotations?.[SUCCESSOR_ANNOTATION], undefined);
  });

  it('Patroni layout scopes: Endpoints <scope>, ConfigMap <scope>-leader, Lease none', () => {
    assert.equal(patroniScope('Endpoints', 'batman'), 'batman');
    assert.equal(patroniScope('ConfigMap', 'batman-leader'), 'batman');
    assert.equal(patroniScope('ConfigMap', 'batman'), undefined);
    assert.equal(patroniScope('Lease', 'batman'), undefined);
  });
});
