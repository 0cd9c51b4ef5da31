import { MAX_TIMER_MS } from './clock.js';
import { ConfigError, type Backend } from './errors.js';

/**
 * Collects every broken rule of an options object so construction fails once, listing them all.
 * Usage: `const p = new Problems(); p.check(ok, 'ttlMs must be …'); p.throwIfAny('etcd');`
 */
export class Problems {
  readonly #list: string[] = [];

  check(ok: boolean, problem: string): boolean {
    if (!ok) this.#list.push(problem);
    return ok;
  }

  add(problem: string): void {
    this.#list.push(problem);
  }

  get count(): number {
    return this.#list.length;
  }

  /** The problems found so far, in order (for reports that must not throw, like `explain()`). */
  get list(): readonly string[] {
    return this.#list;
  }

  throwIfAny(backend?: Backend): void {
    if (this.#list.length > 0) throw new ConfigError(this.#list, { backend });
  }
}

export const DEFAULT_TTL_MS = 15_000;
export const DEFAULT_DRIFT = 0.01;

/** The lease duration every backend takes: positive finite ms; `minMs`/`maxMs` where the server limits it. */
export function checkTtl(p: Problems, ttlMs: unknown, limits: { minMs?: number; maxMs?: number; name?: string } = {}): number {
  const name = limits.name ?? 'ttlMs';
  if (ttlMs === undefined) return DEFAULT_TTL_MS;
  if (!p.check(typeof ttlMs === 'number' && Number.isFinite(ttlMs) && ttlMs > 0, `${name} must be a positive number of milliseconds, got ${String(ttlMs)}`)) {
    return DEFAULT_TTL_MS;
  }
  const ms = ttlMs as number;
  checkTimerLimit(p, name, ms);
  if (limits.minMs !== undefined) p.check(ms >= limits.minMs, `${name} must be at least ${limits.minMs} ms, got ${ms}`);
  if (limits.maxMs !== undefined) p.check(ms <= limits.maxMs, `${name} must be at most ${limits.maxMs} ms, got ${ms}`);
  return ms;
}

/** The problem text for a duration above what a Node timer can wait (Node fires those after 1 ms). */
export function timerLimitProblem(name: string, ms: number): string {
  return `${name} must be at most ${MAX_TIMER_MS} ms (2^31−1 ms, about 24.8 days: Node fires a longer timer after 1 ms), got ${ms}`;
}

/** One duration against the timer limit. */
export function checkTimerLimit(p: Problems, name: string, ms: unknown): boolean {
  return typeof ms !== 'number' || !(ms > MAX_TIMER_MS) || (p.add(timerLimitProblem(name, ms)), false);
}

/**
 * Every duration option (a number under a key ending in `Ms`) of an options object against the
 * timer limit, so no backend or elector option can arm a timer Node would fire after 1 ms.
 * `ttlMs` is left to `checkTtl` (which applies the same limit) so it is reported once.
 */
export function checkDurations(p: Problems, options: unknown): void {
  if (typeof options !== 'object' || options === null) return;
  for (const [key, value] of Object.entries(options)) if (key.endsWith('Ms') && key !== 'ttlMs') checkTimerLimit(p, key, value);
}

export function checkDrift(p: Problems, drift: unknown): number {
  if (drift === undefined) return DEFAULT_DRIFT;
  p.check(typeof drift === 'number' && drift >= 0 && drift < 0.5, `drift must be a number in [0, 0.5), got ${String(drift)}`);
  return typeof drift === 'number' ? drift : DEFAULT_DRIFT;
}

/** Invisible characters that reorder or break displayed text: bidi controls, NEL, line/paragraph separators. */
export const UNSAFE_TEXT = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u0085\u2028\u2029]/;

/** A holder identity: non-empty, no control characters (it ends up in keys, labels and logs). */
export function checkIdentity(p: Problems, identity: unknown, name = 'identity'): string {
  if (typeof identity !== 'string' || identity.length === 0) {
    p.add(`${name} must be a non-empty string, got ${JSON.stringify(identity)}`);
    return '';
  }
  // Only whitespace reads as "no holder" in every tool that shows it (and Kubernetes trims it away).
  if (!p.check(identity.trim() !== '', `${name} must not be blank, got ${JSON.stringify(identity)}`)) return identity;
  // eslint-disable-next-line no-control-regex
  p.check(!/[\u0000-\u001f\u007f]/.test(identity), `${name} must not contain control characters`);
  // Bidi controls make a name print as another one (Trojan Source); line/paragraph separators and NEL
  // break log lines and headers just as '\n' does.
  p.check(!UNSAFE_TEXT.test(identity), `${name} must not contain bidirectional-control or line-separator characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069, U+0085, U+2028, U+2029)`);
  p.check(identity.length <= 253, `${name} must be at most 253 characters, got ${identity.length}`);
  return identity;
}

/** Throws a `ConfigError` for a holder argument that could never be valid (runtime guard for JS callers). */
export function assertHolder(holder: unknown, backend: Backend): asserts holder is string {
  const p = new Problems();
  checkIdentity(p, holder, 'holder');
  p.throwIfAny(backend);
}

/** Leader metadata limit: small enough for any backend's value/annotation and for every watch event. */
export const MAX_METADATA_BYTES = 1024;

/** Leader metadata: a string of at most `MAX_METADATA_BYTES` UTF-8 bytes (undefined: none). */
export function checkMetadata(p: Problems, metadata: unknown, name = 'metadata'): string | undefined {
  if (metadata === undefined) return undefined;
  if (!p.check(typeof metadata === 'string', `${name} must be a string, got ${typeof metadata}`)) return undefined;
  const bytes = Buffer.byteLength(metadata as string, 'utf8');
  p.check(bytes <= MAX_METADATA_BYTES, `${name} must be at most ${MAX_METADATA_BYTES} bytes of UTF-8, got ${bytes}`);
  return metadata as string;
}

/** `acquire()`'s guard for `options.metadata` (a `ConfigError` beyond the limit). */
export function assertMetadata(metadata: unknown, backend: Backend): string | undefined {
  const p = new Problems();
  const m = checkMetadata(p, metadata);
  p.throwIfAny(backend);
  return m;
}
