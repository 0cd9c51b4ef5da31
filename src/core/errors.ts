/**
 * Typed errors. Every error leaderlock throws is a `LeaderLockError` with a literal `code`, the
 * `backend` it came from, and where it applies the HTTP/gRPC `status`, the Kubernetes Status
 * `reason` and the underlying `cause`. Messages never contain credentials: callers pass text, not
 * request objects, and `redact()` strips bearer tokens from anything quoted from a server.
 *
 * `instanceof` works across duplicate copies of the package (two versions in one node_modules tree)
 * through a `Symbol.for` brand, as undici does.
 */

export type Backend = 'memory' | 'etcd' | 'consul' | 'kubernetes' | 'elector' | 'cli' | 'http' | (string & {});

export interface LeaderLockErrorOptions {
  backend?: Backend;
  status?: number;
  reason?: string;
  cause?: unknown;
}

const BRAND = Symbol.for('leaderlock.error');
const CODE_BRAND = Symbol.for('leaderlock.error.code');

export class LeaderLockError extends Error {
  readonly code: string = 'LEADERLOCK_ERROR';
  readonly backend: Backend | undefined;
  readonly status: number | undefined;
  readonly reason: string | undefined;

  constructor(message: string, options: LeaderLockErrorOptions = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.backend = options.backend;
    this.status = options.status;
    this.reason = options.reason;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if (this === LeaderLockError) return (value as Record<symbol, unknown>)[BRAND] === true;
    // Subclass: match the brand plus the subclass's code chain (a copy of the class from another
    // package instance has the same codes).
    const codes = (this as unknown as { [CODE_BRAND]?: readonly string[] })[CODE_BRAND];
    if (!codes || (value as Record<symbol, unknown>)[BRAND] !== true) return Function.prototype[Symbol.hasInstance].call(this, value);
    const own = (value.constructor as unknown as { [CODE_BRAND]?: readonly string[] })[CODE_BRAND] ?? [];
    return codes.every((c) => own.includes(c));
  }
}

/**
 * Builds one error class per code, instead of twenty lines of boilerplate each.
 * The class gets its literal `code`, its own `name`, and a code chain for cross-copy `instanceof`.
 */
type ErrorClass = new (message: string, options?: LeaderLockErrorOptions) => LeaderLockError;

function defineError<C extends string, B extends ErrorClass>(code: C, base: B, name: string) {
  const parentCodes = (base as unknown as { [CODE_BRAND]?: readonly string[] })[CODE_BRAND] ?? [];
  const cls = class extends (base as ErrorClass) {
    override readonly code: C = code;
  };
  Object.defineProperty(cls, 'name', { value: name });
  Object.defineProperty(cls, CODE_BRAND, { value: [...parentCodes, code] });
  // Omit the parent's literal `code`: intersecting two literals would reduce a grandchild's type to never.
  return cls as unknown as new (message: string, options?: LeaderLockErrorOptions) => Omit<InstanceType<B>, 'code'> & { readonly code: C };
}

/** Invalid options, found at construction. `problems` lists every broken rule at once. */
export class ConfigError extends defineError('LEADERLOCK_CONFIG', LeaderLockError, 'ConfigError') {
  readonly problems: readonly string[];
  constructor(problems: readonly string[] | string, options: LeaderLockErrorOptions = {}) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    super(list.length === 1 ? `invalid options: ${list[0]}` : `invalid options:\n  - ${list.join('\n  - ')}`, options);
    this.problems = Object.freeze(list);
  }
}

/** The term is over: the key is no longer ours (taken, expired, released) or could not be proven ours in time. */
export const LockLostError = defineError('LEADERLOCK_LOST', LeaderLockError, 'LockLostError');
export type LockLostError = InstanceType<typeof LockLostError>;

/** The backend could not be reached or answered with a server error after retries (refused, reset, 5xx). */
export const BackendUnavailableError = defineError('LEADERLOCK_UNAVAILABLE', LeaderLockError, 'BackendUnavailableError');
export type BackendUnavailableError = InstanceType<typeof BackendUnavailableError>;

/** The request did not complete within its deadline (e.g. a blackholed server). A kind of unavailability. */
export const DeadlineExceededError = defineError('LEADERLOCK_DEADLINE', BackendUnavailableError, 'DeadlineExceededError');
export type DeadlineExceededError = InstanceType<typeof DeadlineExceededError>;

/** The backend refused our credentials (401 after a token re-read) or our permissions (403). Retrying does not help. */
export const ForbiddenError = defineError('LEADERLOCK_FORBIDDEN', LeaderLockError, 'ForbiddenError');
export type ForbiddenError = InstanceType<typeof ForbiddenError>;

/** A stored leader record we cannot parse. Treated as held by an unknown holder; never overwritten silently. */
export const MalformedRecordError = defineError('LEADERLOCK_MALFORMED', LeaderLockError, 'MalformedRecordError');
export type MalformedRecordError = InstanceType<typeof MalformedRecordError>;

/** The operation was aborted by the caller's signal or because the lock was closed. */
export const AbortedError = defineError('LEADERLOCK_ABORTED', LeaderLockError, 'AbortedError');
export type AbortedError = InstanceType<typeof AbortedError>;

export type LeaderLockErrorCode =
  | 'LEADERLOCK_ERROR'
  | 'LEADERLOCK_CONFIG'
  | 'LEADERLOCK_LOST'
  | 'LEADERLOCK_UNAVAILABLE'
  | 'LEADERLOCK_DEADLINE'
  | 'LEADERLOCK_FORBIDDEN'
  | 'LEADERLOCK_MALFORMED'
  | 'LEADERLOCK_ABORTED';

/** Removes credentials from text that may quote a request or a server reply. */
export function redact(text: string): string {
  return text
    .replace(/(authorization\s*[:=]\s*)(bearer\s+)?[^\s,;"']+/gi, '$1$2[redacted]')
    .replace(/\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi, '$1 [redacted]')
    .replace(/([?&](?:token|password)=)[^&\s"']+/gi, '$1[redacted]')
    .replace(/(x-consul-token\s*[:=]\s*)[^\s,;"']+/gi, '$1[redacted]')
    .replace(/(\/\/[^/:@\s]+:)[^@/\s]+@/g, '$1[redacted]@');
}

/**
 * Whether a failed write may still have been applied (timeout, reset, 5xx): the caller must re-read
 * before deciding lost or won. We do not try to tell "refused before sending" apart: re-reading is cheap.
 */
export function isAmbiguous(err: unknown): boolean {
  return err instanceof BackendUnavailableError;
}
