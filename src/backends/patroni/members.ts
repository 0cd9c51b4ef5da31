import { ConfigError } from '../../core/errors.js';

/**
 * A Patroni member registered under the identity we campaign with (a sidecar that also takes the
 * pod name): on etcd and Consul Patroni would see the leader key holding its own name and take it
 * over silently; on Kubernetes both would renew one record and lead together. In a Patroni layout
 * leaderlock refuses to campaign under a member's name (issue 16, item 12).
 */
export function patroniNameClash(backend: 'etcd' | 'consul' | 'kubernetes', key: string, holder: string, where: string): ConfigError {
  return new ConfigError(
    `identity ${JSON.stringify(holder)} is the name of a Patroni member of the cluster of ${key} (found under ${where}): ` +
      'Patroni would treat our leader record as its own. Give leaderlock an identity of its own (not the pod name Patroni uses).',
    { backend },
  );
}
