import type { ITxnRequest, ITxnResponse } from 'etcd3';
import { untilAborted } from '../../core/abort.js';
import { AbortedError, BackendUnavailableError, LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { isLeaseGone } from './errors.js';
import type { EtcdSession } from './session.js';

const log = logger('etcd:batch');

interface Item {
  what: string;
  req: ITxnRequest;
  /** Only items of one group share a txn (the same lease, or read-only). */
  group: string;
  /** Keys the txn may write (either branch): etcd refuses a txn whose branches write one key twice. */
  writes: readonly string[];
  signal: AbortSignal | undefined;
  /** Called every time the txn goes out (alone or in a batch; a retry on another member too). */
  onAttempt: (() => void) | undefined;
  resolve(res: ITxnResponse): void;
  reject(err: unknown): void;
}

/**
 * Independent etcd txns of the locks on one session — the acquire's create and the watch's read —
 * sent together as the branches of one outer txn: `Txn(compare: [], success: [Txn₁ … Txnₙ])`. etcd
 * evaluates every nested txn on its own (its compares pick its branch: one key's failure never
 * blocks another's create, and each key keeps its own ownership compare), all at one revision.
 * A create in the batch therefore gets the outer revision as its key's create-revision (its token:
 * tokens stay strictly increasing per key; keys created together share a number, which is fine, a
 * token orders the terms of one key).
 *
 * No delay is added: a txn goes out at once (alone, exactly as it would unbatched) while fewer than
 * `maxInFlight` batches are in flight; beyond that they queue and the next batch takes everything
 * queued (up to `maxPerTxn` txns each) as soon as one returns. So 10,000 locks starting at once cost
 * ~160 creates and ~160 reads, not 20,000 calls, and a lone acquire still costs one plain txn.
 *
 * A batch that fails as a whole for a reason of its own (not the connection, not the shared lease)
 * is split and sent txn by txn, so one key's error (a permission, a server's lower `--max-txn-ops`)
 * stays that key's.
 */
export class TxnBatcher {
  readonly #session: EtcdSession;
  readonly #maxPerTxn: number;
  readonly #maxInFlight: number;
  #queue: Item[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(session: EtcdSession, options: { maxPerTxn?: number; maxInFlight?: number } = {}) {
    this.#session = session;
    // etcd's --max-txn-ops (default 128) bounds each level of a txn: 64 nested txns, each well within.
    this.#maxPerTxn = options.maxPerTxn ?? 64;
    this.#maxInFlight = options.maxInFlight ?? 32;
  }

  /** Sends `req` (alone or batched); resolves with its own response, the header being the batch's. */
  txn(what: string, req: ITxnRequest, opts: { group: string; signal?: AbortSignal | undefined; onAttempt?: () => void }): Promise<ITxnResponse> {
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(new AbortedError(`${what} aborted`, { backend: 'etcd', cause: signal.reason }));
    const p = new Promise<ITxnResponse>((resolve, reject) => {
      this.#queue.push({ what, req, group: opts.group, writes: writesOf(req), signal, onAttempt: opts.onAttempt, resolve, reject });
    });
    this.#schedule();
    return untilAborted(p, signal, () => new AbortedError(`${what} aborted`, { backend: 'etcd', cause: signal?.reason }));
  }

  /** Rejects what is queued (the session is closing). */
  close(err: unknown): void {
    for (const item of this.#queue.splice(0)) item.reject(err);
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return;
    this.#scheduled = true;
    // Every txn asked for in this tick joins the batch (10,000 locks starting at once ask in one tick).
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const chunk = this.#take();
      if (chunk.length > 0) this.#send(chunk);
    }
  }

  /** The next batch: the oldest item's group, up to maxPerTxn items, no key written twice. */
  #take(): Item[] {
    const group = this.#queue[0]!.group;
    const chunk: Item[] = [];
    const written = new Set<string>();
    const rest: Item[] = [];
    let i = 0;
    // Stops at a full chunk: the rest stays queued in order without being looked at (10,000 queued
    // txns would otherwise be scanned once per batch).
    for (; i < this.#queue.length && chunk.length < this.#maxPerTxn; i++) {
      const item = this.#queue[i]!;
      if (item.signal?.aborted) continue; // its caller already got the AbortedError
      if (item.group !== group || item.writes.some((k) => written.has(k))) {
        rest.push(item);
        continue;
      }
      for (const k of item.writes) written.add(k);
      chunk.push(item);
    }
    this.#queue = rest.length === 0 ? this.#queue.slice(i) : rest.concat(this.#queue.slice(i));
    return chunk;
  }

  #send(chunk: Item[]): void {
    this.#inFlight++;
    const done = (): void => {
      this.#inFlight--;
      if (this.#queue.length > 0) this.#schedule();
    };
    if (chunk.length === 1) {
      const [item] = chunk as [Item];
      this.#alone(item).finally(done);
      return;
    }
    const outer: ITxnRequest = { compare: [], success: chunk.map((i) => ({ request_txn: i.req })), failure: [] };
    this.#session
      .call(`${chunk[0]!.what} (batch of ${chunk.length})`, (rpc, o) => {
        for (const item of chunk) item.onAttempt?.();
        return rpc.kv.txn(outer, o);
      })
      .then(
        (res) => {
          chunk.forEach((item, i) => {
            const inner = res.responses?.[i]?.response_txn;
            if (!inner) return item.reject(new LeaderLockError(`${item.what}: etcd answered a batched txn without its response ${i}`, { backend: 'etcd' }));
            item.resolve({ header: res.header, succeeded: inner.succeeded, responses: inner.responses ?? [] });
          });
        },
        (err: unknown) => {
          // Undecided (the connection, the deadline) or the shared lease gone: the same answer for each.
          if (err instanceof BackendUnavailableError || isLeaseGone(err) || this.#session.closed) {
            for (const item of chunk) item.reject(err);
            return;
          }
          // Something else about one of the txns (or the batch's size): each one alone, so it stays its own.
          log('batch of %d txns failed (%s); sending them one by one', chunk.length, err instanceof Error ? err.message : String(err));
          for (const item of chunk) void this.#alone(item);
        },
      )
      .finally(done);
  }

  #alone(item: Item): Promise<void> {
    return this.#session
      .call(item.what, (rpc, o) => {
        item.onAttempt?.();
        return rpc.kv.txn(item.req, o);
      })
      .then(item.resolve, item.reject);
  }
}

/** Every key a txn's puts and deletes name, in either branch (nested txns included). */
function writesOf(req: ITxnRequest): string[] {
  const out: string[] = [];
  for (const op of [...(req.success ?? []), ...(req.failure ?? [])]) {
    const key = op.request_put?.key ?? op.request_delete_range?.key;
    if (key !== undefined) out.push(Buffer.from(key).toString('latin1'));
    if (op.request_delete_range?.range_end !== undefined) out.push('\0range'); // a range delete never shares a batch with another
    if (op.request_txn) out.push(...writesOf(op.request_txn));
  }
  return out;
}
