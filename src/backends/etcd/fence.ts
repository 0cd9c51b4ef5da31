import type { IRequestOp, IResponseOp, ITxnRequest, KVClient } from 'etcd3';
import type { Term } from '../../core/lock.js';

/**
 * Fenced writes on etcd: make your own write conditional on still holding the leader key, in the same
 * etcd transaction — `create_revision(leaderKey) == term.token`. A leader that was paused past its
 * term (GC, SIGSTOP, VM suspend) and wakes up after a successor took over cannot write: the successor's
 * key has a newer create-revision (or the key is gone), so etcd refuses the txn atomically.
 *
 * For any other store, do the same with `term.token`: store the highest token seen next to the data
 * and refuse writes that carry a lower one (see the README, "Fencing").
 */

export type FencedOp =
  | { put: string; value: string | Buffer; /** Lease ID (decimal string) to attach, default none. */ lease?: string }
  | { delete: string };

export interface FenceResult {
  /** true: the ops were applied. */
  ok: boolean;
  /** false because `term.isValid()` was already false (nothing was sent), or etcd's compare failed. */
  refusedBy?: 'term' | 'etcd';
  /** Revision of the txn (when it was sent). */
  revision?: bigint;
  /** etcd's responses to the ops, in order (when applied). */
  responses?: IResponseOp[];
}

/** The txn: compare the leader key's create-revision with the token, then apply `ops`. Pure. */
export function fencedTxnRequest(leaderKey: string, token: bigint, ops: readonly FencedOp[]): ITxnRequest {
  const success: IRequestOp[] = ops.map((op) =>
    'put' in op
      ? { request_put: { key: Buffer.from(op.put, 'utf8'), value: typeof op.value === 'string' ? Buffer.from(op.value, 'utf8') : op.value, lease: op.lease ?? '0' } }
      : { request_delete_range: { key: Buffer.from(op.delete, 'utf8') } },
  );
  return {
    compare: [{ key: Buffer.from(leaderKey, 'utf8'), target: 'Create', result: 'Equal', create_revision: token.toString() }],
    success,
    failure: [],
  };
}

/**
 * Applies `ops` only while `term` still owns `leaderKey`. Checks `term.isValid()` first (a stale
 * leader does not even send), then lets etcd decide atomically. Works with any etcd3 client:
 * `fencedWrite(etcd3client.kv, lock.key, term, [{ put: '/app/config', value: '…' }])`.
 * Errors of the call (unreachable etc.) are thrown as the etcd3 client throws them: the write may or
 * may not have been applied; read before retrying.
 */
export async function fencedWrite(
  kv: Pick<KVClient, 'txn'>,
  leaderKey: string,
  term: Pick<Term, 'token' | 'isValid'>,
  ops: readonly FencedOp[],
  callOptions?: { deadline?: Date },
): Promise<FenceResult> {
  if (!term.isValid()) return { ok: false, refusedBy: 'term' };
  const res = await kv.txn(fencedTxnRequest(leaderKey, term.token, ops), callOptions);
  const revision = BigInt(res.header.revision);
  return res.succeeded ? { ok: true, revision, responses: res.responses } : { ok: false, refusedBy: 'etcd', revision };
}
