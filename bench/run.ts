/**
 * `npm run bench [-- --quick] [-- name…]`: runs every benchmark in bench/ (each bench/<name>.ts
 * other than this file, `_*.ts`, `*.tmp.ts` and `*.test.ts`), one at a time, each in its own process with a time bound, showing a
 * progress line. Each writes bench/results/<name>.json; this script merges them into
 * bench/results/latest.json (entries of benchmarks not run this time are kept, with their own
 * dates) and prints one markdown table: median, p99 and the ratio to the baseline each benchmark
 * measured in the same run, headed by the date and the machine. That table is the README's
 * performance section.
 *
 * Exit code 1 when a benchmark failed or timed out (the others still run and are reported). A
 * benchmark whose servers this machine lacks (kube-real, handover-kube-real without the real-server tier) prints one
 * `skipped: …` line and exits 0 without a result file: reported as skipped, not a failure, and no row.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, release, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags, positionals: only } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, 'timeout-s': { type: 'string' } },
  allowPositionals: true,
});
const quick = flags.quick === true;
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
const RESULTS = join(BENCH_DIR, 'results');
const ROOT = join(BENCH_DIR, '..');
const TIMEOUT_MS = Number(flags['timeout-s'] ?? (quick ? 240 : 900)) * 1000;
/** Fast, dependency-free ones first, so a problem with etcd does not delay them. */
const ORDER = ['memory', 'kube-lock', 'consul', 'kube-failover', 'kube-real', 'etcd', 'handover-process', 'handover-kube-real', 'scale'];

/** One table row, whatever shape the benchmark wrote. */
export interface NormalRow {
  bench: string;
  metric: string;
  n: number | undefined;
  unit: string;
  median: number | undefined;
  p99: number | undefined;
  baseline: string | undefined;
  baselineMedian: number | undefined;
  ratio: number | undefined;
  note: string | undefined;
}

interface BenchEntry {
  status: 'ok' | 'failed' | 'timeout';
  date: string;
  seconds: number;
  command: string;
  rows: NormalRow[];
  error?: string;
}

interface Latest {
  date: string;
  machine: string;
  node: string;
  quick: boolean;
  benches: Record<string, BenchEntry>;
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
const str = (x: unknown): string | undefined => (typeof x === 'string' && x !== '' ? x : undefined);

/**
 * Maps the shapes the benchmarks write onto one row: `{ op, medianMs, p99Ms, rawMedianMs, ratio }`
 * (raw requests as the baseline), `{ metric, median, p99, unit, baseline, baselineMedian, ratio }`,
 * and `{ fault, via, medianMs, p99Ms }` rows, where the `service` row of the same fault is the
 * baseline of the others (kube-failover: bypassing kube-proxy vs going through it).
 */
export function normalise(bench: string, data: unknown): NormalRow[] {
  const rows = (data as { rows?: unknown }).rows;
  if (!Array.isArray(rows)) return [];
  const recs = rows as Array<Record<string, unknown>>;
  return recs.map((r) => {
    const median = num(r.medianMs) ?? num(r.median);
    const unit = str(r.unit) ?? 'ms';
    let baseline = str(r.baseline);
    let baselineMedian = num(r.baselineMedianMs) ?? num(r.baselineMedian);
    if (baselineMedian === undefined && num(r.rawMedianMs) !== undefined && str(r.op)?.startsWith('raw ') !== true) {
      baseline = `raw requests${str(r.requests) ? ` (${str(r.requests)})` : ''}`;
      baselineMedian = num(r.rawMedianMs);
    }
    let metric = str(r.op) ?? str(r.metric) ?? str(r.name) ?? '?';
    if (str(r.fault) && str(r.via)) {
      metric = `${str(r.fault)} API server, via ${str(r.via)}`;
      if (r.via !== 'service') {
        const base = recs.find((x) => x.fault === r.fault && x.via === 'service');
        if (base) {
          baseline = `via service`;
          baselineMedian = num(base.medianMs);
        }
      }
    }
    const ratio = num(r.ratio) ?? (median !== undefined && baselineMedian ? median / baselineMedian : undefined);
    return {
      bench,
      metric,
      n: num(r.n),
      unit,
      median,
      p99: num(r.p99Ms) ?? num(r.p99),
      baseline,
      baselineMedian,
      ratio: baseline === undefined && r.ratio === 1 ? undefined : ratio,
      note: str(r.note),
    };
  });
}

function fmt(x: number | undefined, unit: string): string {
  if (x === undefined) return '';
  if (unit !== 'ms') return `${x.toFixed(x < 10 ? 2 : 1)} ${unit}`;
  if (x < 1) return `${Math.round(x * 1000)} µs`;
  return `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x)} ms`;
}

export function table(latest: Latest, names: readonly string[]): string {
  const lines = [
    `Measured ${latest.date.slice(0, 10)} on ${latest.machine}, Node ${latest.node}${latest.quick ? ' (--quick)' : ''}; command: \`npm run bench${latest.quick ? ' -- --quick' : ''}\`.`,
    '',
    '| bench | metric | n | median | p99 | in-run baseline (median) | ratio |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const name of names) {
    const e = latest.benches[name];
    if (!e) continue;
    if (e.status !== 'ok') {
      lines.push(`| ${name} | **${e.status}**: ${(e.error ?? '').replace(/\|/g, '/').slice(0, 120)} | | | | | |`);
      continue;
    }
    for (const r of e.rows) {
      const base = r.baseline ? `${r.baseline}${r.baselineMedian !== undefined ? ` (${fmt(r.baselineMedian, r.unit)})` : ''}` : '';
      const ratio = r.ratio === undefined ? '' : `${r.ratio.toFixed(r.ratio < 0.1 ? 3 : 2)}×`;
      lines.push(`| ${name} | ${r.metric.replace(/\|/g, '/')} | ${r.n ?? ''} | ${fmt(r.median, r.unit)} | ${fmt(r.p99, r.unit)} | ${base} | ${ratio} |`);
    }
  }
  return lines.join('\n');
}

function machine(): string {
  const c = cpus();
  const model = (c[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim();
  return `${model} × ${availableParallelism()}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()}`;
}

function discover(): string[] {
  const found = readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_') && !f.endsWith('.test.ts') && !f.includes('.tmp.'))
    .map((f) => basename(f, '.ts'));
  const rank = (n: string): number => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return found.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Why a benchmark did not run on this machine: its `skipped: <why>` line, honoured only with exit code 0. */
export function skipReason(code: number | null, stdout: string): string | undefined {
  return code === 0 ? /^skipped: (.*)$/m.exec(stdout)?.[1] : undefined;
}

/** Runs one benchmark with a time bound; its stdout table is kept for the log, stderr shown on failure. */
function runOne(name: string, index: number, total: number): Promise<{ code: number | null; timedOut: boolean; seconds: number; stderr: string; skipped: string | undefined }> {
  return new Promise((resolve) => {
    const began = performance.now();
    const args = ['--conditions=source', '--import', 'tsx', join(BENCH_DIR, `${name}.ts`), ...(quick ? ['--quick'] : [])];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-4000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const tty = process.stderr.isTTY;
    const show = (): void => {
      const s = Math.round((performance.now() - began) / 1000);
      const line = `[${index}/${total}] ${name} … ${s} s`;
      if (tty) process.stderr.write(`\r${line}   `);
    };
    if (!tty) process.stderr.write(`[${index}/${total}] ${name} …\n`);
    const ticker = setInterval(show, 1000);
    let timedOut = false;
    const bound = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, TIMEOUT_MS);
    child.on('exit', (code) => {
      clearInterval(ticker);
      clearTimeout(bound);
      const seconds = Math.round((performance.now() - began) / 1000);
      const skipped = skipReason(code, stdout);
      process.stderr.write(`${tty ? '\r' : ''}[${index}/${total}] ${name} ${timedOut ? 'TIMED OUT' : skipped ? `skipped (${skipped})` : code === 0 ? 'done' : `FAILED (exit ${code})`} in ${seconds} s   \n`);
      resolve({ code, timedOut, seconds, stderr, skipped });
    });
  });
}

async function main(): Promise<number> {
  const all = discover();
  const unknown = only.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}\n`);
    return 64;
  }
  const names = only.length > 0 ? all.filter((n) => only.includes(n)) : all;
  mkdirSync(RESULTS, { recursive: true });
  const latestPath = join(RESULTS, 'latest.json');
  const previous = existsSync(latestPath) ? (JSON.parse(readFileSync(latestPath, 'utf8')) as Latest) : undefined;
  const latest: Latest = { date: new Date().toISOString(), machine: machine(), node: process.version, quick, benches: { ...(previous?.benches ?? {}) } };
  let failed = 0;
  for (const [i, name] of names.entries()) {
    const startedAt = Date.now();
    const r = await runOne(name, i + 1, names.length);
    const file = join(RESULTS, `${name}.json`);
    const fresh = existsSync(file) && statSync(file).mtimeMs >= startedAt - 1000;
    const command = `node --conditions=source --import tsx bench/${name}.ts${quick ? ' --quick' : ''}`;
    if (r.skipped !== undefined && !fresh) {
      continue; // not run on this machine: no row (an entry from an earlier run stays, with its own date)
    } else if (r.code === 0 && fresh) {
      const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      latest.benches[name] = { status: 'ok', date: new Date().toISOString(), seconds: r.seconds, command, rows: normalise(name, data) };
    } else {
      failed++;
      const why = r.timedOut ? `no result within ${TIMEOUT_MS / 1000} s` : r.code === 0 ? `exited 0 but did not write bench/results/${name}.json` : (r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`);
      latest.benches[name] = { status: r.timedOut ? 'timeout' : 'failed', date: new Date().toISOString(), seconds: r.seconds, command, rows: [], error: why };
      process.stderr.write(`${r.stderr.trim().split('\n').slice(-5).join('\n')}\n`);
    }
  }
  writeFileSync(latestPath, `${JSON.stringify(latest, null, 2)}\n`);
  const shown = [...names, ...Object.keys(latest.benches).filter((n) => !names.includes(n)).sort()];
  process.stdout.write(`${table(latest, shown)}\n`);
  process.stderr.write(`results: bench/results/latest.json${failed ? ` (${failed} failed)` : ''}\n`);
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = await main();
