import { MalformedRecordError, jsonValue, quoteValue } from '../../core/errors.js';
import type { LeaderRecord } from '../../core/lock.js';

/**
 * Pure wire mapping between Kubernetes objects and leaderlock's neutral record, in the style of
 * client-go's `LeaseSpecToLeaderElectionRecord` / `LeaderElectionRecordToLeaseSpec`. No I/O, no clock.
 *
 * Two layouts:
 * - Lease (`coordination.k8s.io/v1`) spec, as client-go writes it: `holderIdentity`,
 *   `leaseDurationSeconds`, `acquireTime`/`renewTime` (MicroTime), `leaseTransitions`.
 * - Patroni annotations on an Endpoints/ConfigMap: `leader`, `ttl` (seconds), `acquireTime`,
 *   `renewTime`, `transitions`, all strings.
 *
 * Raw time strings are kept as written: together with holder and transitions they identify one write,
 * which is what an observer compares to judge expiry (see observer.ts).
 */

/** The leader record as stored, before an observer judges it live or expired. */
export interface WireRecord {
  /** undefined: nobody holds the lock (released, or never held). Never ''. */
  holder: string | undefined;
  /** Recorded lease duration in whole seconds; undefined when the object has none. */
  durationSeconds: number | undefined;
  acquireTime: string | undefined;
  renewTime: string | undefined;
  /** The fencing token (Lease `leaseTransitions`, Patroni `transitions`); 0 when absent. */
  transitions: number;
}

/** The fields of a Lease spec we read and write; others (`strategy`, `preferredHolder`) are kept as they are. */
export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
  [field: string]: unknown;
}

export type Annotations = Record<string, string>;

/** Patroni's annotation names on the leader object. */
export const PATRONI_LEADER = 'leader';
const PATRONI_FIELDS = ['leader', 'ttl', 'acquireTime', 'renewTime', 'transitions'] as const;

/** Servers that count whole seconds get ceil(ttlMs / 1000): rounding only adds safety. */
export function ttlSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

/**
 * RFC 3339 with exactly six fractional digits and `Z`, as Kubernetes `MicroTime`
 * ("2006-01-02T15:04:05.000000Z07:00"). `micros` (0–999) adds sub-millisecond precision that `Date`
 * lacks; the lock uses it to make every renewTime it writes unique.
 */
export function formatMicroTime(date: Date, micros = 0): string {
  if (!Number.isFinite(date.getTime())) throw new RangeError('formatMicroTime: invalid date');
  const us = Math.min(999, Math.max(0, Math.trunc(micros)));
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(us).padStart(3, '0')}Z`;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses RFC 3339 (Kubernetes MicroTime/Time, Python isoformat with offset). Throws `MalformedRecordError`. */
export function parseTime(value: string, what: string): Date {
  const m = RFC3339.exec(value);
  // Date keeps milliseconds only: drop further digits before parsing (V8 would accept, others may not).
  const normalised = m ? value.replace(/(\.\d{3})\d+/, '$1') : '';
  const t = m ? Date.parse(normalised.replace(' ', 'T')) : NaN;
  if (!Number.isFinite(t)) throw new MalformedRecordError(`${what} is not an RFC 3339 time: ${quoteValue(value)}`, { backend: 'kubernetes' });
  return new Date(t);
}

function malformed(what: string, value: unknown, rule: string): MalformedRecordError {
  return new MalformedRecordError(`${what} ${rule}, got ${jsonValue(value)}`, { backend: 'kubernetes' });
}

function optionalTime(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw malformed(what, value, 'must be a time string');
  parseTime(value, what);
  return value;
}

/** Lease spec → record. `where` names the object in error messages. Throws `MalformedRecordError`. */
export function leaseSpecToRecord(spec: LeaseSpec | undefined, where = 'lease'): WireRecord {
  const s = spec ?? {};
  const holder = s.holderIdentity;
  if (holder !== undefined && holder !== null && typeof holder !== 'string') throw malformed(`${where} spec.holderIdentity`, holder, 'must be a string');
  const duration = s.leaseDurationSeconds;
  if (duration !== undefined && duration !== null && !(Number.isInteger(duration) && duration > 0)) {
    throw malformed(`${where} spec.leaseDurationSeconds`, duration, 'must be a positive integer');
  }
  const transitions = s.leaseTransitions;
  if (transitions !== undefined && transitions !== null && !(Number.isInteger(transitions) && transitions >= 0)) {
    throw malformed(`${where} spec.leaseTransitions`, transitions, 'must be a non-negative integer');
  }
  return {
    holder: holder ? holder : undefined,
    durationSeconds: duration ?? undefined,
    acquireTime: optionalTime(s.acquireTime, `${where} spec.acquireTime`),
    renewTime: optionalTime(s.renewTime, `${where} spec.renewTime`),
    transitions: transitions ?? 0,
  };
}

/**
 * Record → Lease spec, keeping unknown fields of `base`. A record without holder is client-go's
 * released form: no `holderIdentity` (the caller sets `durationSeconds: 1`).
 */
export function recordToLeaseSpec(record: WireRecord, base: LeaseSpec = {}): LeaseSpec {
  const spec: LeaseSpec = { ...base };
  setOrDelete(spec, 'holderIdentity', record.holder);
  setOrDelete(spec, 'leaseDurationSeconds', record.durationSeconds);
  setOrDelete(spec, 'acquireTime', record.acquireTime);
  setOrDelete(spec, 'renewTime', record.renewTime);
  spec.leaseTransitions = record.transitions;
  return spec;
}

const DIGITS = /^\d{1,10}$/;

/** Patroni annotations → record. Throws `MalformedRecordError` (Patroni itself silently falls back to defaults). */
export function annotationsToRecord(annotations: Readonly<Record<string, unknown>> | undefined, where = 'object'): WireRecord {
  const a = annotations ?? {};
  for (const f of PATRONI_FIELDS) {
    if (a[f] !== undefined && a[f] !== null && typeof a[f] !== 'string') throw malformed(`${where} annotation ${f}`, a[f], 'must be a string');
  }
  const leader = a.leader as string | undefined;
  const ttl = a.ttl as string | undefined;
  const transitions = a.transitions as string | undefined;
  if (ttl !== undefined && ttl !== null && !(DIGITS.test(ttl) && Number(ttl) > 0)) throw malformed(`${where} annotation ttl`, ttl, 'must be a positive integer number of seconds');
  if (transitions !== undefined && transitions !== null && transitions !== '' && !DIGITS.test(transitions)) {
    throw malformed(`${where} annotation transitions`, transitions, 'must be a non-negative integer');
  }
  return {
    holder: leader ? leader : undefined,
    durationSeconds: ttl ? Number(ttl) : undefined,
    acquireTime: optionalTime(a.acquireTime, `${where} annotation acquireTime`),
    renewTime: optionalTime(a.renewTime, `${where} annotation renewTime`),
    transitions: transitions ? Number(transitions) : 0,
  };
}

/**
 * Record → annotations, keeping every other annotation of `base` (Patroni's `optime`, `slots`, our
 * successor nomination). A record without holder drops `leader` and keeps the rest, as Patroni's
 * `delete_leader` does.
 */
export function recordToAnnotations(record: WireRecord, base: Readonly<Annotations> = {}): Annotations {
  const out: Annotations = { ...base };
  setOrDelete(out, 'leader', record.holder);
  setOrDelete(out, 'ttl', record.durationSeconds === undefined ? undefined : String(record.durationSeconds));
  setOrDelete(out, 'acquireTime', record.acquireTime);
  setOrDelete(out, 'renewTime', record.renewTime);
  out.transitions = String(record.transitions);
  return out;
}

/** The neutral `LeaderRecord` users see; undefined when nobody holds the lock. */
export function toLeaderRecord(record: WireRecord, live: boolean, fallbackTtlMs: number): LeaderRecord | undefined {
  if (record.holder === undefined) return undefined;
  const out: LeaderRecord = {
    holder: record.holder,
    token: BigInt(record.transitions),
    ttlMs: durationMs(record, fallbackTtlMs),
    live,
    transitions: record.transitions,
  };
  if (record.acquireTime) out.acquiredAt = parseTime(record.acquireTime, 'acquireTime');
  if (record.renewTime) out.renewedAt = parseTime(record.renewTime, 'renewTime');
  return out;
}

/** The recorded duration in ms; a record without one (a hand-written object) gets the observer's own ttl, as Patroni does. */
export function durationMs(record: WireRecord, fallbackTtlMs: number): number {
  return record.durationSeconds === undefined ? fallbackTtlMs : record.durationSeconds * 1000;
}

/** Identifies one write of the record: an observer restarts its expiry countdown when this changes. */
export function recordIdentity(record: WireRecord): string {
  return JSON.stringify([record.holder ?? null, record.transitions, record.renewTime ?? null, record.acquireTime ?? null, record.durationSeconds ?? null]);
}

function setOrDelete<T extends object, K extends keyof T & string>(target: T, key: K, value: T[K] | undefined): void {
  if (value === undefined) delete target[key];
  else target[key] = value;
}

/** What a client-go observer compares (json.Marshal of its record: times at whole seconds). */
export function clientGoView(r: WireRecord): string {
  const sec = (t: string | undefined): string | null => (t === undefined ? null : t.slice(0, 19));
  return JSON.stringify([r.holder ?? null, r.durationSeconds ?? null, sec(r.acquireTime), sec(r.renewTime), r.transitions]);
}
