/**
 * Go `time.Duration` text, as Consul reads and writes it ("15s", "1m30s", "500ms", "0s").
 */

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds, or undefined when `text` is not a Go duration. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === text.length && matched > 0 ? total : undefined;
}

/** Formats ms the way Go prints a Duration for the values Consul echoes (whole seconds in practice). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 1000 === 0) {
    const s = ms / 1000;
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = s % 60;
    return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${rest}s`;
  }
  return `${ms}ms`;
}
