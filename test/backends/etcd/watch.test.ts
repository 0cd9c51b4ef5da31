/**
 * Watch bookkeeping on a scripted `EtcdRpc` slice (no etcd needed): start from the read's revision + 1,
 * every revision of a multi-event response seen, re-read after a compaction, resume after a broken stream.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IKeyValue, ITxnRequest, IWatchRequest } from 'etcd3';
import { EtcdLock, type EtcdRpc } from '../../../src/backends/etcd/index.js';
import type { LockState } from '../../../src/core/lock.js';

const KEY = '/w/leader';
const kv = (value: string, rev: number): IKeyValue => ({ key: Buffer.from(KEY), value: Buffer.from(value), create_revision: String(rev), mod_revision: String(rev), version: '1', lease: '7' });

class FakeStream extends EventEmitter {
  readonly writes: IWatchRequest[] = [];
  ended = false;
  constructor(readonly onCreate: (s: FakeStream, req: IWatchRequest) => void) {
    super();
  }
  write(req: IWatchRequest): void {
    this.writes.push(req);
    queueMicrotask(() => this.onCreate(this, req));
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.ended = true;
  }
}

function fakeRpc(reads: { kv?: IKeyValue; revision: number }[], streams: ((s: FakeStream, req: IWatchRequest) => void)[]) {
  const txns: ITxnRequest[] = [];
  const created: FakeStream[] = [];
  const rpc = {
    kv: {
      txn: async (req: ITxnRequest) => {
        txns.push(req);
        const r = reads.shift()!;
        const range = (k?: IKeyValue) => ({ response_range: { header: { revision: String(r.revision) }, kvs: k ? [k] : [], more: false, count: k ? '1' : '0' } });
        return { header: { revision: String(r.revision) }, succeeded: true, responses: [range(r.kv), range(undefined)] };
      },
      range: async () => {
        throw new Error('unused');
      },
    },
    leaseClient: {},
    watchClient: {
      watch: async () => {
        const s = new FakeStream(streams.shift() ?? (() => undefined));
        created.push(s);
        return s;
      },
    },
  } as unknown as EtcdRpc;
  return { rpc, txns, created };
}

async function collect(lock: EtcdLock, n: number): Promise<string[]> {
  const ac = new AbortController();
  const out: string[] = [];
  const timer = setTimeout(() => ac.abort(), 3000);
  for await (const s of lock.watch({ signal: ac.signal }) as AsyncIterable<LockState>) {
    out.push(s.leader ? `${s.leader.holder}@${s.leader.token}` : '-');
    if (out.length === n) ac.abort();
  }
  clearTimeout(timer);
  return out;
}

const header = (rev: number) => ({ cluster_id: '1', member_id: '1', revision: String(rev), raft_term: '1' });

describe('etcd watch bookkeeping', () => {
  it('starts at the read revision + 1 and offers every revision of a multi-event response', async () => {
    const { rpc, created } = fakeRpc(
      [{ revision: 10 }],
      [
        (s) =>
          s.emit('data', {
            header: header(13),
            watch_id: '1',
            created: false,
            canceled: false,
            compact_revision: '0',
            events: [
              { type: 'Put', kv: kv('a', 11) },
              { type: 'Delete', kv: { ...kv('', 12), value: Buffer.alloc(0) } },
              { type: 'Put', kv: kv('b', 13) },
            ],
          }),
      ],
    );
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000 });
    assert.deepEqual(await collect(lock, 4), ['-', 'a@11', '-', 'b@13']);
    assert.equal(created[0]!.writes[0]!.create_request!.start_revision, '11');
    assert.equal(created[0]!.ended, true, 'the stream is closed when the watch ends');
    await lock.close();
  });

  it('re-reads after a compaction and resumes a broken stream from the last revision + 1', async () => {
    const { rpc, txns, created } = fakeRpc(
      [{ revision: 5 }, { kv: kv('x', 40), revision: 50 }],
      [
        (s) => s.emit('data', { header: header(50), watch_id: '1', created: true, canceled: true, compact_revision: '30', events: [] }),
        (s) => {
          s.emit('data', { header: header(51), watch_id: '1', created: false, canceled: false, compact_revision: '0', events: [{ type: 'Put', kv: kv('y', 51) }] });
          s.emit('error', new Error('connection reset'));
        },
        (s) => s.emit('data', { header: header(52), watch_id: '1', created: false, canceled: false, compact_revision: '0', events: [{ type: 'Put', kv: kv('z', 52) }] }),
      ],
    );
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000 });
    assert.deepEqual(await collect(lock, 4), ['-', 'x@40', 'y@51', 'z@52']);
    assert.equal(txns.length, 2, 'one read at the start, one after the compaction');
    assert.deepEqual(
      created.map((s) => s.writes[0]!.create_request!.start_revision),
      ['6', '51', '52'],
    );
    await lock.close();
  });
});
