import { LeaderLockError } from '../../core/errors.js';
import { errorText } from '../../core/retry.js';
import { logger } from '../../core/log.js';
import { Problems } from '../../core/options.js';
import type { KubeLockApi } from './lock-api.js';

const log = logger('k8s:labels');

/**
 * Pod role labels, as Patroni sets them: the leader's pod carries `role=primary`, the others
 * `role=replica`, so a Service with a label selector routes to the leader. Values are configurable —
 * `master` for clusters whose Services still select it (Patroni's `leader_label_value`).
 */
export interface RoleLabelOptions {
  /** This process's pod. Default `$POD_NAME`, else `$HOSTNAME` (a pod's hostname is its name). */
  pod?: string;
  /** The pod's namespace. Default the lock's namespace. */
  namespace?: string;
  /** Label key. Default 'role'. */
  key?: string;
  /** Value while leading. Default 'primary'. */
  leader?: string;
  /** Value while not leading. Default 'replica'. */
  follower?: string;
}

export interface ResolvedRoleLabels {
  readonly pod: string;
  readonly namespace: string;
  readonly key: string;
  readonly leader: string;
  readonly follower: string;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Validates role-label options into `p` (every broken rule at once). */
export function resolveRoleLabels(
  p: Problems,
  options: RoleLabelOptions | boolean | undefined,
  namespace: string,
  env: Readonly<Record<string, string | undefined>>,
): ResolvedRoleLabels | undefined {
  if (options === undefined || options === false) return undefined;
  const o: RoleLabelOptions = options === true ? {} : options;
  const pod = o.pod ?? env.POD_NAME ?? env.HOSTNAME ?? '';
  p.check(pod !== '', 'roleLabels needs the pod name: set roleLabels.pod or the POD_NAME environment variable (fieldRef metadata.name)');
  const key = o.key ?? 'role';
  p.check(typeof key === 'string' && key.length <= 316 && LABEL_KEY.test(key), `roleLabels.key must be a valid label key, got ${JSON.stringify(key)}`);
  const leader = o.leader ?? 'primary';
  const follower = o.follower ?? 'replica';
  for (const [name, v] of [['leader', leader], ['follower', follower]] as const) {
    p.check(typeof v === 'string' && v !== '' && v.length <= 63 && LABEL_VALUE.test(v), `roleLabels.${name} must be a valid label value (≤ 63 of [A-Za-z0-9_.-]), got ${JSON.stringify(v)}`);
  }
  p.check(leader !== follower, 'roleLabels.leader and roleLabels.follower must differ');
  return Object.freeze({ pod, namespace: o.namespace ?? namespace, key, leader, follower });
}

/**
 * Writes this pod's role label (merge-patch of `metadata.labels`), one write at a time and in order:
 * a later role always lands after an earlier one. A failed write is reported through `onWarning` and
 * retried on the next `set()` — never thrown, never a reason to drop leadership.
 */
export class PodRoleLabels {
  readonly options: ResolvedRoleLabels;
  readonly #api: KubeLockApi;
  readonly #onWarning: (err: Error) => void;
  readonly #timeoutMs: number;
  #chain: Promise<void> = Promise.resolve();
  #applied: string | undefined;
  #wanted: string | undefined;

  constructor(api: KubeLockApi, options: ResolvedRoleLabels, onWarning: (err: Error) => void, timeoutMs: number) {
    this.#api = api;
    this.options = options;
    this.#onWarning = onWarning;
    this.#timeoutMs = timeoutMs;
  }

  /** The value last written successfully (undefined before the first). */
  get applied(): string | undefined {
    return this.#applied;
  }

  /** Queue a write of the leader or follower value; skipped when that value is already applied. Never rejects. */
  set(role: 'leader' | 'follower'): Promise<void> {
    const value = role === 'leader' ? this.options.leader : this.options.follower;
    this.#wanted = value;
    this.#chain = this.#chain.then(() => this.#write(value));
    return this.#chain;
  }

  /** Resolves when every queued write has been attempted. */
  flush(): Promise<void> {
    return this.#chain;
  }

  async #write(value: string): Promise<void> {
    // A newer set() superseded this one, or the label already has this value.
    if (value !== this.#wanted || value === this.#applied) return;
    const { pod, namespace, key } = this.options;
    try {
      await this.#api.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`,
        contentType: 'application/merge-patch+json',
        body: { metadata: { labels: { [key]: value } } },
        timeoutMs: this.#timeoutMs,
      });
      this.#applied = value;
      log('pod %s/%s labelled %s=%s', namespace, pod, key, value);
    } catch (err) {
      this.#applied = undefined;
      const status = err instanceof LeaderLockError ? err.status : undefined;
      this.#onWarning(
        new LeaderLockError(`could not label pod ${namespace}/${pod} ${key}=${value}: ${errorText(err)}`, {
          backend: 'kubernetes',
          status,
          reason: err instanceof LeaderLockError ? err.reason : undefined,
          cause: err,
        }),
      );
    }
  }
}
