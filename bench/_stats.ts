/**
 * What the benchmarks share: nearest-rank quantiles, timing one call on the real clock, interleaved
 * sampling of several probes, the handover probe, the "operation vs the raw requests it is made of"
 * rows and table, and writing bench/results/<name>.json.
 *
 * The leading underscore keeps `npm run bench` (bench/run.ts) from taking this file for a benchmark.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/core/clock.js';
import type { LeaderLock } from '../src/core/lock.js';

const clock = systemClock;

/** Where every benchmark writes its result file: bench/results/. */
export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

/** Nearest-rank quantile of `xs` (sorted here, on a copy: the caller's order does not matter); NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** Milliseconds `fn` takes, on the real monotonic clock. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = clock.now();
  await fn();
  return clock.now() - start;
}

/**
 * Runs every probe once per round, interleaved (raw and lock samples see the same conditions: JIT,
 * connection state, a busy neighbour), after max(3, rounds / 10) warm-up rounds, for `rounds` rounds
 * or until `budgetMs` of sampling is spent. Returns each probe's samples, sorted.
 */
export async function sampleAll(probes: Record<string, () => Promise<number>>, { rounds, budgetMs }: { rounds: number; budgetMs: number }): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(probes).map((k) => [k, []]));
  for (let i = 0; i < Math.max(3, Math.ceil(rounds / 10)); i++) for (const fn of Object.values(probes)) await fn(); // warm-up
  const until = clock.now() + budgetMs;
  for (let i = 0; i < rounds && clock.now() < until; i++) for (const [k, fn] of Object.entries(probes)) out[k]!.push(await fn());
  for (const xs of Object.values(out)) xs.sort((a, b) => a - b);
  return out;
}

/**
 * One handover between two locks on the same key: `nominee` takes it as 'node-b' (untimed), then the
 * timed part — it releases naming 'node-a' as successor and `successor` acquires as 'node-a' — then
 * `successor` releases (untimed), leaving the key free. Milliseconds of the timed part.
 */
export async function timedHandover(successor: LeaderLock, nominee: LeaderLock): Promise<number> {
  const term = await nominee.acquire('node-b');
  if (!term) throw new Error('b could not acquire');
  const start = clock.now();
  await nominee.release(term, { successor: 'node-a' });
  const next = await successor.acquire('node-a');
  const ms = clock.now() - start;
  if (!next) throw new Error('the nominee could not acquire');
  await successor.release(next);
  return ms;
}

/** A result row as bench/run.ts reads it: a figure and, when there is one, its in-run baseline and their ratio. */
export interface BaselineRow {
  metric: string;
  n: number;
  unit: string;
  median: number;
  p99: number;
  baseline?: string;
  baselineMedian?: number;
  ratio?: number;
  note?: string;
}

/** Rounded to two decimals, as the result files store figures. */
export const r2 = (x: number): number => Math.round(x * 100) / 100;

/** One operation next to the raw requests it is made of (`rawMedianMs`: their medians on the critical path). */
export interface RawComparisonRow {
  op: string;
  requests: string;
  n: number;
  medianMs: number;
  p99Ms: number;
  rawMedianMs: number;
  ratio: number;
}

export function rawComparisonRow(op: string, requests: string, xs: readonly number[], rawMs: number): RawComparisonRow {
  const medianMs = quantile(xs, 0.5);
  return { op, requests, n: xs.length, medianMs, p99Ms: quantile(xs, 0.99), rawMedianMs: rawMs, ratio: medianMs / rawMs };
}

/** Prints `title`, a blank line and the markdown table of `rows`. */
export function printRawComparison(title: string, rows: readonly RawComparisonRow[]): void {
  const f = (x: number): string => x.toFixed(2);
  console.log(`${title}\n`);
  console.log('| operation | requests | n | median ms | p99 ms | raw requests median ms | ratio |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.op} | ${r.requests} | ${r.n} | ${f(r.medianMs)} | ${f(r.p99Ms)} | ${f(r.rawMedianMs)} | ${r.ratio.toFixed(2)} |`);
}

/** Writes `data` as indented JSON (newline-terminated) to bench/results/<name>.json; returns that path. */
export function writeResult(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(out, `${JSON.stringify(data, null, 2)}\n`);
  return out;
}
