import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError, errorTextSafe } from './errors.js';
import { Tracker, metricSet, type SwitchSource } from './metrics.js';
import { isProbe, judge } from './probes.js';
import { loadPromClient, PROM_CLIENT_MISSING, type PromModule, type PromRegistry } from './prom.js';
import { textExposition } from './exposition.js';
import { statusToJson, type HealthSource } from './status.js';
import { logger } from '../core/log.js';

const log = logger('http');

/**
 * A prom-client `Registry` (structural, so our declarations do not need prom-client's types).
 * Pass your application's registry to serve leaderlock's metrics from your own `/metrics`.
 */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
}

export interface HealthHandlerOptions {
  /** Serve `/metrics` (built in, no dependency). Default true. */
  metrics?: boolean;
  /**
   * Register the metrics in this prom-client registry (your application's) instead of the built-in
   * one; then prom-client (optional peer dependency) must be importable by leaderlock.
   */
  registry?: MetricsRegistry;
  /** Counts API-endpoint switches for `leaderlock_resolver_switches_total` (e.g. a `KubeClient`). */
  resolver?: SwitchSource;
}

/** Express-style `next`; absent under plain `node:http`. */
export type NextFunction = (err?: unknown) => void;

export interface HealthHandler {
  /**
   * Answers the health paths (`/leader`, `/primary`, `/master`, `/replica`, `/readiness`,
   * `/liveness`, `/health`, `/metrics`); any other path goes to `next()` when given (Express
   * middleware), else gets a 404. Paths are relative to where it is mounted. As Patroni's REST API
   * (so the same haproxy/confd checks work unchanged): `GET`, `HEAD` and `OPTIONS` all answer the
   * probe's status code (`HEAD`/`OPTIONS` without a body), and `/` means `/primary` when the handler
   * serves on its own (under Express, `/` stays the application's: it goes to `next()`).
   */
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /** The Prometheus exposition text, or undefined when metrics are off (or a registry was given and prom-client cannot be imported). */
  metrics(): Promise<{ contentType: string; body: string } | undefined>;
  /** Stops listening to the source's events. Idempotent. */
  close(): void;
}

/**
 * Health, role and metrics endpoints for a `LeaderElector` or any object with its `status()` shape.
 * Every probe answers 200 or 503 with the status as JSON (token as a decimal string); see
 * `probes.ts` for what each judges. Usable as `http.createServer(handler)` or `app.use(handler)`.
 */
export function createHealthHandler(source: HealthSource, options: HealthHandlerOptions = {}): HealthHandler {
  const problems: string[] = [];
  if (typeof source !== 'object' || source === null || typeof (source as { status?: unknown }).status !== 'function') {
    problems.push('source must be a LeaderElector or an object with a status() method');
  }
  if (options.metrics !== undefined && typeof options.metrics !== 'boolean') problems.push(`metrics must be a boolean, got ${String(options.metrics)}`);
  if (options.registry !== undefined && typeof (options.registry as { metrics?: unknown })?.metrics !== 'function') {
    problems.push('registry must be a prom-client Registry');
  }
  const resolver = options.resolver as unknown;
  if (resolver !== undefined && !(typeof resolver === 'object' && resolver !== null && (typeof (resolver as { switches?: unknown }).switches === 'number' || typeof (resolver as { on?: unknown }).on === 'function'))) {
    problems.push("resolver must have a numeric 'switches' or emit 'switch' events");
  }
  if (problems.length > 0) throw new ConfigError(problems, { backend: 'http' });

  const metricsOn = options.metrics !== false;
  const tracker = metricsOn ? new Tracker(source, options.resolver) : undefined;
  let closed = false;
  // Loaded as soon as the handler exists, so renew durations observed before the first scrape count.
  // Without a registry of the user's, the built-in exposition serves /metrics (no dependency); a
  // prom-client registry needs prom-client's own metric classes, so it is loaded for that case only.
  const userRegistry = options.registry as PromRegistry | undefined;
  const ready: Promise<{ prom: PromModule; registry: PromRegistry } | undefined> = !metricsOn
    ? Promise.resolve(undefined)
    : userRegistry === undefined
      ? Promise.resolve(attachTo(textExposition, new textExposition.Registry()))
      : loadPromClient().then((prom) => (prom ? attachTo(prom, userRegistry) : undefined));
  function attachTo(prom: PromModule, registry: PromRegistry): { prom: PromModule; registry: PromRegistry } {
    if (!closed) tracker!.attach(metricSet(prom, registry));
    return { prom, registry };
  }
  // An unhandled rejection here would kill the process; it is reported on the next scrape instead.
  ready.catch((err: unknown) => log('prom-client failed to load: %s', errorTextSafe(err)));

  const metrics = async (): Promise<{ contentType: string; body: string } | undefined> => {
    const m = await ready;
    if (!m) return undefined;
    return { contentType: m.registry.contentType, body: await m.registry.metrics() };
  };

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: NextFunction): void => {
    const path = pathOf(req.url);
    const name = path === '/' && !next ? 'primary' : path.slice(1);
    if (!isProbe(name) && name !== 'metrics') {
      if (next) next();
      else send(res, 404, 'text/plain; charset=utf-8', `not found: ${path}\n`);
      return;
    }
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      res.setHeader('allow', 'GET, HEAD, OPTIONS');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    if (name === 'metrics') {
      serveMetrics(req, res, metricsOn, metrics);
      return;
    }
    let body: string;
    let ok: boolean;
    try {
      const status = source.status();
      ok = judge(name, status);
      body = JSON.stringify(statusToJson(status));
    } catch (err) {
      // A status() that throws is a broken source: not ready, not live, and say why.
      send(res, 500, 'application/json', method === 'OPTIONS' ? '' : JSON.stringify({ error: errorTextSafe(err) }), method === 'HEAD');
      return;
    }
    // OPTIONS: the status code only (an empty body, unlike HEAD, must say so in content-length).
    send(res, ok ? 200 : 503, 'application/json', method === 'OPTIONS' ? '' : body, method === 'HEAD');
  }) as HealthHandler;
  handler.metrics = metrics;
  handler.close = () => {
    closed = true;
    tracker?.close();
  };
  return handler;
}

function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  metricsOn: boolean,
  metrics: () => Promise<{ contentType: string; body: string } | undefined>,
): void {
  const head = req.method === 'HEAD';
  if (req.method === 'OPTIONS') {
    send(res, metricsOn ? 204 : 404, 'text/plain; charset=utf-8', '');
    return;
  }
  if (!metricsOn) {
    send(res, 404, 'text/plain; charset=utf-8', 'metrics are disabled (createHealthHandler(source, { metrics: false }))\n', head);
    return;
  }
  metrics().then(
    (m) => {
      if (m) send(res, 200, m.contentType, m.body, head);
      else send(res, 501, 'text/plain; charset=utf-8', PROM_CLIENT_MISSING, head);
    },
    (err: unknown) => send(res, 503, 'text/plain; charset=utf-8', `leaderlock: metrics unavailable: ${errorTextSafe(err)}\n`, head),
  );
}

function pathOf(url: string | undefined): string {
  const raw = (url ?? '/').split('?')[0]!.split('#')[0]!;
  const trimmed = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
  return trimmed.toLowerCase();
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head = false): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}
