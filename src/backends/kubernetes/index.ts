/**
 * leaderlock/kubernetes — leader election over the Kubernetes API, with a client that can bypass
 * kube-proxy (see `endpointsResolver`).
 */
export { KubeClient } from './client.js';
export type { KubeApi, KubeClientOptions, KubeClientStats, KubeRequestOptions, KubeResponse, KubeSwitchEvent, KubeWatchOptions, WatchEvent } from './client.js';
export { serviceResolver, endpointsResolver, staticResolver, EndpointsResolver, addressesFromEndpoints, addressesFromSlices } from './resolver.js';
export type { ApiEndpointResolver, ResolverContext, EndpointsResolverOptions, EndpointsResolverStats } from './resolver.js';
export { inClusterConfig, kubeconfigConfig, kubeconfigPaths, explicitConfig, isInCluster, IN_CLUSTER_SERVERNAME } from './config.js';
export type { KubeConnectionConfig, InClusterOptions, KubeconfigOptions, ExplicitConnectionOptions } from './config.js';
export { staticTokenSource, fileTokenSource, execTokenSource } from './credentials.js';
export type { TokenSource, ExecCredentialConfig } from './credentials.js';
export { statusError, isStatus } from './status.js';
export type { KubeStatus } from './status.js';
export { KubernetesLock, PodRoleLabels, type KubernetesLockOptions, type RoleLabelOptions, type LockKind, type EndpointPort, type KubeLockApi } from './lock.js';
