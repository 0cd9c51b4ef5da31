/**
 * leaderlock — leader election over etcd, Consul and the Kubernetes API.
 *
 * Safety model (read this before relying on leadership):
 *
 * - Local monotonic clock only. A term is valid until `validUntil = (send time of the last confirmed
 *   refresh of what keeps the key alive) + ttlMs × (1 − drift)`, measured on this process's monotonic
 *   clock. Wall clocks and server timestamps are never trusted. `drift` (default 0.01) tolerates clock
 *   *rate* differences between processes; it does not cover a clock that stops (a suspended VM).
 * - Two deadlines. The elector ends a term at `lastConfirmedRenewSend + renewDeadlineMs` if no renew
 *   was confirmed by then; the lock ends it at `validUntil` at the latest.
 * - Pauses. After a process pause (SIGSTOP, GC, VM suspend) Node runs pending I/O callbacks before an
 *   overdue timer, so `term.signal.aborted` may still be false for a moment. `term.isValid()`
 *   recomputes from the clock: call it right before acting. What it cannot cover (a host whose
 *   monotonic clock stood still while suspended) the fencing token covers: pass `term.token` to the
 *   resource you protect and have it refuse tokens lower than the highest it has seen.
 * - Tokens strictly increase across terms among leaderlock processes (etcd create-revision, Consul
 *   CreateIndex, Kubernetes transitions, memory store revision).
 * - Ambiguous writes are re-read before deciding won or lost; one stray error never ends a term early.
 * - Release is compare-and-delete on our token: it never deletes a successor's record.
 * - Release only when nothing of the term can still act: after stop(), handover() and equally after an
 *   involuntary loss where the record may still be ours ('deadline', 'unavailable'), the elector
 *   releases once the term's guarded work (runWhileLeader fns, `elector.guard()`) has settled or
 *   `validUntil` has passed, whichever is first.
 * - Campaign never depends on one stream: while not leading the elector tries to acquire at least every
 *   `retryPeriodMs`, whatever its watch last showed.
 *
 * What we do not guarantee: that a paused leader stops acting the instant its term ends (only fencing
 * can), nor fencing across foreign writers (Patroni, client-go) beyond "per holder change".
 */
export { Term, sameState } from './core/lock.js';
export type { LeaderLock, LeaderRecord, LockState, LostReason, TermInit, AcquireOptions, RenewOptions, ReleaseOptions, LeaderLockEvents } from './core/lock.js';
export {
  LeaderLockError,
  ConfigError,
  LockLostError,
  BackendUnavailableError,
  DeadlineExceededError,
  ForbiddenError,
  MalformedRecordError,
  AbortedError,
  isAmbiguous,
} from './core/errors.js';
export type { Backend, LeaderLockErrorCode, LeaderLockErrorOptions } from './core/errors.js';
export { systemClock } from './core/clock.js';
export type { Clock, Timer, TimerOptions } from './core/clock.js';
export { StateFeed } from './core/watch.js';
export { LeaderElector, explainTimings, defaultTimings } from './elector/index.js';
export type {
  ElectorRole,
  ElectorStatus,
  ElectorStatusJson,
  LeaderElectorEvents,
  RenewInfo,
  LeaderElectorOptions,
  ResolvedElectorOptions,
  TimingExplanation,
  TimingInput,
} from './elector/index.js';
