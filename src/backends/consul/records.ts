import type { LockState } from '../../core/lock.js';
import type { KvPair } from './client.js';

/**
 * Pure mapping from the KV entries under the lock's key (one `?recurse` read returns the key and
 * its `-successor` nomination together) to the neutral `LockState`.
 */

export interface LockEntries {
  leader: KvPair | undefined;
  successor: KvPair | undefined;
  /** `<key>-meta`: the leader's metadata, its Flags = the token of the term that wrote it. */
  meta?: KvPair | undefined;
}

export function pickEntries(entries: readonly KvPair[], key: string, successorKey: string, metaKey = `${key}-meta`): LockEntries {
  return { leader: entries.find((e) => e.key === key), successor: entries.find((e) => e.key === successorKey), meta: entries.find((e) => e.key === metaKey) };
}

/** A key counts as held only while a session holds it; a key without a session is a stale leftover (free). */
export function isHeld(e: KvPair | undefined): e is KvPair & { session: string } {
  return e !== undefined && e.session !== undefined;
}

/**
 * The state observers see. `ttlMs` is this observer's configured ttl: reading the holder's session
 * would cost a request per read, and every leaderlock process on a key uses the same ttl in practice.
 * A held key with an empty value has no holder name; it is reported as holder '(unknown)' — held,
 * never overwritten — rather than as free.
 */
export function toLockState(e: LockEntries, ttlMs: number): LockState {
  const state: LockState = {};
  if (isHeld(e.leader)) {
    state.leader = { holder: e.leader.value === '' ? '(unknown)' : e.leader.value, token: e.leader.createIndex, ttlMs, live: true };
    // Metadata counts only when the holder's session wrote it for this term (Flags = token).
    const m = e.meta;
    if (m && m.session === e.leader.session && BigInt(m.flags) === e.leader.createIndex) state.leader.metadata = m.value;
  }
  if (isHeld(e.successor) && e.successor.value !== '') state.successor = e.successor.value;
  return state;
}

/** Patroni's failover record: `{"leader": old, "member": successor}`. */
export function failoverValue(leader: string, member: string): string {
  return JSON.stringify({ leader, member });
}
