/**
 * leaderlock/http — health, role and Prometheus endpoints for a `LeaderElector` (or any object with
 * its `status()` shape), for `node:http` and Express-style servers. prom-client is an optional peer
 * dependency, loaded only when metrics are served.
 */
export { createHealthHandler } from './handler.js';
export type { HealthHandler, HealthHandlerOptions, MetricsRegistry, NextFunction } from './handler.js';
export type { HealthSource, HealthStatus, HealthStatusJson } from './status.js';
export { statusToJson } from './status.js';
export type { SwitchSource } from './metrics.js';
export { PROBES, judge } from './probes.js';
export type { Probe } from './probes.js';
