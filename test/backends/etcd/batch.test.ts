/**
 * Many locks on one session against a real etcd (issue 15): their creates and reads go out as
 * nested txns of a few batched txns, each key still decided by its own compares (a held key never
 * blocks a free one's create), tokens are the keys' create-revisions, and all their watches share
 * one gRPC stream whose events reach the right lock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3, type ITxnRequest } from 'etcd3';
import { EtcdLock, EtcdSession, type EtcdRpc } from '../../../src/backends/etcd/index.js';
import type { LockState, Term } from '../../../src/core/lock.js';
import { WatchHub } from '../../../src/backends/etcd/watch-hub.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';

const TTL = 5000;
const RT = 3000;
let cluster: EtcdCluster;
let raw: Etcd3;

before(async () => {
  cluster = await startEtcd();
  raw = new Etcd3({ hosts: cluster.endpoints });
});
after(async () => {
  raw?.close();
  await cluster?.stop();
});

/** A client that counts txn calls (and the nested txns in them) and watch streams opened. */
function countingClient(): { rpc: EtcdRpc; txns: ITxnRequest[]; streams: { n: number } } {
  const txns: ITxnRequest[] = [];
  const streams = { n: 0 };
  const rpc: EtcdRpc = {
    kv: { range: (req, o) => raw.kv.range(req, o), txn: (req, o) => (txns.push(req), raw.kv.txn(req, o)) },
    leaseClient: raw.leaseClient,
    watchClient: { watch: (o) => (streams.n++, raw.watchClient.watch(o)) },
  };
  return { rpc, txns, streams };
}

const nested = (req: ITxnRequest): number => (req.success ?? []).filter((op) => op.request_txn).length;

describe('etcd: many locks on one session', () => {
  it('creates are batched as nested txns; each key is decided alone (held ones stay held); token = create-revision', async () => {
    const N = 300;
    const keys = Array.from({ length: N }, (_, i) => `/batch/a/${i}`);
    // Every third key is already held: by another session's lock, or (every ninth) by a lease-less key.
    const other = new EtcdSession({ endpoints: cluster.endpoints, ttlMs: TTL, requestTimeoutMs: RT });
    const heldBy = new Map<string, string>();
    for (let i = 0; i < N; i += 3) {
      if (i % 9 === 0) {
        await raw.put(keys[i]!).value('etcdctl');
        heldBy.set(keys[i]!, 'etcdctl');
      } else {
        const l = new EtcdLock({ session: other, key: keys[i]! });
        assert.ok(await l.acquire('other'));
        heldBy.set(keys[i]!, 'other');
      }
    }
    const { rpc, txns } = countingClient();
    const session = new EtcdSession({ client: rpc, ttlMs: TTL, requestTimeoutMs: RT });
    const locks = keys.map((key) => new EtcdLock({ session, key }));
    for (const l of locks) l.on('warning', () => undefined);
    try {
      const terms = await Promise.all(locks.map((l) => l.acquire('me')));
      const creates = txns.filter((t) => nested(t) > 0);
      assert.ok(creates.length > 0 && creates.length <= Math.ceil(N / 64) + 8, `${creates.length} batched txns for ${N} creates`);
      assert.ok(txns.length < N / 4, `${txns.length} txn calls in all for ${N} acquires`);
      for (let i = 0; i < N; i++) {
        const stored = (await raw.get(keys[i]!).exec()).kvs[0]!;
        if (heldBy.has(keys[i]!)) {
          assert.equal(terms[i], undefined, `${keys[i]} is held by ${heldBy.get(keys[i]!)}`);
          assert.equal(stored.value.toString(), heldBy.get(keys[i]!));
        } else {
          assert.ok(terms[i], `${keys[i]} was free and is won`);
          assert.equal(stored.value.toString(), 'me');
          assert.equal(String(terms[i]!.token), stored.create_revision, 'token = the key create-revision');
          assert.equal(String(stored.lease), session.leaseId);
        }
      }
      // Renew and release still work key by key.
      const won = terms.map((t, i) => ({ t, l: locks[i]! })).filter((x): x is { t: Term; l: EtcdLock } => !!x.t);
      await Promise.all(won.map(({ t, l }) => l.renew(t)));
      assert.deepEqual(await Promise.all(won.map(({ t, l }) => l.release(t))), won.map(() => true));
    } finally {
      await Promise.allSettled(locks.map((l) => l.close()));
      await session.close();
      await other.close();
      await raw.delete().prefix('/batch/a/');
    }
  });

  it('the watches of every lock share one stream; each sees its own key only; one lock cancelling leaves the others watching', async () => {
    const N = 200;
    const keys = Array.from({ length: N }, (_, i) => `/batch/w/${i}`);
    const { rpc, txns, streams } = countingClient();
    const session = new EtcdSession({ client: rpc, ttlMs: TTL, requestTimeoutMs: RT });
    const locks = keys.map((key) => new EtcdLock({ session, key }));
    const seen: LockState[][] = keys.map(() => []);
    const acs = keys.map(() => new AbortController());
    const feeds = locks.map(async (l, i) => {
      for await (const s of l.watch({ signal: acs[i]!.signal })) seen[i]!.push(s);
    });
    const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(pred(), what);
    };
    try {
      await waitFor(() => seen.every((s) => s.length >= 1), 'every watch delivered its first (read) state');
      assert.equal(streams.n, 1, 'one watch stream for all locks');
      assert.equal(session.watchHub.streams, 1);
      assert.ok(txns.length <= N, `${txns.length} read txns for ${N} watches`);
      // Half of the locks stop watching; the other half still see their own keys change.
      for (let i = 0; i < N; i += 2) acs[i]!.abort();
      await Promise.all(feeds.filter((_, i) => i % 2 === 0));
      for (let i = 1; i < N; i += 2) await raw.put(keys[i]!).value(`v${i}`);
      await waitFor(() => seen.every((s, i) => i % 2 === 0 || s.at(-1)?.leader?.holder === `v${i}`), 'every remaining watch saw its own key written');
      for (let i = 1; i < N; i += 2) assert.deepEqual(seen[i]!.map((s) => s.leader?.holder), [undefined, `v${i}`], `lock ${i} saw its key only`);
      assert.equal(streams.n, 1, 'still one stream');
    } finally {
      for (const ac of acs) ac.abort();
      await Promise.allSettled(feeds);
      assert.equal(session.watchHub.streams, 0, 'the stream closes with its last watcher');
      await Promise.allSettled(locks.map((l) => l.close()));
      await session.close();
      await raw.delete().prefix('/batch/w/');
    }
  });

  it('past maxPerStream watchers a member gets another stream; each watcher sees its own key; streams close with their last watcher', async () => {
    const hub = new WatchHub(RT, { maxPerStream: 2 });
    const member = { name: 'raw', rpc: raw };
    const ac = new AbortController();
    const seen: string[][] = [[], [], [], [], []];
    const created: number[] = [];
    const outcomes = seen.map((got, i) =>
      hub.watch(
        member,
        {
          key: Buffer.from(`/batch/h/${i}`),
          rangeEnd: Buffer.from(`/batch/h/${i}\0`),
          startRevision: undefined,
          onCreated: () => void created.push(i),
          onResponse: (res) => {
            for (const ev of res.events ?? []) got.push(ev.kv.key.toString());
          },
        },
        ac.signal,
      ),
    );
    try {
      assert.equal(hub.streams, 3, '5 watchers, at most 2 per stream');
      for (let i = 0; i < 200 && created.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(created.length, 5, 'every watcher created');
      for (let i = 0; i < 5; i++) await raw.put(`/batch/h/${i}`).value('x');
      for (let i = 0; i < 200 && seen.some((g) => g.length === 0); i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(seen, [0, 1, 2, 3, 4].map((i) => [`/batch/h/${i}`]));
    } finally {
      ac.abort();
      assert.deepEqual(await Promise.all(outcomes), ['aborted', 'aborted', 'aborted', 'aborted', 'aborted']);
      assert.equal(hub.streams, 0);
      await raw.delete().prefix('/batch/h/');
    }
  });
});
