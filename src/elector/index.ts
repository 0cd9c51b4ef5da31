export { LeaderElector } from './elector.js';
export type { ElectorRole, ElectorStatus, LeaderElectorEvents, RenewInfo } from './elector.js';
export type { ElectorStatusJson } from './status-json.js';
export { explainTimings, defaultTimings } from './options.js';
export type { LeaderElectorOptions, ResolvedElectorOptions, TimingExplanation, TimingInput } from './options.js';
