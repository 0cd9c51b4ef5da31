import type { IKeyValue, ITxnRequest, ITxnResponse } from 'etcd3';
import type { Timer } from '../../core/clock.js';
import { untilAborted } from '../../core/abort.js';
import { AbortedError } from '../../core/errors.js';
import type { EtcdSession, KeepAliveResult } from './session.js';
import * as wire from './wire.js';

/** What etcd said about one key in a batched ownership proof. */
export interface OwnershipProof {
  /** `create_revision == token && lease == ours` held, at the revision of the txn. */
  owned: boolean;
  /** The key as etcd returned it when the batch's compare failed (undefined: absent, or owned). */
  current: IKeyValue | undefined;
}

/** Both answers of one renew, each settled (the caller decides from the pair). */
export interface RenewAnswers {
  keepAlive: PromiseSettledResult<KeepAliveResult>;
  proof: PromiseSettledResult<OwnershipProof>;
}

interface Item {
  key: string;
  token: bigint;
  lease: wire.LeaseId;
  /** The prebuilt one-key proof of this (key, token, lease), used when the batch holds this key alone. */
  single: ITxnRequest | undefined;
  keepAlive: PromiseSettledResult<KeepAliveResult> | undefined;
  proof: PromiseSettledResult<OwnershipProof> | undefined;
  /** Resolves once both answers are in (never rejects: each answer carries its own failure). */
  done: Deferred<RenewAnswers>;
}

function settleKeepAlive(item: Item, r: PromiseSettledResult<KeepAliveResult>): void {
  item.keepAlive = r;
  if (item.proof) item.done.resolve({ keepAlive: r, proof: item.proof });
}

function settleProof(item: Item, r: PromiseSettledResult<OwnershipProof>): void {
  item.proof = r;
  if (item.keepAlive) item.done.resolve({ keepAlive: item.keepAlive, proof: r });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // the caller may stop listening (aborted); never an unhandled rejection
  return { promise, resolve, reject };
}

/**
 * Renews of every lock on one session, batched: one lease keep-alive and one txn that proves
 * ownership of every key in the batch (per key `create_revision == token && lease == ours`, up to
 * `maxKeysPerTxn` keys per txn; etcd's default limit is 128 compares). At most one batch per
 * `windowMs` while several keys ride on the session's lease: the first renew after a quiet window
 * goes out at once (in the same tick, so renews of one tick share it), later ones wait for the
 * window to end. With one key there is no window: a single lock renews exactly as before; 1,000
 * locks cost one keep-alive and a txn or two per window instead of 2 requests each.
 *
 * Safety: each renew's requests are sent after the renew was called (never an older answer), the
 * keep-alive's send time bounds validUntil as for a single renew, and etcd evaluates every compare
 * at one revision. When the txn fails because some key is no longer ours, its failure branch reads
 * every key of the batch at that same revision, and each key is judged alone from that read.
 */
export class RenewBatcher {
  readonly #session: EtcdSession;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  #queue: Item[] = [];
  #timer: Timer | undefined;
  #microtask = false;
  #lastFlush = Number.NEGATIVE_INFINITY;

  constructor(session: EtcdSession, options: { windowMs: number; maxKeysPerTxn?: number }) {
    this.#session = session;
    this.#windowMs = options.windowMs;
    this.#maxKeys = options.maxKeysPerTxn ?? 64;
  }

  /**
   * Queues one key's renew; both answers come from the batch it joins, and the promise settles once
   * both are in (one promise per renew, not two plus an allSettled). Rejects only when `signal` aborts.
   */
  renew(key: string, token: bigint, lease: wire.LeaseId, signal?: AbortSignal, single?: ITxnRequest): Promise<RenewAnswers> {
    const item: Item = { key, token, lease, single, keepAlive: undefined, proof: undefined, done: deferred() };
    this.#queue.push(item);
    this.#schedule();
    return untilAborted(item.done.promise, signal, () => new AbortedError('etcd renew aborted', { backend: 'etcd', cause: signal?.reason }));
  }

  /** Rejects what is queued (the session is closing). */
  close(err: unknown): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    for (const item of this.#queue.splice(0)) item.done.resolve({ keepAlive: { status: 'rejected', reason: err }, proof: { status: 'rejected', reason: err } });
  }

  #schedule(): void {
    if (this.#timer || this.#microtask) return;
    const clock = this.#session.clock;
    // One key on the session: nothing to batch with, so never wait (a renew right after another — a
    // retry, a check the watch asked for — goes out at once).
    const window = this.#session.holdingKeys > 1 ? this.#windowMs : 0;
    const wait = this.#lastFlush + window - clock.now();
    if (wait <= 0) {
      this.#microtask = true;
      queueMicrotask(() => {
        this.#microtask = false;
        this.#flush();
      });
    } else {
      this.#timer = clock.setTimer(() => {
        this.#timer = undefined;
        this.#flush();
      }, wait, { unref: true });
    }
  }

  #flush(): void {
    const items = this.#queue.splice(0);
    if (items.length === 0) return;
    this.#lastFlush = this.#session.clock.now();
    const byLease = new Map<wire.LeaseId, Item[]>();
    for (const item of items) {
      const group = byLease.get(item.lease);
      if (group) group.push(item);
      else byLease.set(item.lease, [item]);
    }
    for (const [lease, group] of byLease) {
      this.#session.keepAlive(lease).then(
        (value) => {
          for (const item of group) settleKeepAlive(item, { status: 'fulfilled', value });
        },
        (reason: unknown) => {
          for (const item of group) settleKeepAlive(item, { status: 'rejected', reason });
        },
      );
      for (let i = 0; i < group.length; i += this.#maxKeys) this.#prove(group.slice(i, i + this.#maxKeys));
    }
  }

  #prove(chunk: Item[]): void {
    const req = (chunk.length === 1 && chunk[0]!.single) || wire.ownershipTxn(chunk.map((c) => ({ key: c.key, token: c.token, lease: c.lease })));
    this.#session.call('etcd renew', (rpc, o) => rpc.kv.txn(req, o)).then(
      (res: ITxnResponse) => {
        const current = res.succeeded ? [] : wire.rangeResults(res);
        chunk.forEach((c, i) => {
          if (res.succeeded) return settleProof(c, { status: 'fulfilled', value: { owned: true, current: undefined } });
          const kv = current[i];
          const owned = !!kv && BigInt(kv.create_revision) === c.token && wire.leaseOf(kv) === c.lease;
          settleProof(c, { status: 'fulfilled', value: { owned, current: owned ? undefined : kv } });
        });
      },
      (reason: unknown) => {
        for (const c of chunk) settleProof(c, { status: 'rejected', reason });
      },
    );
  }
}
