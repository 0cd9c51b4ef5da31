import { UsageError } from './usage-error.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `15s`, `1500ms`, `1m30s`, `0.5s` → milliseconds. A bare number is refused rather than guessed
 * (seconds for `consul lock`, milliseconds for our options): the user says which.
 */
export function parseDuration(flag: string, value: string): number {
  const v = value.trim();
  if (/^-\d/.test(v)) throw new UsageError(`--${flag} must be more than 0, got ${v}`);
  if (/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`--${flag} ${v} needs a unit: ${v}s or ${v}ms`);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (v === '' || matched !== v.length) throw new UsageError(`--${flag} "${value}" is not a duration: use e.g. 15s, 500ms or 1m30s`);
  if (!(total > 0) || !Number.isFinite(total)) throw new UsageError(`--${flag} must be more than 0, got ${value}`);
  return total;
}

/** 1500 → "1.5s", 15000 → "15s", 250 → "250ms". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (Math.abs(ms) < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}
