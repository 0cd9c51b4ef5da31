import type { KindMapper } from './kinds.js';
import type { KubeLockApi } from './lock-api.js';

/**
 * Patroni's manual-failover request on Kubernetes: the `<scope>-failover` object (same kind as the
 * leader object) with annotations `leader` (the current leader) and `member` (the candidate). Patroni
 * members honour it; writing it next to our own nomination makes a handover respected by both.
 */
interface FailoverTarget {
  api: KubeLockApi;
  mapper: KindMapper;
  namespace: string;
  requestTimeoutMs: number;
  labels: Readonly<Record<string, string>>;
}

/** Merge-patch the annotations of `<scope>-failover`, creating the object when it does not exist. */
export async function writePatroniFailover(t: FailoverTarget, name: string, leader: string, member: string): Promise<void> {
  await patchOrCreate(t, name, { leader, member });
}

/** Remove `leader`/`member` from `<scope>-failover` once the nominee leads (as Patroni does after a failover). */
export async function clearPatroniFailover(t: FailoverTarget, name: string): Promise<void> {
  await t.api.request({
    method: 'PATCH',
    path: t.mapper.objectPath(t.namespace, name),
    contentType: 'application/merge-patch+json',
    body: { metadata: { annotations: { leader: null, member: null } } },
    accept: [404],
    timeoutMs: t.requestTimeoutMs,
  });
}

async function patchOrCreate(t: FailoverTarget, name: string, annotations: Record<string, string>): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const patched = await t.api.request({
      method: 'PATCH',
      path: t.mapper.objectPath(t.namespace, name),
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations } },
      accept: [404],
      timeoutMs: t.requestTimeoutMs,
    });
    if (patched.status !== 404) return;
    const metadata: Record<string, unknown> = { name, namespace: t.namespace, annotations };
    if (Object.keys(t.labels).length > 0) metadata.labels = { ...t.labels };
    const created = await t.api.request({
      method: 'POST',
      path: t.mapper.collectionPath(t.namespace),
      body: { apiVersion: t.mapper.apiVersion, kind: t.mapper.kind, metadata },
      accept: [409],
      timeoutMs: t.requestTimeoutMs,
    });
    if (created.status !== 409) return; // 409: created meanwhile by someone else; patch it
  }
}
