import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IKeyValue } from 'etcd3';
import * as wire from '../../../src/backends/etcd/wire.js';
import { fencedTxnRequest } from '../../../src/backends/etcd/fence.js';
import { mapEtcdError } from '../../../src/backends/etcd/errors.js';
import { resolveKey, resolveSessionOptions } from '../../../src/backends/etcd/options.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { BackendUnavailableError, ConfigError, DeadlineExceededError, ForbiddenError } from '../../../src/core/errors.js';
import { Problems } from '../../../src/core/options.js';

const kv = (key: string, value: string, create: string, lease = '0'): IKeyValue => ({
  key: Buffer.from(key),
  value: Buffer.from(value),
  create_revision: create,
  mod_revision: create,
  version: '1',
  lease,
});

describe('etcd wire mapping', () => {
  it('derives the successor key and, on a Patroni layout, the failover key', () => {
    assert.deepEqual(wire.lockKeys('/service/pg/leader'), {
      leader: '/service/pg/leader',
      successor: '/service/pg/leader-successor',
      meta: '/service/pg/leader-meta',
      failover: '/service/pg/failover',
      members: '/service/pg/members/',
    });
    assert.equal(wire.lockKeys('/locks/a').failover, undefined);
    assert.equal(wire.patroniKey('pg'), '/service/pg/leader');
    assert.equal(wire.patroniKey('pg', '/db/'), '/db/pg/leader');
  });

  it('issue 16 (10, 12): on a Patroni layout, acquire also needs no failover request and no member under our name; failure returns both', () => {
    const keys = wire.lockKeys('/service/pg/leader');
    const t = wire.acquireTxn(keys, 'pg-1', '42');
    assert.deepEqual(
      t.compare!.map((c) => [c.key!.toString(), c.target, c.create_revision]),
      [
        ['/service/pg/leader', 'Create', '0'],
        ['/service/pg/leader-successor', 'Create', '0'],
        ['/service/pg/failover', 'Create', '0'],
        ['/service/pg/members/pg-1', 'Create', '0'],
      ],
    );
    assert.deepEqual(
      t.failure!.map((op) => op.request_range!.key!.toString()),
      ['/service/pg/leader', '/service/pg/leader-successor', '/service/pg/failover', '/service/pg/members/pg-1'],
    );
    const past = wire.failoverAcquireTxn(keys, 'pg-1', '42', '77');
    assert.deepEqual(past.compare![2], { key: Buffer.from('/service/pg/failover'), target: 'Mod', result: 'Equal', mod_revision: '77' });
    assert.deepEqual(
      past.success!.map((op) => (op.request_put ? `put ${op.request_put.key!.toString()}` : `delete ${op.request_delete_range!.key!.toString()}`)),
      ['put /service/pg/leader', 'delete /service/pg/failover'],
    );
  });

  it('acquire txn: both keys absent → put with our lease; failure reads both', () => {
    const t = wire.acquireTxn(wire.lockKeys('/l'), 'node-a', '7587884357519896870');
    assert.deepEqual(
      t.compare!.map((c) => [c.key!.toString(), c.target, c.create_revision]),
      [
        ['/l', 'Create', '0'],
        ['/l-successor', 'Create', '0'],
      ],
    );
    assert.equal(t.success![0]!.request_put!.value!.toString(), 'node-a', 'the value is the bare holder name');
    assert.equal(t.success![0]!.request_put!.lease, '7587884357519896870', 'lease IDs stay decimal strings (> 2^53)');
    assert.equal(t.failure!.length, 2);
  });

  it('renew txn compares create-revision = token AND lease = ours (a plain put detaches the lease)', () => {
    const token = 2n ** 60n + 1n;
    const t = wire.renewTxn(wire.lockKeys('/l'), token, '42');
    assert.deepEqual(
      t.compare!.map((c) => [c.target, c.create_revision ?? c.lease]),
      [
        ['Create', '1152921504606846977'],
        ['Lease', '42'],
      ],
    );
  });

  it('release txn deletes only our term; with a successor, nominates on its own lease and writes Patroni failover', () => {
    const keys = wire.lockKeys('/service/pg/leader');
    const plain = wire.releaseTxn(keys, 5n);
    assert.deepEqual(plain.compare!.map((c) => c.create_revision), ['5']);
    assert.deepEqual(
      plain.success!.map((o) => o.request_delete_range!.key!.toString()),
      ['/service/pg/leader', '/service/pg/leader-meta'],
      'the leader key and its metadata go together',
    );
    const h = wire.releaseTxn(keys, 5n, { successor: 'b', from: 'a', lease: '99' });
    const puts = h.success!.filter((o) => o.request_put).map((o) => [o.request_put!.key!.toString(), o.request_put!.value!.toString(), o.request_put!.lease]);
    assert.deepEqual(puts, [
      ['/service/pg/leader-successor', 'b', '99'],
      ['/service/pg/failover', '{"leader":"a","member":"b"}', '0'],
    ]);
  });

  it('maps key-values to LockState with bigint tokens; a lease-less key is held forever', () => {
    const s = wire.toLockState(kv('/l', 'a', '9007199254740993', '5'), kv('/l-successor', 'b', '3', '6'), () => 2000);
    assert.deepEqual(s, { leader: { holder: 'a', token: 9007199254740993n, ttlMs: 2000, live: true }, successor: 'b' });
    const foreign = wire.storedLeader(kv('/l', 'ops', '4'));
    assert.equal(foreign?.foreign, true);
    assert.equal(wire.toLockState(kv('/l', 'ops', '4'), undefined, () => 1).leader?.ttlMs, Number.POSITIVE_INFINITY);
    assert.deepEqual(wire.toLockState(undefined, undefined, () => 1), {});
  });

  it('issue 12: metadata is put with the leader key on the same lease, and shown only for the term that wrote it', () => {
    const keys = wire.lockKeys('/l');
    const t = wire.acquireTxn(keys, 'node-a', '42', 'addr=1');
    assert.deepEqual(
      t.success!.map((o) => [o.request_put!.key!.toString(), o.request_put!.value!.toString(), o.request_put!.lease]),
      [
        ['/l', 'node-a', '42'],
        ['/l-meta', 'addr=1', '42'],
      ],
    );
    assert.equal(wire.acquireTxn(keys, 'node-a', '42').success!.length, 1, 'no metadata: the leader key only');
    const n = wire.nomineeAcquireTxn(keys, 'node-b', '43', 'addr=2');
    assert.equal(n.success![1]!.request_put!.key!.toString(), '/l-meta');
    // Written in the revision that created the leader key (create_revision 5 = mod_revision 5): shown.
    const leader = kv('/l', 'a', '5', '5');
    assert.equal(wire.toLockState(leader, undefined, () => 1, kv('/l-meta', 'addr=1', '5', '5')).leader?.metadata, 'addr=1');
    // An older metadata key (a previous term on the same lease): ignored.
    assert.equal(wire.toLockState(leader, undefined, () => 1, kv('/l-meta', 'old', '3', '3')).leader?.metadata, undefined);
    assert.equal(wire.readTxn(keys).success![2]!.request_range!.key!.toString(), '/l-meta');
    // The metadata key sorts inside the watched range [key, key-successor].
    assert.ok('/l-meta' > '/l' && '/l-meta' < '/l-successor');
  });

  it('rounds TTLs up to whole seconds, never down', () => {
    assert.equal(wire.ttlSeconds(1), 1);
    assert.equal(wire.ttlSeconds(2000), 2);
    assert.equal(wire.ttlSeconds(2001), 3);
  });

  it('fenced txn compares the leader key create-revision with the token', () => {
    const t = fencedTxnRequest('/l', 12n, [{ put: '/data', value: 'x' }, { delete: '/old' }]);
    assert.deepEqual(t.compare, [{ key: Buffer.from('/l'), target: 'Create', result: 'Equal', create_revision: '12' }]);
    assert.equal(t.success!.length, 2);
  });
});

describe('etcd error mapping', () => {
  it('maps gRPC codes to typed errors', () => {
    const g = (code: number, message: string) => Object.assign(new Error(message), { code });
    assert.ok(mapEtcdError(g(14, '14 UNAVAILABLE: No connection established'), 'x') instanceof BackendUnavailableError);
    assert.ok(mapEtcdError(g(4, '4 DEADLINE_EXCEEDED: Deadline exceeded'), 'x') instanceof DeadlineExceededError);
    assert.ok(mapEtcdError(g(7, 'etcdserver: permission denied'), 'x') instanceof ForbiddenError);
    assert.ok(mapEtcdError(g(3, 'etcdserver: authentication failed, invalid user ID or password'), 'x') instanceof ForbiddenError);
    assert.ok(mapEtcdError(g(16, 'unauthenticated'), 'x') instanceof ForbiddenError);
    assert.ok(mapEtcdError(new Error('etcdserver: request timed out'), 'x') instanceof BackendUnavailableError);
    const e = mapEtcdError(g(3, 'etcdserver: key is not provided'), 'x');
    assert.ok(!(e instanceof BackendUnavailableError) && e.status === 3);
  });
});

describe('etcd options', () => {
  it('lists every broken rule at once', () => {
    assert.throws(
      () => new EtcdLock({ endpoints: ['127.0.0.1:2379', 'https://a:1'], ttlMs: 10, username: 'u', requestTimeoutMs: -1 }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.problems.length >= 5, err.message);
        assert.match(err.message, /ttlMs must be at least 1000/);
        assert.match(err.message, /key or scope is required/);
        assert.match(err.message, /username and password must be given together/);
        assert.match(err.message, /endpoint "127.0.0.1:2379" must be a URL/);
        assert.match(err.message, /requestTimeoutMs must be a positive/);
        return true;
      },
    );
  });

  it('defaults: Patroni key from scope, localhost endpoint, request timeout from ttl', () => {
    const p = new Problems();
    assert.equal(resolveKey({ scope: 'pg' }, p).key, '/service/pg/leader');
    assert.equal(resolveKey({ scope: 'pg', prefix: '/x' }, p).key, '/x/pg/leader');
    const s = resolveSessionOptions({}, p);
    assert.equal(p.count, 0);
    assert.deepEqual(s.endpoints, ['http://127.0.0.1:2379']);
    assert.equal(s.ttlMs, 15000);
    assert.equal(s.requestTimeoutMs, 3000); // ttl/5: retry period + two attempts fit in the renew deadline
    assert.equal(resolveSessionOptions({ ttlMs: 2000 }, p).requestTimeoutMs, 500); // ttl/5 = 400, raised to the 500 ms floor
  });

  it('rejects tls with http endpoints and half client certificates', () => {
    assert.throws(() => new EtcdLock({ key: '/k', endpoints: 'http://127.0.0.1:1', tls: { cert: 'x' } }), /tls is set but the endpoints use http:[\s\S]*tls.cert and tls.key/);
  });
});
