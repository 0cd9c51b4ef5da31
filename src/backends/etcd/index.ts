/**
 * leaderlock/etcd — the leader key on etcd v3 (`etcd3` client). See `EtcdLock` for the CAS conditions
 * and `EtcdSession` for sharing one lease between the locks of a process.
 */
export { EtcdLock } from './lock.js';
export type { EtcdLockOptions } from './lock.js';
export { EtcdSession } from './session.js';
export type { KeepAliveResult } from './session.js';
export type { EtcdSessionOptions, EtcdLockKeyOptions, EtcdTlsOptions, Pem } from './options.js';
export type { EtcdRpc, MemberSwitch } from './members.js';
export { fencedWrite, fencedTxnRequest } from './fence.js';
export type { FencedOp, FenceResult } from './fence.js';
export { patroniKey, lockKeys } from './wire.js';
export type { LockKeys } from './wire.js';
