import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { LeaderLock } from '../core/lock.js';
import { ConfigError } from '../core/errors.js';
import { checkDrift, checkIdentity, checkMetadata, Problems, checkTimerLimit, checkDurations } from '../core/options.js';

export interface LeaderElectorOptions {
  /** This candidate's name in the lock record. Non-empty; unique per process incarnation is best. */
  identity: string;
  /** A leader that cannot confirm a renew for this long steps down. Default 2/3 of the lock's ttl. */
  renewDeadlineMs?: number;
  /** Renew interval while leading, and fallback poll interval while not. Default 2/15 of the ttl. */
  retryPeriodMs?: number;
  /** Clock-rate tolerance. Default: the lock's, else 0.01. */
  drift?: number;
  /** Default: the lock's clock, else the system clock. Pass a `VirtualClock` in tests. */
  clock?: Clock;
  /** false: observe only (follow the leader, never campaign). Default true. */
  campaign?: boolean;
  /** What to do after losing a term: campaign again (default) or stop campaigning (observe only). */
  onLoss?: 'recampaign' | 'stop';
  /** Published with every term this elector wins (its address, say): followers see it in `leader` events and `get()`/`watch()`. At most 1 KiB of UTF-8. */
  metadata?: string;
}

export interface ResolvedElectorOptions {
  readonly identity: string;
  readonly ttlMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly drift: number;
  readonly clock: Clock;
  readonly campaign: boolean;
  readonly onLoss: 'recampaign' | 'stop';
  readonly metadata: string | undefined;
}

export interface TimingInput {
  ttlMs: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  drift?: number;
  /** The lock's per-request deadline, when known: checked against the renew deadline (warnings only). */
  requestTimeoutMs?: number;
}

/** What a set of timings implies. All figures in ms. */
export interface TimingExplanation {
  ttlMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  drift: number;
  /** ttl·(1−drift) − renewDeadline: how long a leader may stall (GC, slow clock) after its deadline and still be safe. */
  safetyMarginMs: number;
  /** Worst case from a leader's crash until a watching candidate can lead (server expiry + one fallback poll). Backends may add their own delay (Consul: up to 2 × ttl + lock-delay). */
  crashFailoverMs: number;
  /** A DCS outage shorter than this never costs a healthy leader its term, whatever its phase. */
  maxOutageSurvivedMs: number;
  /** A graceful stop()/handover hands over on the watch event: about one round trip, not a poll interval. */
  gracefulHandover: string;
  /** Largest clock-rate difference between two processes the timings tolerate. */
  clockRateTolerance: number;
  ok: boolean;
  /** Broken rules; non-empty means the constructor would throw `ConfigError`. */
  problems: string[];
  /**
   * Safe but fragile: e.g. fewer than two renew attempts fit before the renew deadline
   * (retryPeriod + 2 × requestTimeout > renewDeadline — the role Patroni's `loop_wait + 2 × retry_timeout ≤ ttl`
   * plays), so one slow request demotes a healthy leader.
   */
  warnings: string[];
  /** Human-readable summary. */
  text: string;
}

export function defaultTimings(ttlMs: number): { renewDeadlineMs: number; retryPeriodMs: number } {
  return { renewDeadlineMs: Math.floor((ttlMs * 2) / 3), retryPeriodMs: Math.floor((ttlMs * 2) / 15) };
}

function timingProblems(p: Problems, ttlMs: number, renewDeadlineMs: number, retryPeriodMs: number, drift: number): void {
  const usable = ttlMs * (1 - drift);
  const pos = (v: number, name: string): boolean => p.check(Number.isFinite(v) && v > 0, `${name} must be a positive number of ms, got ${v}`);
  const ok = pos(ttlMs, 'ttlMs') && pos(renewDeadlineMs, 'renewDeadlineMs') && pos(retryPeriodMs, 'retryPeriodMs');
  if (!ok) return;
  // renewDeadlineMs and retryPeriodMs are below ttlMs when the rules below hold; ttlMs is the lock's own.
  if (!checkTimerLimit(p, 'ttlMs', ttlMs)) return;
  p.check(
    usable > renewDeadlineMs,
    `renewDeadlineMs (${renewDeadlineMs}) must be less than ttlMs × (1 − drift) = ${usable.toFixed(0)}: lower renewDeadlineMs or raise the lock's ttlMs`,
  );
  p.check(
    renewDeadlineMs > 1.2 * retryPeriodMs,
    `renewDeadlineMs (${renewDeadlineMs}) must be more than 1.2 × retryPeriodMs = ${(1.2 * retryPeriodMs).toFixed(0)}: lower retryPeriodMs or raise renewDeadlineMs`,
  );
}

export function resolveElectorOptions(lock: LeaderLock, options: LeaderElectorOptions): ResolvedElectorOptions {
  const p = new Problems();
  if (typeof options !== 'object' || options === null) throw new ConfigError('LeaderElector needs an options object with at least { identity }', { backend: 'elector' });
  const identity = checkIdentity(p, options.identity);
  const metadata = checkMetadata(p, options.metadata);
  checkDurations(p, options);
  const ttlMs = lock.ttlMs;
  const defaults = defaultTimings(ttlMs);
  const renewDeadlineMs = options.renewDeadlineMs ?? defaults.renewDeadlineMs;
  const retryPeriodMs = options.retryPeriodMs ?? defaults.retryPeriodMs;
  const drift = checkDrift(p, options.drift ?? lock.drift);
  timingProblems(p, ttlMs, renewDeadlineMs, retryPeriodMs, drift);
  if (options.onLoss !== undefined) {
    p.check(options.onLoss === 'recampaign' || options.onLoss === 'stop', `onLoss must be 'recampaign' or 'stop', got ${JSON.stringify(options.onLoss)}`);
  }
  if (options.campaign !== undefined) p.check(typeof options.campaign === 'boolean', `campaign must be a boolean`);
  p.throwIfAny('elector');
  return Object.freeze({
    identity,
    ttlMs,
    renewDeadlineMs,
    retryPeriodMs,
    drift,
    clock: options.clock ?? lock.clock ?? systemClock,
    campaign: options.campaign ?? true,
    onLoss: options.onLoss ?? 'recampaign',
    metadata,
  });
}

/** What the timings imply, and whether they are safe. Never throws. */
export function explainTimings(input: TimingInput): TimingExplanation {
  const ttlMs = input.ttlMs;
  const d = defaultTimings(ttlMs);
  const renewDeadlineMs = input.renewDeadlineMs ?? d.renewDeadlineMs;
  const retryPeriodMs = input.retryPeriodMs ?? d.retryPeriodMs;
  const p = new Problems();
  const drift = checkDrift(p, input.drift);
  timingProblems(p, ttlMs, renewDeadlineMs, retryPeriodMs, drift);
  const problems = [...p.list];
  const safetyMarginMs = ttlMs * (1 - drift) - renewDeadlineMs;
  const crashFailoverMs = ttlMs + retryPeriodMs;
  const maxOutageSurvivedMs = Math.max(0, renewDeadlineMs - retryPeriodMs);
  // Two clocks may differ in rate by up to drift each way before a follower's ttl (measured on its
  // clock) could end while the leader (on its clock) still thinks it is valid.
  const clockRateTolerance = drift;
  const warnings: string[] = [];
  const rt = input.requestTimeoutMs;
  if (rt !== undefined && Number.isFinite(rt) && rt > 0 && retryPeriodMs + 2 * rt > renewDeadlineMs) {
    warnings.push(
      `retryPeriodMs + 2 × requestTimeoutMs = ${retryPeriodMs + 2 * rt} ms exceeds renewDeadlineMs (${renewDeadlineMs}): fewer than two renew attempts fit before the deadline, so one slow request demotes a healthy leader; lower the lock's requestTimeoutMs or raise renewDeadlineMs`,
    );
  }
  const s = (ms: number): string => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 2)} s`;
  const text = [
    `ttl ${s(ttlMs)}, renew deadline ${s(renewDeadlineMs)}, retry period ${s(retryPeriodMs)}, drift ${(drift * 100).toFixed(1)} %`,
    `- crash failover: up to ${s(crashFailoverMs)} (server expiry + one poll; Consul adds up to one more ttl + lock-delay)`,
    `- graceful stop()/handover: one watch round trip (milliseconds)`,
    `- a DCS outage shorter than ${s(maxOutageSurvivedMs)} never demotes a healthy leader; a longer one ends its term by the renew deadline`,
    `- safety margin after the renew deadline: ${s(safetyMarginMs)} (a stall longer than this needs fencing tokens to stay safe)`,
    `- clock-rate tolerance between processes: ${(clockRateTolerance * 100).toFixed(1)} %`,
    ...(problems.length ? ['UNSAFE:', ...problems.map((x) => `  - ${x}`)] : []),
    ...(warnings.length ? ['FRAGILE:', ...warnings.map((x) => `  - ${x}`)] : []),
  ].join('\n');
  return {
    ttlMs,
    renewDeadlineMs,
    retryPeriodMs,
    drift,
    safetyMarginMs,
    crashFailoverMs,
    maxOutageSurvivedMs,
    gracefulHandover: 'one watch round trip',
    clockRateTolerance,
    ok: problems.length === 0,
    problems,
    warnings,
    text,
  };
}
