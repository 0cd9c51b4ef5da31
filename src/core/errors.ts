/**
 * Typed errors. Every error leaderlock throws is a `LeaderLockError` with a literal `code`, the
 * `backend` it came from, and where it applies the HTTP/gRPC `status`, the Kubernetes Status
 * `reason` and the underlying `cause`. Messages never contain credentials: callers pass text, not
 * request objects, and `redact()` strips bearer tokens from anything quoted from a server. The
 * `cause` chain is sanitised here, once, for every backend (`safeCause`): a client library's error
 * carries its request (the `x-consul-token` header, gRPC metadata with the etcd auth token, a
 * Kubernetes `Authorization` header), and `util.inspect(err)` prints causes in full.
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
    super(capMessage(redact(message)), options.cause === undefined ? undefined : { cause: safeCause(options.cause) });
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

/** Own properties of a cause that are never copied: they hold requests, headers or credentials. */
const SECRET_KEY = /token|password|passwd|secret|authori[sz]ation|credential|cookie|header|auth|key$/i;
const MAX_CAUSE_DEPTH = 8;

/**
 * A copy of `cause` that is safe to print: for an `Error`, an object of the same class (so `instanceof`,
 * `name` and `util.inspect` still read naturally) with its message and stack redacted, its primitive
 * own properties (`code`, `errno`, `syscall`, `status`, `details`, …; strings redacted, credential-named
 * ones dropped) and its own `cause` / `errors` sanitised the same way. Objects such as a `response`,
 * `request`, `config` or gRPC `metadata` are dropped: they are where secrets live. A `LeaderLockError`
 * is kept as is (its own cause was sanitised when it was built). Bounded depth; cycles are cut.
 */
export function safeCause(cause: unknown, depth = 0, seen: WeakMap<object, unknown> = new WeakMap()): unknown {
  if (typeof cause === 'string') return redact(cause);
  if (typeof cause !== 'object' || cause === null) return typeof cause === 'function' ? undefined : cause;
  if ((cause as Record<symbol, unknown>)[BRAND] === true) return cause;
  // A DOMException (an AbortSignal's reason) holds only a name and a message, and its getters throw
  // on a copy (internal slots): keep it.
  if (typeof DOMException === 'function' && cause instanceof DOMException) return cause;
  if (seen.has(cause)) return seen.get(cause);
  if (depth >= MAX_CAUSE_DEPTH) return undefined;
  const isError = cause instanceof Error;
  let copy: Record<string, unknown>;
  try {
    copy = Object.create(isError ? (Object.getPrototypeOf(cause) as object | null) : Object.prototype) as Record<string, unknown>;
  } catch {
    copy = {};
  }
  seen.set(cause, copy);
  const hidden = (key: string, value: unknown): void => void Object.defineProperty(copy, key, { value, writable: true, configurable: true, enumerable: false });
  if (isError) {
    hidden('message', redact(String(cause.message)));
    if (typeof cause.stack === 'string') hidden('stack', redact(cause.stack));
    // Own, so no prototype getter runs against the copy (util.inspect reads `name`).
    let name = 'Error';
    try {
      name = String(cause.name);
    } catch {
      // keep 'Error'
    }
    hidden('name', redact(name));
  }
  for (const key of Object.keys(cause)) {
    if (key === 'message' || key === 'stack' || key === 'name' || key === 'cause' || SECRET_KEY.test(key)) continue;
    let value: unknown;
    try {
      value = (cause as Record<string, unknown>)[key];
    } catch {
      continue;
    }
    if (typeof value === 'string') copy[key] = redact(value);
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null) copy[key] = value;
  }
  const inner = (cause as { cause?: unknown }).cause;
  if (inner !== undefined) hidden('cause', safeCause(inner, depth + 1, seen));
  const errors = (cause as { errors?: unknown }).errors;
  if (Array.isArray(errors)) hidden('errors', errors.slice(0, 16).map((e) => safeCause(e, depth + 1, seen)));
  return copy;
}

/** How much of a value read from a store (a holder name, an annotation) a message quotes. */
export const QUOTE_MAX_CHARS = 256;
/** No error message is longer than this, whatever a backend quoted into it (a safety net behind `quoteValue`). */
export const MESSAGE_MAX_CHARS = 4096;

/**
 * A value read from a store, quoted for a message or warning: JSON-quoted, and when longer than `max`
 * characters cut there with its full size appended (`"aaaa…"…(1000000 bytes)`). Anyone can write a
 * 1 MB holder name into etcd, Consul or a Lease; it stays whole in `LeaderRecord.holder`, but a
 * warning quoting it whole was a million characters. Non-strings are stringified first.
 */
export function quoteValue(value: unknown, max = QUOTE_MAX_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max))}…(${Buffer.byteLength(text, 'utf8')} bytes)`;
}

/** `quoteValue` without the quotes, for human output that printed the value bare (`leader is node-a`). */
export function shortText(text: string, max = QUOTE_MAX_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${Buffer.byteLength(text, 'utf8')} bytes)`;
}

/** Like `JSON.stringify(value)` for a message, cut as `quoteValue` cuts (strings are quoted by `quoteValue`). */
export function jsonValue(value: unknown, max = QUOTE_MAX_CHARS): string {
  if (typeof value === 'string') return quoteValue(value, max);
  const text = String(JSON.stringify(value));
  return text.length <= max ? text : `${text.slice(0, max)}…(${Buffer.byteLength(text, 'utf8')} bytes)`;
}

function capMessage(message: string): string {
  if (message.length <= MESSAGE_MAX_CHARS) return message;
  return `${message.slice(0, MESSAGE_MAX_CHARS)}…(message cut, ${message.length} characters in all)`;
}
