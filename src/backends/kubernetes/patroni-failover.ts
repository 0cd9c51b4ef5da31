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
  // scheduled_at: null — a leftover one would turn this handover into a scheduled switchover for Patroni.
  await patchOrCreate(t, name, { leader, member, scheduled_at: null });
}

/**
 * Remove `leader`, `member` and `scheduled_at` from `<scope>-failover` once the nominee leads (Patroni's
 * `manual_failover('', '')` clears the same three).
 */
export async function clearPatroniFailover(t: FailoverTarget, name: string): Promise<void> {
  await t.api.request({
    method: 'PATCH',
    path: t.mapper.objectPath(t.namespace, name),
    contentType: 'application/merge-patch+json',
    body: { metadata: { annotations: { leader: null, member: null, scheduled_at: null } } },
    accept: [404],
    timeoutMs: t.requestTimeoutMs,
  });
}

async function patchOrCreate(t: FailoverTarget, name: string, annotations: Record<string, string | null>): Promise<void> {
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
    const set = Object.fromEntries(Object.entries(annotations).filter(([, v]) => v !== null));
    const metadata: Record<string, unknown> = { name, namespace: t.namespace, annotations: set };
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

/** Patroni's failover request as stored: `member` (the candidate), `leader` (the leader stepping down). */
export interface PatroniFailoverRecord {
  leader: string | undefined;
  member: string | undefined;
  /** Identifies one write of the request: an observer's countdown restarts when it changes. */
  identity: string;
}

/** GET `<scope>-failover`; undefined when it does not exist or names nobody. */
export async function readPatroniFailover(t: FailoverTarget, name: string, signal?: AbortSignal): Promise<PatroniFailoverRecord | undefined> {
  const res = await t.api.request<{ metadata?: { annotations?: Record<string, unknown> } }>({
    method: 'GET',
    path: t.mapper.objectPath(t.namespace, name),
    accept: [404],
    signal,
    timeoutMs: t.requestTimeoutMs,
  });
  if (res.status === 404) return undefined;
  const a = res.body?.metadata?.annotations ?? {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const leader = str(a.leader);
  const member = str(a.member);
  if (leader === undefined && member === undefined) return undefined;
  return { leader, member, identity: JSON.stringify([leader ?? null, member ?? null, str(a.scheduled_at) ?? null]) };
}
