export { FakeConsulServer } from './server.js';
export type { FakeConsulServerOptions, RecordedRequest, FaultKind, FaultRule, FakeConsulServerEvents } from './server.js';
export type { KvEntry as FakeConsulKvEntry, SessionEntry as FakeConsulSession, ServiceEntry as FakeConsulService, CheckEntry as FakeConsulCheck } from './state.js';
export { parseDuration as parseGoDuration, formatDuration as formatGoDuration } from './duration.js';
