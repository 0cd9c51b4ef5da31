import type { LeaderRecord, LockState } from '../core/lock.js';
import type { LeaderLock } from '../core/lock.js';
import type { Clock } from '../core/clock.js';
import { formatDuration } from './duration.js';

/** `leaderlock status` / `watch` output. Wall-clock ages are for humans only (they come from the record's timestamps). */
export interface StateJson {
  key: string;
  backend?: string;
  holder: string | null;
  token: string | null;
  ttlMs: number | null;
  live: boolean;
  successor: string | null;
  acquiredAt: string | null;
  renewedAt: string | null;
  /** Since acquiredAt (how long this holder has led), by our wall clock. */
  ageMs: number | null;
  /** Since renewedAt, by our wall clock. */
  renewedAgoMs: number | null;
  /** What the holder published with its term; present only when it did. */
  metadata?: string;
}

export function stateToJson(key: string, backend: string | undefined, s: LockState, now: Date): StateJson {
  const l: LeaderRecord | undefined = s.leader;
  const since = (d: Date | undefined): number | null => (d ? Math.max(0, now.getTime() - d.getTime()) : null);
  const out: StateJson = {
    key,
    holder: l?.holder ?? null,
    token: l ? l.token.toString() : null,
    ttlMs: l?.ttlMs ?? null,
    live: l?.live ?? false,
    successor: s.successor ?? null,
    acquiredAt: l?.acquiredAt?.toISOString() ?? null,
    renewedAt: l?.renewedAt?.toISOString() ?? null,
    ageMs: since(l?.acquiredAt),
    renewedAgoMs: since(l?.renewedAt),
  };
  if (l?.metadata !== undefined) out.metadata = l.metadata;
  return backend === undefined ? out : { backend, ...out };
}

export function stateLine(j: StateJson): string {
  if (j.holder === null) return `no leader${j.successor ? ` (successor named: ${j.successor})` : ''}`;
  const parts = [`holder=${j.holder}`, `token=${j.token}`, `ttl=${j.ttlMs === null ? '-' : formatDuration(j.ttlMs)}`];
  parts.push(`age=${j.ageMs === null ? '-' : formatDuration(j.ageMs)}`);
  if (j.renewedAgoMs !== null) parts.push(`renewed=${formatDuration(j.renewedAgoMs)} ago`);
  if (!j.live) parts.push('EXPIRED');
  if (j.successor) parts.push(`successor=${j.successor}`);
  if (j.metadata !== undefined) parts.push(`metadata=${JSON.stringify(j.metadata)}`);
  return parts.join(' ');
}

export async function status(lock: LeaderLock, key: string, json: boolean, clock: Clock, out: (line: string) => void): Promise<void> {
  const s = await lock.get();
  const j = stateToJson(key, lock.backend, s, clock.date());
  out(json ? JSON.stringify(j) : stateLine(j));
}

/** One line per change until `signal` aborts. Each line carries the wall time it was seen. */
export async function watch(lock: LeaderLock, key: string, json: boolean, clock: Clock, signal: AbortSignal, out: (line: string) => void): Promise<void> {
  for await (const s of lock.watch({ signal })) {
    const now = clock.date();
    const j = stateToJson(key, lock.backend, s, now);
    out(json ? JSON.stringify({ at: now.toISOString(), ...j }) : `${now.toISOString()} ${stateLine(j)}`);
  }
}
