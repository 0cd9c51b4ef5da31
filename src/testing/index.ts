/**
 * leaderlock/testing — fakes and tools for testing code that uses leaderlock (and leaderlock itself).
 * Nothing in the production entry points imports this module. Test-only dependencies (certificate
 * generation for the HTTPS fakes) are loaded lazily, on first use.
 */
export { VirtualClock, DriftingClock } from './virtual-clock.js';
export type { VirtualClockOptions } from './virtual-clock.js';
export { lockConformance, type ConformanceHarness, type ConformanceTestApi } from './conformance.js';
export * from './fake-consul/index.js';
export * from './fake-kube/index.js';
