import type { Labels, MetricConfig, PromModule, PromRegistry } from './prom.js';

/**
 * The Prometheus text exposition format (version 0.0.4), written here so `/metrics` works out of the
 * box — `npx leaderlock run --listen` included — without prom-client. It implements only the slice of
 * prom-client that `metricSet()` uses (gauges, counters, histograms with labels and a `collect` hook),
 * so the same metric code feeds either. prom-client stays the way to merge our metrics into an
 * application's own registry (`createHealthHandler(source, { registry })`).
 */

interface Metric {
  readonly name: string;
  collect(): Promise<void>;
  render(): string;
}

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

class TextRegistry implements PromRegistry {
  readonly contentType = TEXT_CONTENT_TYPE;
  readonly #metrics = new Map<string, Metric>();

  register(metric: Metric): void {
    if (this.#metrics.has(metric.name)) throw new Error(`metric ${metric.name} is already registered`);
    this.#metrics.set(metric.name, metric);
  }

  getSingleMetric(name: string): unknown {
    return this.#metrics.get(name);
  }

  async metrics(): Promise<string> {
    const all = [...this.#metrics.values()];
    for (const m of all) await m.collect();
    return all.map((m) => m.render()).join('');
  }
}

/** Label values escape backslash, double quote and newline; HELP text backslash and newline. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}
function labelText(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

abstract class BaseMetric<V> implements Metric {
  readonly name: string;
  readonly #help: string;
  readonly #labelNames: readonly string[];
  readonly #collect: (() => void | Promise<void>) | undefined;
  /** Series by their label key, in first-seen order (as prom-client prints them). */
  protected readonly series = new Map<string, { labels: Array<[string, string]>; value: V }>();

  constructor(config: MetricConfig, readonly type: 'gauge' | 'counter' | 'histogram') {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(config.name)) throw new Error(`invalid metric name ${config.name}`);
    this.name = config.name;
    this.#help = config.help;
    this.#labelNames = config.labelNames;
    this.#collect = config.collect;
    for (const r of config.registers) {
      if (!(r instanceof TextRegistry)) throw new Error('the built-in metrics register only in their own registry');
      r.register(this);
    }
  }

  async collect(): Promise<void> {
    await this.#collect?.();
  }

  protected entry(labels: Labels, initial: () => V): { labels: Array<[string, string]>; value: V } {
    const pairs = this.#labelNames.map((n): [string, string] => [n, labels[n] ?? '']);
    const key = JSON.stringify(pairs);
    let e = this.series.get(key);
    if (!e) {
      e = { labels: pairs, value: initial() };
      this.series.set(key, e);
    }
    return e;
  }

  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.#help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const s of this.series.values()) out += this.lines(s.labels, s.value);
    return out;
  }

  protected abstract lines(labels: Array<[string, string]>, value: V): string;
}

class Gauge extends BaseMetric<number> {
  constructor(config: MetricConfig) {
    super(config, 'gauge');
  }
  set(labels: Labels, value: number): void {
    this.entry(labels, () => 0).value = value;
  }
  reset(): void {
    this.series.clear();
  }
  protected lines(labels: Array<[string, string]>, value: number): string {
    return `${this.name}${labelText(labels)} ${formatValue(value)}\n`;
  }
}

class Counter extends BaseMetric<number> {
  constructor(config: MetricConfig) {
    super(config, 'counter');
  }
  inc(labels: Labels, value = 1): void {
    if (!(value >= 0)) throw new Error(`counter ${this.name} can only go up, got ${value}`);
    this.entry(labels, () => 0).value += value;
  }
  protected lines(labels: Array<[string, string]>, value: number): string {
    return `${this.name}${labelText(labels)} ${formatValue(value)}\n`;
  }
}

interface HistogramValue {
  counts: number[];
  sum: number;
  count: number;
}

class Histogram extends BaseMetric<HistogramValue> {
  readonly #buckets: readonly number[];
  constructor(config: MetricConfig) {
    super(config, 'histogram');
    this.#buckets = [...(config.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])].sort((a, b) => a - b);
  }
  observe(labels: Labels, value: number): void {
    const h = this.entry(labels, () => ({ counts: this.#buckets.map(() => 0), sum: 0, count: 0 })).value;
    // Buckets are cumulative ("less than or equal"); counts here are per bucket, summed when rendered.
    const i = this.#buckets.findIndex((b) => value <= b);
    if (i >= 0) h.counts[i]!++;
    h.sum += value;
    h.count++;
  }
  protected lines(labels: Array<[string, string]>, h: HistogramValue): string {
    let out = '';
    let cumulative = 0;
    this.#buckets.forEach((b, i) => {
      cumulative += h.counts[i]!;
      out += `${this.name}_bucket${labelText([['le', formatValue(b)], ...labels])} ${cumulative}\n`;
    });
    out += `${this.name}_bucket${labelText([['le', '+Inf'], ...labels])} ${h.count}\n`;
    out += `${this.name}_sum${labelText(labels)} ${formatValue(h.sum)}\n`;
    out += `${this.name}_count${labelText(labels)} ${h.count}\n`;
    return out;
  }
}

/** The built-in stand-in for prom-client: same constructors, text exposition only. */
export const textExposition: PromModule = { Registry: TextRegistry, Gauge, Counter, Histogram };
