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
  if (limits.minMs !== undefined) p.check(ms >= limits.minMs, `${name} must be at least ${limits.minMs} ms, got ${ms}`);
  if (limits.maxMs !== undefined) p.check(ms <= limits.maxMs, `${name} must be at most ${limits.maxMs} ms, got ${ms}`);
  return ms;
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
