/**
 * The checker of the randomized fault harness: from the shared line file (every guarded action and
 * every command write, stamped on the host's one monotonic clock) and the fenced resource's records,
 * the safety violations of one schedule. Pure, so a test can feed it a violation and see it caught.
 */
import type { Line } from './harness.js';
import type { ResourceRecord } from './fenced-resource.js';

export interface TermSpan {
  identity: string;
  token: bigint;
  start: number;
  end: number;
  writes: number;
}

/** One span per term (identity + token) seen in the line file, ordered by first write. */
export function termSpans(lines: readonly Line[]): TermSpan[] {
  const by = new Map<string, TermSpan>();
  for (const l of lines) {
    if (!Number.isFinite(l.at) || !/^\d+$/.test(l.token)) continue; // a torn or foreign line
    const key = `${l.id}/${l.token}`;
    const s = by.get(key);
    if (!s) by.set(key, { identity: l.id, token: BigInt(l.token), start: l.at, end: l.at, writes: 1 });
    else {
      s.start = Math.min(s.start, l.at);
      s.end = Math.max(s.end, l.at);
      s.writes++;
    }
  }
  return [...by.values()].sort((a, b) => a.start - b.start);
}

/**
 * Violations: two terms' actions overlapping in time (touching counts), one token held by two
 * identities, tokens not strictly increasing from one term to the next, and the resource accepting
 * a token lower than one it accepted before.
 */
export function violations(lines: readonly Line[], records: readonly ResourceRecord[]): string[] {
  const out: string[] = [];
  const spans = termSpans(lines);
  const name = (s: TermSpan): string => `${s.identity}/${s.token}`;
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i]!;
      const b = spans[j]!;
      const overlap = Math.min(a.end, b.end) - Math.max(a.start, b.start);
      if (overlap >= 0) out.push(`overlap: ${name(a)} [${a.start.toFixed(3)}, ${a.end.toFixed(3)}] and ${name(b)} [${b.start.toFixed(3)}, ${b.end.toFixed(3)}] share ${overlap.toFixed(1)} ms`);
    }
  }
  const holderOf = new Map<bigint, string>();
  for (const s of spans) {
    const other = holderOf.get(s.token);
    if (other !== undefined && other !== s.identity) out.push(`token ${s.token} held by both ${other} and ${s.identity}`);
    holderOf.set(s.token, s.identity);
  }
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.token <= spans[i - 1]!.token) out.push(`tokens not increasing: ${name(spans[i - 1]!)} then ${name(spans[i]!)}`);
  }
  let highest = -1n;
  for (const r of records) {
    if (!r.accepted) continue;
    if (r.token < highest) out.push(`resource accepted token ${r.token} from ${r.holder} at ${r.arrival.toFixed(3)} after token ${highest}`);
    else highest = r.token;
  }
  return out;
}
