/**
 * TxnBatcher on a scripted `EtcdRpc` (no etcd needed): a lone txn goes out as is at once; txns asked
 * for while the in-flight limit is reached leave together as nested txns of one outer txn, split
 * back in order; a key written twice never shares a batch; groups never mix; a batch that etcd
 * refuses as a whole for another reason is retried txn by txn, so the error stays the one key's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ITxnRequest, ITxnResponse } from 'etcd3';
import { EtcdSession, type EtcdRpc } from '../../../src/backends/etcd/index.js';
import { TxnBatcher } from '../../../src/backends/etcd/txn-batch.js';
import { ForbiddenError, LeaderLockError } from '../../../src/core/errors.js';

const b = (s: string): Buffer => Buffer.from(s);
const put = (key: string): ITxnRequest => ({ compare: [{ key: b(key), target: 'Create', result: 'Equal', create_revision: '0' }], success: [{ request_put: { key: b(key), value: b('v') } }], failure: [{ request_range: { key: b(key) } }] });
const keyOf = (req: ITxnRequest): string => Buffer.from(req.success![0]!.request_put!.key as Buffer).toString();

/** Answers each (nested) txn: succeeded unless its key is in `taken`; refuses any txn naming a key in `forbidden`. */
function scripted(opts: { taken?: Set<string>; forbidden?: Set<string> } = {}) {
  const sent: ITxnRequest[] = [];
  const pending: Array<() => void> = [];
  let revision = 100;
  const answer = (req: ITxnRequest): ITxnResponse['responses'][number]['response_txn'] => {
    const key = keyOf(req);
    return { succeeded: !opts.taken?.has(key), responses: [] } as unknown as ITxnResponse['responses'][number]['response_txn'];
  };
  const rpc = {
    kv: {
      txn: (req: ITxnRequest) => {
        sent.push(req);
        return new Promise<ITxnResponse>((resolve, reject) => {
          pending.push(() => {
            const inner = (req.success ?? []).filter((op) => op.request_txn).map((op) => op.request_txn!);
            const all = inner.length > 0 ? inner : [req];
            if (all.some((r) => opts.forbidden?.has(keyOf(r)))) return reject(new ForbiddenError('etcdserver: permission denied', { backend: 'etcd' }));
            const header = { cluster_id: '1', member_id: '1', revision: String(++revision), raft_term: '1' };
            if (inner.length === 0) return resolve({ ...answer(req), header } as ITxnResponse);
            resolve({ header, succeeded: true, responses: inner.map((r) => ({ response_txn: answer(r) })) } as unknown as ITxnResponse);
          });
        });
      },
      range: () => Promise.reject(new Error('unused')),
    },
    leaseClient: {},
    watchClient: {},
  } as unknown as EtcdRpc;
  /** Answers everything sent so far, in order, and lets the continuations run. */
  const answerAll = async (): Promise<void> => {
    await new Promise((r) => setImmediate(r)); // the batcher sends from a microtask
    for (let i = 0; i < 10 && pending.length > 0; i++) {
      for (const p of pending.splice(0)) p();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { rpc, sent, answerAll };
}

const nestedKeys = (req: ITxnRequest): string[] => (req.success ?? []).filter((op) => op.request_txn).map((op) => keyOf(op.request_txn!));

describe('etcd TxnBatcher', () => {
  it('a lone txn goes out at once, as is; those asked for while the limit is reached go out as one outer txn, answered in order', async () => {
    const { rpc, sent, answerAll } = scripted({ taken: new Set(['/k/2']) });
    const session = new EtcdSession({ client: rpc, ttlMs: 5000 });
    const batcher = new TxnBatcher(session, { maxInFlight: 1, maxPerTxn: 3 });
    const first = batcher.txn('etcd acquire', put('/k/0'), { group: 'g' });
    await Promise.resolve();
    assert.equal(sent.length, 1, 'the first txn is sent without waiting');
    assert.deepEqual(sent[0], put('/k/0'), 'alone: exactly the txn it would be unbatched');
    const rest = [1, 2, 3, 4].map((i) => batcher.txn('etcd acquire', put(`/k/${i}`), { group: 'g' }));
    await answerAll();
    const all = await Promise.all([first, ...rest]);
    assert.deepEqual(
      sent.slice(1).map(nestedKeys),
      [['/k/1', '/k/2', '/k/3'], []],
      'queued txns leave together (up to maxPerTxn nested txns); the last one alone',
    );
    assert.deepEqual(sent[2], put('/k/4'));
    assert.deepEqual(all.map((r) => r.succeeded), [true, true, false, true, true], 'each key decided by its own compare');
    assert.equal(all[1]!.header.revision, all[3]!.header.revision, 'nested txns share the batch revision');
    await session.close();
  });

  it('a key written twice never shares a batch; groups never mix', async () => {
    const { rpc, sent, answerAll } = scripted();
    const session = new EtcdSession({ client: rpc, ttlMs: 5000 });
    const batcher = new TxnBatcher(session, { maxInFlight: 1, maxPerTxn: 64 });
    const p = [batcher.txn('x', put('/k/0'), { group: 'a' }), batcher.txn('x', put('/k/1'), { group: 'a' }), batcher.txn('x', put('/k/1'), { group: 'a' }), batcher.txn('x', put('/k/2'), { group: 'b' }), batcher.txn('x', put('/k/3'), { group: 'a' })];
    await answerAll();
    await Promise.all(p);
    const shapes = sent.map((r) => (nestedKeys(r).length > 0 ? nestedKeys(r) : [keyOf(r)]));
    assert.deepEqual(shapes, [['/k/0', '/k/1', '/k/3'], ['/k/1'], ['/k/2']]);
    await session.close();
  });

  it('a batch refused as a whole (one key forbidden) is retried txn by txn: only that key fails', async () => {
    const { rpc, sent, answerAll } = scripted({ forbidden: new Set(['/k/2']) });
    const session = new EtcdSession({ client: rpc, ttlMs: 5000 });
    const batcher = new TxnBatcher(session, { maxInFlight: 1 });
    const first = batcher.txn('x', put('/k/0'), { group: 'g' });
    await Promise.resolve(); // sent alone; the next ones wait for it
    const rest = [1, 2, 3].map((i) => batcher.txn('x', put(`/k/${i}`), { group: 'g' }));
    const all = Promise.allSettled([first, ...rest]);
    await answerAll();
    const settled = await all;
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    assert.ok((settled[2] as PromiseRejectedResult).reason instanceof LeaderLockError);
    assert.equal(sent.length, 1 + 1 + 3, 'the lone first, the refused batch, then each of its three alone');
    await session.close();
  });

  it("an aborted caller's txn is dropped from the queue", async () => {
    const { rpc, sent, answerAll } = scripted();
    const session = new EtcdSession({ client: rpc, ttlMs: 5000 });
    const batcher = new TxnBatcher(session, { maxInFlight: 1 });
    const first = batcher.txn('x', put('/k/0'), { group: 'g' });
    await Promise.resolve(); // sent alone; the next ones wait for it
    const ac = new AbortController();
    const dropped = batcher.txn('x', put('/k/1'), { group: 'g', signal: ac.signal });
    const kept = batcher.txn('x', put('/k/2'), { group: 'g' });
    ac.abort();
    await assert.rejects(dropped, { name: 'AbortedError' });
    await answerAll();
    await Promise.all([first, kept]);
    assert.deepEqual(sent.map((r) => (nestedKeys(r).length > 0 ? nestedKeys(r) : [keyOf(r)])), [['/k/0'], ['/k/2']]);
    await session.close();
  });
});
