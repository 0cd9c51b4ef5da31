/**
 * The structural slice of `KubeClient` the lock depends on (`request`, `watch`, `namespace`): the lock
 * compiles and unit-tests against any object of this shape — a `KubeClient`, a tiny in-memory stub,
 * or a user's own client. The names below are the lock's names for the client's own types (type-only:
 * nothing of client.ts is loaded by them).
 */
import type { KubeApi, KubeRequestOptions, KubeResponse, WatchEvent } from './client.js';

export type KubeLockRequest = KubeRequestOptions;

export type KubeLockResponse<T = unknown> = KubeResponse<T>;

export type KubeWatchEvent = WatchEvent;

export type KubeLockApi = KubeApi;
