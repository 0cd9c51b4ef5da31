import { patroniNameClash } from '../patroni/members.js';
import type { KubeObject } from './kinds.js';
import type { ResolvedLockOptions } from './lock-options.js';

/**
 * Patroni layouts (issue 16, item 12): a Patroni member is a pod named after the member, carrying
 * Patroni's labels and its member data in the `status` annotation. Campaigning under that name (a
 * sidecar taking POD_NAME) would make Patroni renew our record as its own: both would lead. The lock
 * calls this right before a write that would take the lock; throws `ConfigError` naming the clash. A
 * pod read we are not allowed (403) is skipped.
 */
export async function refusePatroniMemberName(o: ResolvedLockOptions, key: string, holder: string, signal: AbortSignal | undefined): Promise<void> {
  if (!o.patroniLayout) return;
  const res = await o.api.request<KubeObject>({
    method: 'GET',
    path: `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(holder)}`,
    accept: [403, 404],
    signal,
    timeoutMs: o.requestTimeoutMs,
  });
  if (res.status !== 200) return;
  const labels = res.body.metadata.labels ?? {};
  const member = Object.entries(o.labels).every(([k, v]) => labels[k] === v) && typeof res.body.metadata.annotations?.status === 'string';
  if (member) throw patroniNameClash('kubernetes', key, holder, `pod ${o.namespace}/${holder}`);
}
