/**
 * leaderlock/memory — an exact in-process DCS (`MemoryStore`) and its lock (`MemoryLock`) with
 * per-client fault injection (`lock.faults`). Use it with `VirtualClock` from `leaderlock/testing`
 * to test failover logic instantly and deterministically.
 */
export { MemoryStore } from './store.js';
export type { MemoryStoreOptions, StoredRecord, CreateResult, CasResult, StoreListener } from './store.js';
export { MemoryLock } from './lock.js';
export type { MemoryLockOptions } from './lock.js';
export type { Faults, LatencyOptions } from './faults.js';
