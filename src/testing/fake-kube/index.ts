export { FakeKubeApiServer } from './server.js';
export type { FakeKubeApiServerOptions, FakeKubeClientOptions } from './server.js';
export { FakeApiNode } from './node.js';
export type { NodeFaults } from './node.js';
export type { FakeKubeRequest, DenyRule } from './api.js';
export { FakeKubeStore } from './store.js';
export type { KubeObject, StoreEvent } from './store.js';
export { mergePatch, strategicMergePatch, jsonPatch } from './patch.js';
