/**
 * Patroni's manual failover/switchover request (`patronictl switchover|failover`): the `/failover`
 * key on etcd and Consul (`<prefix>/<scope>/failover`), the `<scope>-failover` object's annotations
 * on Kubernetes. Fields: `leader` (the member stepping down), `member` (the candidate), `scheduled_at`.
 *
 * leaderlock honours it as its own handover nomination (issue 16, item 10):
 * - `member` set: only that candidate may acquire the free lock;
 * - only `leader` set: that member may not take the lock back; anyone else may;
 * - the request counts for `ttlMs` after this observer first saw it (it has no expiry of its own;
 *   Patroni's members give up on an unhealthy candidate the same way), then it is ignored;
 * - whoever acquires while a request is there consumes it (deletes it / clears the three fields), as
 *   Patroni's new leader does.
 * `scheduled_at` is not waited for: a scheduled switchover is carried out by the running leader,
 * which holds the lock until then, and a free lock cannot wait for a schedule.
 */
export interface PatroniFailoverRequest {
  leader: string | undefined;
  member: string | undefined;
}

/** Parses Patroni's stored value: JSON `{"leader","member","scheduled_at"}` or the legacy `leader:member`. */
export function parsePatroniFailover(value: string): PatroniFailoverRequest | undefined {
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  let leader: string | undefined;
  let member: string | undefined;
  try {
    const j = JSON.parse(value) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) return undefined;
    leader = str((j as Record<string, unknown>).leader);
    member = str((j as Record<string, unknown>).member);
  } catch {
    const i = value.indexOf(':');
    if (i < 0) return undefined;
    leader = str(value.slice(0, i).trim());
    member = str(value.slice(i + 1).trim());
  }
  return leader === undefined && member === undefined ? undefined : { leader, member };
}

/** What a request means for `holder`: 'us' (we are the candidate), 'other' (hold back), 'none' (no live request for anyone). */
export type FailoverVerdict = 'us' | 'other' | 'none';

/** Observer-side judgement of the request, on this process's monotonic clock. */
export class FailoverJudge {
  #identity: string | undefined;
  #seenAt = 0;
  readonly #ttlMs: number;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /**
   * `identity` identifies one write of the request (etcd mod_revision, Consul ModifyIndex, the
   * annotations' values): its countdown starts when this observer first sees it.
   */
  judge(req: PatroniFailoverRequest | undefined, identity: string, holder: string, now: number): FailoverVerdict {
    if (!req) {
      this.#identity = undefined;
      return 'none';
    }
    if (identity !== this.#identity) {
      this.#identity = identity;
      this.#seenAt = now;
    }
    if (now >= this.#seenAt + this.#ttlMs) return 'none';
    if (req.member !== undefined) return req.member === holder ? 'us' : 'other';
    return req.leader === holder ? 'other' : 'none';
  }
}
