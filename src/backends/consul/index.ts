/**
 * leaderlock/consul — a leader key in Consul KV held through a session, and Patroni-style service
 * registration with role tags. See the README's Consul section for guarantees and timings.
 */
export { ConsulLock } from './lock.js';
export type { ConsulLockOptions } from './options.js';
export { ConsulClient } from './client.js';
export { resolveConnection, goDuration } from './connection.js';
export type { ResolvedConnection } from './connection.js';
export type { ConsulApi, ConsulConnectionOptions, KvPair, KvRead, CallOptions, SessionSpec, ServiceSpec } from './client.js';
export { ConsulServiceRegistration, patroniServiceName } from './registration.js';
export type { ConsulServiceRegistrationOptions, ConsulServiceRegistrationEvents, ServiceRole, ElectorEventsSource } from './registration.js';
