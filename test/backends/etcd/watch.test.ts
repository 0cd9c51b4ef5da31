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
  constructor(readonly onCreate: (s: FakeStream, req: IWatchRequest) => unknown) {
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

function fakeRpc(reads: { kv?: IKeyValue; revision: number }[], streams: ((s: FakeStream, req: IWatchRequest) => unknown)[]) {
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

const created = (s: FakeStream, rev: number) => s.emit('data', { header: header(rev), watch_id: '1', created: true, canceled: false, compact_revision: '0', events: [] });
const events = (s: FakeStream, rev: number, evs: unknown[]) => s.emit('data', { header: header(rev), watch_id: '1', created: false, canceled: false, compact_revision: '0', events: evs });
const tick = () => new Promise((r) => setTimeout(r, 10));

describe('etcd watch bookkeeping', () => {
  it('creates the watcher before the read, skips events already in the read, offers every revision of a multi-event response', async () => {
    const { rpc, created: streams } = fakeRpc(
      [{ kv: kv('a', 11), revision: 11 }],
      [
        async (s) => {
          created(s, 10);
          events(s, 11, [{ type: 'Put', kv: kv('a', 11) }]); // arrives before the read: already in it
          await tick();
          events(s, 13, [
            { type: 'Delete', kv: { ...kv('', 12), value: Buffer.alloc(0) } },
            { type: 'Put', kv: kv('b', 13) },
          ]);
        },
      ],
    );
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000 });
    assert.deepEqual(await collect(lock, 3), ['a@11', '-', 'b@13']);
    assert.equal(streams[0]!.writes[0]!.create_request!.start_revision, undefined, 'a fresh watcher starts at "now"');
    assert.equal(streams[0]!.ended, true, 'the stream is closed when the watch ends');
    await lock.close();
  });

  it('resumes a broken stream from the last revision + 1; starts over with a read after a compaction', async () => {
    const { rpc, txns, created: streams } = fakeRpc(
      [{ revision: 5 }, { kv: kv('x', 40), revision: 50 }],
      [
        async (s) => {
          created(s, 5);
          await tick();
          s.emit('error', new Error('connection reset'));
        },
        (s) => s.emit('data', { header: header(50), watch_id: '1', created: true, canceled: true, compact_revision: '30', events: [] }),
        async (s) => {
          created(s, 50);
          await tick();
          events(s, 51, [{ type: 'Put', kv: kv('y', 51) }]);
          s.emit('error', new Error('connection reset'));
        },
        (s) => {
          created(s, 51);
          events(s, 52, [{ type: 'Put', kv: kv('z', 52) }]);
        },
      ],
    );
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000 });
    assert.deepEqual(await collect(lock, 4), ['-', 'x@40', 'y@51', 'z@52']);
    assert.equal(txns.length, 2, 'one read at the start, one after the compaction');
    assert.deepEqual(
      streams.map((s) => s.writes[0]!.create_request!.start_revision),
      [undefined, '6', undefined, '52'],
    );
    await lock.close();
  });

  it('a silent stream is probed with a progress request; one that does not answer is replaced, resuming from the last revision + 1 (#issue13-3)', async () => {
    const { rpc, created: streams } = fakeRpc(
      [{ kv: kv('a', 11), revision: 11 }],
      [
        (s, req) => req.create_request && created(s, 11), // then silent, progress requests too: a frozen member
        (s, req) => {
          if (!req.create_request) return;
          created(s, 12);
          events(s, 12, [{ type: 'Put', kv: kv('b', 12) }]);
        },
      ],
    );
    // requestTimeoutMs is the idle bound: silence for it → probe; no answer for another → stuck.
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000, requestTimeoutMs: 100 });
    assert.deepEqual(await collect(lock, 2), ['a@11', 'b@12']);
    assert.equal(streams[0]!.writes.filter((w) => w.progress_request).length, 1, 'probed once, then given up');
    assert.equal(streams[0]!.ended, true);
    assert.equal(streams[1]!.writes[0]!.create_request!.start_revision, '12');
    await lock.close();
  });

  it('a quiet stream that answers its progress requests is kept', async () => {
    const progress = (s: FakeStream) => s.emit('data', { header: header(11), watch_id: '-1', created: false, canceled: false, compact_revision: '0', events: [] });
    const { rpc, created: streams } = fakeRpc([{ kv: kv('a', 11), revision: 11 }], [(s, req) => (req.create_request ? created(s, 11) : progress(s))]);
    const lock = new EtcdLock({ client: rpc, key: KEY, ttlMs: 2000, requestTimeoutMs: 50 });
    const ac = new AbortController();
    const states: string[] = [];
    const done = (async () => {
      for await (const st of lock.watch({ signal: ac.signal })) states.push(st.leader ? `${st.leader.holder}@${st.leader.token}` : '-');
    })();
    await new Promise((r) => setTimeout(r, 600)); // 12 idle periods
    ac.abort();
    await done;
    assert.equal(streams.length, 1, 'never replaced');
    assert.ok(streams[0]!.writes.filter((w) => w.progress_request).length >= 2, 'probed while quiet');
    assert.deepEqual(states, ['a@11'], 'a progress response is not a state change');
    await lock.close();
  });
});
