/**
 * prom-client is an optional peer dependency, needed only when a user passes their own registry (the
 * built-in exposition in exposition.ts serves /metrics otherwise): it is imported on first need, never at module load,
 * and its types never appear in our declarations (a consumer without it must still typecheck).
 * These are the few structural shapes we use from it.
 */
export type Labels = Record<string, string>;

export interface PromRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
}

/** What `metricSet()` passes to a metric constructor: prom-client's options, the slice we use. */
export interface MetricConfig {
  name: string;
  help: string;
  labelNames: readonly string[];
  registers: readonly PromRegistry[];
  buckets?: readonly number[];
  collect?: () => void | Promise<void>;
}

export interface PromGauge {
  set(labels: Labels, value: number): void;
  reset(): void;
}
export interface PromCounter {
  inc(labels: Labels, value?: number): void;
}
export interface PromHistogram {
  observe(labels: Labels, value: number): void;
}

export interface PromModule {
  Registry: new () => PromRegistry;
  Gauge: new (config: MetricConfig) => PromGauge;
  Counter: new (config: MetricConfig) => PromCounter;
  Histogram: new (config: MetricConfig) => PromHistogram;
}

const cache = new Map<string, Promise<PromModule | undefined>>();

/**
 * Resolves prom-client, or undefined when it is not installed. Any other failure (a broken install)
 * rejects, so it is reported instead of looking like "not installed". `specifier` exists for tests.
 */
export function loadPromClient(specifier = 'prom-client'): Promise<PromModule | undefined> {
  let p = cache.get(specifier);
  if (!p) {
    p = import(specifier).then(
      (mod: { default?: PromModule } & Partial<PromModule>) => (mod.Registry ? (mod as PromModule) : mod.default),
      (err: unknown) => {
        const code = (err as { code?: unknown }).code;
        if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return undefined;
        throw err;
      },
    );
    cache.set(specifier, p);
  }
  return p;
}

export const PROM_CLIENT_MISSING =
  'leaderlock: a prom-client registry was passed to createHealthHandler, but leaderlock cannot import prom-client (optional peer dependency): install it next to leaderlock (npm install prom-client), or pass no registry to use the built-in /metrics\n';
