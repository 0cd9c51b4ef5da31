/**
 * What the health endpoints read from their source. It is the subset of the elector's `ElectorStatus`
 * the probes and metrics need, written structurally so that `LeaderElector` fits as is and so does
 * a daemon's own object (the Patroni-style loop in examples/ha-daemon.ts) that drives a `LeaderLock`
 * directly. Only the first four fields are required.
 */
export interface HealthStatus {
  identity: string;
  role: 'leader' | 'follower' | 'candidate' | 'observer' | 'stopped';
  /** Leading and the term is still valid on the local monotonic clock. */
  isValid: boolean;
  /** The elector loop has not completed an iteration for too long (liveness). */
  loopStalled: boolean;
  backend?: string;
  key?: string;
  /** The leader as last seen (us when leading). */
  holder?: string;
  /** Our term's token when leading, else the observed leader's. */
  token?: bigint;
  ttlMs?: number;
  /** Monotonic ms on the source's clock; only meaningful to that process, reported for debugging. */
  validUntil?: number;
  lastRenewAgeMs?: number;
  loopAgeMs?: number;
  transitions?: number;
  renewFailures?: number;
}

/** Anything with a `status()`: a `LeaderElector`, or your own object. */
export interface HealthSource {
  status(): HealthStatus;
}

/** The JSON form of a status: bigint token as a decimal string (JSON.stringify throws on bigint). */
export type HealthStatusJson = Omit<HealthStatus, 'token'> & { token?: string };

/**
 * A status with its own `toJSON` (a `LeaderElector`'s: remaining ms and wall-clock times next to the
 * monotonic ones) is converted by it; any other gets its token turned into a decimal string.
 */
export function statusToJson(status: HealthStatus): HealthStatusJson {
  const own: unknown = (status as { toJSON?: unknown }).toJSON;
  if (typeof own === 'function') return (own as () => HealthStatusJson).call(status);
  const { token, ...rest } = status;
  return token === undefined ? { ...rest } : { ...rest, token: token.toString() };
}
