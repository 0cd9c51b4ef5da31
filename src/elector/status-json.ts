import type { ElectorStatus } from './elector.js';

/**
 * The JSON form of `elector.status()` (what `JSON.stringify(status)` produces through `toJSON`).
 * `JSON.stringify` throws on a bigint, so the token is a decimal string; and a monotonic
 * `validUntil` means nothing outside the process, so next to it stand the remaining milliseconds
 * and wall-clock ISO times computed at the moment `status()` was taken.
 */
export type ElectorStatusJson = Omit<ElectorStatus, 'token' | 'toJSON'> & {
  token?: string;
  /** Wall-clock time the status was taken (ISO 8601). */
  at: string;
  /** While leading: ms left until `validUntil` (may be ≤ 0 when the term is past it). */
  validForMs?: number;
  /** While leading: `validUntil` as wall-clock time (ISO 8601), computed from `at + validForMs`. */
  validUntilAt?: string;
  /** While leading: wall-clock time of the last confirmed renew (ISO 8601). */
  lastRenewAt?: string;
};

/** Converts a status taken at monotonic `now` / wall `date` into its JSON form. */
export function electorStatusToJson(status: StatusData, now: number, date: Date): ElectorStatusJson {
  const { token, ...rest } = status;
  const wall = date.getTime();
  const json: ElectorStatusJson = { ...rest, at: date.toISOString() };
  if (token !== undefined) json.token = token.toString();
  if (status.validUntil !== undefined) {
    json.validForMs = status.validUntil - now;
    json.validUntilAt = new Date(wall + json.validForMs).toISOString();
  }
  if (status.lastRenewAgeMs !== undefined) json.lastRenewAt = new Date(wall - status.lastRenewAgeMs).toISOString();
  return json;
}

/**
 * Gives a status object its `toJSON` (non-enumerable, so the object still compares and spreads as
 * plain data).
 */
export function withToJson(status: StatusData, now: number, date: Date): ElectorStatus {
  Object.defineProperty(status, 'toJSON', { value: () => electorStatusToJson(status, now, date), enumerable: false });
  return status as ElectorStatus;
}

/** A status without its `toJSON`. */
export type StatusData = Omit<ElectorStatus, 'toJSON'>;
