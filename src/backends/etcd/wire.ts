import type { IKeyValue, ITxnRequest, ITxnResponse, IRequestOp, ICompare } from 'etcd3';
import type { LeaderRecord, LockState } from '../../core/lock.js';

/**
 * Wire mapping for the etcd backend: pure functions from our operations to etcd v3 txn requests and
 * from etcd key-values to `LeaderRecord`s. No I/O here, so every mapping is unit tested.
 *
 * Revisions and lease IDs are int64 on the wire; the etcd3 client decodes them as decimal strings
 * (`longs: String`). We keep them as strings on the wire and as `bigint` in our types, never `number`
 * (they can exceed 2^53).
 */

/** A lease ID as etcd sends it: a decimal string; '0' means "no lease". */
export type LeaseId = string;

export const NO_LEASE: LeaseId = '0';

/** Keys that make up one lock: the leader key, the handover nomination, and Patroni's failover record. */
export interface LockKeys {
  leader: string;
  successor: string;
  /** Leader metadata, `<key>-meta`, written with the leader key on the same lease (same revision). */
  meta: string;
  /** Set on a Patroni layout (the key ends in `/leader`): `<scope>/failover`. */
  failover: string | undefined;
  /** Set on a Patroni layout: `<scope>/members/`, where each Patroni member registers under its name. */
  members: string | undefined;
}

export function lockKeys(key: string): LockKeys {
  return {
    leader: key,
    successor: `${key}-successor`,
    meta: `${key}-meta`,
    failover: key.endsWith('/leader') ? `${key.slice(0, -'/leader'.length)}/failover` : undefined,
    members: key.endsWith('/leader') ? `${key.slice(0, -'/leader'.length)}/members/` : undefined,
  };
}

/** Patroni's default layout: `<prefix>/<scope>/leader` (prefix default '/service'). */
export function patroniKey(scope: string, prefix = '/service'): string {
  return `${prefix.replace(/\/+$/, '')}/${scope}/leader`;
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

function createRevisionIs(key: string, revision: bigint): ICompare {
  return { key: b(key), target: 'Create', result: 'Equal', create_revision: revision.toString() };
}
function leaseIs(key: string, lease: LeaseId): ICompare {
  return { key: b(key), target: 'Lease', result: 'Equal', lease };
}
function modRevisionIs(key: string, revision: string): ICompare {
  return { key: b(key), target: 'Mod', result: 'Equal', mod_revision: revision };
}
function valueIs(key: string, value: string): ICompare {
  return { key: b(key), target: 'Value', result: 'Equal', value: b(value) };
}
function rangeOf(key: string): IRequestOp {
  return { request_range: { key: b(key) } };
}
function putOf(key: string, value: string, lease: LeaseId): IRequestOp {
  return { request_put: { key: b(key), value: b(value), lease } };
}
function deleteOf(key: string): IRequestOp {
  return { request_delete_range: { key: b(key) } };
}

/**
 * Acquire, the common case: create the leader key with our lease if it does not exist and nobody is
 * nominated. On failure etcd returns both keys (one consistent read) so the caller learns why.
 */
export function acquireTxn(keys: LockKeys, holder: string, lease: LeaseId, metadata?: string, ignoredSuccessor?: bigint): ITxnRequest {
  // `ignoredSuccessor`: the create-revision of a lease-less nomination (not ours to delete, and no
  // nomination at all: it would never expire). The txn still fails if a real one replaced it.
  const { compare, failure } = patroniGuards(keys, holder);
  return {
    compare: [createRevisionIs(keys.leader, 0n), createRevisionIs(keys.successor, ignoredSuccessor ?? 0n), ...compare],
    success: [putOf(keys.leader, holder, lease), ...metaPut(keys, lease, metadata)],
    failure: [rangeOf(keys.leader), rangeOf(keys.successor), ...failure],
  };
}

/**
 * Patroni layout: no failover request (`<scope>/failover`) and no Patroni member registered under our
 * name (`<scope>/members/<holder>`); when either is there the txn fails and returns them (range results
 * 3 and 4), so the caller decides without another read. `failoverRevision`: the request's mod_revision
 * the caller judged (acquire past it and delete it in the same txn).
 */
function patroniGuards(keys: LockKeys, holder: string, failoverRevision?: string): { compare: ICompare[]; failure: IRequestOp[] } {
  if (!keys.failover || !keys.members) return { compare: [], failure: [] };
  const member = memberKey(keys, holder)!;
  return {
    compare: [failoverRevision === undefined ? createRevisionIs(keys.failover, 0n) : modRevisionIs(keys.failover, failoverRevision), createRevisionIs(member, 0n)],
    failure: [rangeOf(keys.failover), rangeOf(member)],
  };
}

/** `<scope>/members/<holder>` on a Patroni layout. */
export function memberKey(keys: LockKeys, holder: string): string | undefined {
  return keys.members === undefined ? undefined : `${keys.members}${holder}`;
}

/** Acquire on a Patroni layout past a failover request judged not to hold us back (or naming us): consume it in the same revision. */
export function failoverAcquireTxn(keys: LockKeys, holder: string, lease: LeaseId, failoverRevision: string, metadata?: string): ITxnRequest {
  const { compare, failure } = patroniGuards(keys, holder, failoverRevision);
  return {
    compare: [createRevisionIs(keys.leader, 0n), createRevisionIs(keys.successor, 0n), ...compare],
    success: [putOf(keys.leader, holder, lease), ...metaPut(keys, lease, metadata), deleteOf(keys.failover!)],
    failure: [rangeOf(keys.leader), rangeOf(keys.successor), ...failure],
  };
}

/**
 * Acquire by the nominated successor: the leader key is free and the nomination names `holder`. Takes
 * the key and removes the nomination (and Patroni's failover record) in the same revision.
 */
export function nomineeAcquireTxn(keys: LockKeys, holder: string, lease: LeaseId, metadata?: string): ITxnRequest {
  const success = [putOf(keys.leader, holder, lease), ...metaPut(keys, lease, metadata), deleteOf(keys.successor)];
  if (keys.failover) success.push(deleteOf(keys.failover));
  return {
    compare: [createRevisionIs(keys.leader, 0n), valueIs(keys.successor, holder)],
    success,
    failure: [rangeOf(keys.leader), rangeOf(keys.successor)],
  };
}

/**
 * The metadata key rides on the term's lease and is written in the acquire's revision, so it is
 * exactly as old as the leader key it belongs to (see `toLockState`) and dies with the lease.
 */
function metaPut(keys: LockKeys, lease: LeaseId, metadata: string | undefined): IRequestOp[] {
  return metadata === undefined ? [] : [putOf(keys.meta, metadata, lease)];
}

/** Renew's ownership proof: the key is the one our term created and still rides on our lease. */
export function renewTxn(keys: LockKeys, token: bigint, lease: LeaseId): ITxnRequest {
  return ownershipTxn([{ key: keys.leader, token, lease }]);
}

/**
 * The ownership proof of several keys in one txn (batched renews of the locks on one session): every
 * key is the one its term created and still rides on its lease. It succeeds only if all hold; on
 * failure etcd returns every key, in order, read at the same revision, so each is judged alone.
 */
export function ownershipTxn(items: readonly { key: string; token: bigint; lease: LeaseId }[]): ITxnRequest {
  return {
    compare: items.flatMap((i) => [createRevisionIs(i.key, i.token), leaseIs(i.key, i.lease)]),
    success: [],
    failure: items.map((i) => rangeOf(i.key)),
  };
}

/**
 * Release: delete the key only if it is still this term's. With a successor, write the nomination on
 * its own fresh lease (so it expires by itself) and, on a Patroni layout, Patroni's failover record.
 */
export function releaseTxn(keys: LockKeys, token: bigint, handover?: { successor: string; from: string; lease: LeaseId }): ITxnRequest {
  const success = [deleteOf(keys.leader), deleteOf(keys.meta)];
  if (handover) {
    success.push(putOf(keys.successor, handover.successor, handover.lease));
    if (keys.failover) success.push(putOf(keys.failover, patroniFailoverValue(handover.from, handover.successor), NO_LEASE));
  }
  return { compare: [createRevisionIs(keys.leader, token)], success, failure: [rangeOf(keys.leader)] };
}

/** Patroni's failover record, as `patronictl switchover` writes it. */
export function patroniFailoverValue(leader: string, member: string): string {
  return JSON.stringify({ leader, member });
}

/** One consistent read of the leader key, the nomination and the leader's metadata. */
export function readTxn(keys: LockKeys): ITxnRequest {
  return { compare: [], success: [rangeOf(keys.leader), rangeOf(keys.successor), rangeOf(keys.meta)], failure: [] };
}

/** The key-values returned by the range ops of a txn response, in op order (undefined: key absent). */
export function rangeResults(res: ITxnResponse): (IKeyValue | undefined)[] {
  return (res.responses ?? []).filter((r) => r.response_range).map((r) => r.response_range.kvs?.[0]);
}

export function revisionOf(res: { header: { revision: string } }): bigint {
  return BigInt(res.header.revision);
}

/** What a stored leader key says. `foreign`: no lease (etcdctl put): held forever, never stolen. */
export interface StoredLeader {
  holder: string;
  token: bigint;
  lease: LeaseId;
  foreign: boolean;
}

export function storedLeader(kv: IKeyValue | undefined): StoredLeader | undefined {
  if (!kv) return undefined;
  const lease = leaseOf(kv);
  return {
    // An empty value would break "holder is never ''": show it as a placeholder that names the situation.
    holder: kv.value.length > 0 ? kv.value.toString('utf8') : '(empty)',
    token: BigInt(kv.create_revision),
    lease,
    foreign: lease === NO_LEASE,
  };
}

/**
 * A `<key>-successor` without a lease (etcdctl put, another tool). A nomination is a promise that
 * expires by itself (release writes it on a fresh, never-renewed lease); one that never expires would
 * block the election for ever, so it is ignored (and reported as a warning), never deleted.
 */
export function isForeignSuccessor(kv: IKeyValue | undefined): boolean {
  return kv !== undefined && leaseOf(kv) === NO_LEASE;
}

export function leaseOf(kv: IKeyValue): LeaseId {
  const l = kv.lease;
  return l === undefined || l === null || l === '' ? NO_LEASE : String(l);
}

/**
 * The observer's view. `ttlMs` is the holder lease's granted TTL when known, else `fallbackTtlMs`;
 * `metadata` from `<key>-meta` when it was written with this term;
 * a key without a lease never expires (`Infinity`).
 */
export function toLockState(leader: IKeyValue | undefined, successor: IKeyValue | undefined, ttlMsOf: (lease: LeaseId) => number, meta?: IKeyValue): LockState {
  const state: LockState = {};
  const s = storedLeader(leader);
  if (s) {
    const record: LeaderRecord = { holder: s.holder, token: s.token, ttlMs: s.foreign ? Number.POSITIVE_INFINITY : ttlMsOf(s.lease), live: true };
    // Metadata belongs to this term only if written in the revision that created the leader key; an
    // older one (a previous term on the same lease) is ignored.
    if (meta && BigInt(meta.mod_revision) === s.token) record.metadata = meta.value.toString('utf8');
    state.leader = record;
  }
  // A nomination without a lease would hold everyone back for ever: it is no nomination (see isForeignSuccessor).
  if (successor && successor.value.length > 0 && !isForeignSuccessor(successor)) state.successor = successor.value.toString('utf8');
  return state;
}

/** etcd lease TTLs are whole seconds: round up, never down (rounding only adds safety). */
export function ttlSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

/** The end of a key prefix range (`key` + 1 in the last byte), as etcd's `WithPrefix`. */
export function prefixEnd(key: string): Buffer {
  const end = Buffer.from(key, 'utf8');
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
