import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { Problems, checkDrift, checkTtl, checkDurations } from '../../core/options.js';
import { mapperFor, patroniScope, type EndpointPort, type KindMapper, type LockKind } from './kinds.js';
import type { KubeLockApi } from './lock-api.js';
import { resolveRoleLabels, type ResolvedRoleLabels, type RoleLabelOptions } from './role-labels.js';

export interface KubernetesLockOptions {
  /** A `KubeClient`, or anything with its `request`/`watch`/`namespace` (see `KubeLockApi`). */
  client: KubeLockApi;
  /**
   * Object kind holding the record. Default 'Lease' (client-go compatible); with `scope`, 'ConfigMap'
   * (Patroni's default: it never uses a Lease, and uses Endpoints only with `use_endpoints: true`).
   */
  kind?: LockKind;
  /** Object name. For Endpoints/ConfigMap you may give Patroni's `scope` instead. */
  name?: string;
  /** Patroni scope: the leader object is `<scope>` (Endpoints) or `<scope>-leader` (ConfigMap). */
  scope?: string;
  /** Default: the client's namespace. */
  namespace?: string;
  /** Lease duration, ms. Written as `ceil(ttlMs / 1000)` seconds. Default 15000. */
  ttlMs?: number;
  /** Clock-rate tolerance for `validUntil`. Default 0.01. */
  drift?: number;
  /** Monotonic clock for expiry judgement and Terms. Default the system clock. */
  clock?: Clock;
  /** Deadline of each API call (including rotation between API nodes), ms. Default ttlMs / 5, at least 1000. */
  requestTimeoutMs?: number;
  /** Endpoints kind only: this pod's IP, written in `subsets`. Default `$POD_IP`. */
  podIp?: string;
  /**
   * Endpoints kind only: ports written with the IP. Default `[{ port: 5432, protocol: 'TCP' }]`: unnamed,
   * as Patroni's default (`ports: [{}]`), so a Service with Patroni's unnamed port routes to us too.
   */
  ports?: readonly EndpointPort[];
  /**
   * Labels put on the objects this lock creates. On a Patroni layout they are also added to the
   * leader object when we write it (never removed), because Patroni lists only objects carrying its
   * labels: default there `{ application: 'patroni', 'cluster-name': <scope> }` (Patroni's `labels`
   * default plus its `scope_label`); give Patroni's own `labels` + `cluster-name` if yours differ.
   */
  labels?: Readonly<Record<string, string>>;
  /** Set this pod's role label on term start/end. `true` = defaults (`role=primary|replica`). */
  roleLabels?: boolean | RoleLabelOptions;
  /**
   * Patroni layouts (Endpoints `<scope>`, ConfigMap `<scope>-leader`): on a handover also write
   * Patroni's `<scope>-failover` object (`leader`, `member` annotations). Default true.
   */
  patroniFailover?: boolean;
  /** A watch stream silent for this long is dropped and resumed (half-open connections). Default max(2 × ttlMs, 30000). */
  watchIdleTimeoutMs?: number;
  /** Environment to read POD_IP / POD_NAME / HOSTNAME from. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ResolvedLockOptions {
  readonly api: KubeLockApi;
  readonly mapper: KindMapper;
  readonly namespace: string;
  readonly name: string;
  readonly ttlMs: number;
  readonly drift: number;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly podIp: string | undefined;
  readonly ports: readonly EndpointPort[];
  readonly labels: Readonly<Record<string, string>>;
  readonly roleLabels: ResolvedRoleLabels | undefined;
  /** The object follows Patroni's layout (Endpoints `<scope>`, ConfigMap `<scope>-leader`): labels are kept on it. */
  readonly patroniLayout: boolean;
  /** Patroni scope whose `<scope>-failover` object a handover writes; undefined: not a Patroni layout or disabled. */
  readonly failoverName: string | undefined;
  readonly watchIdleTimeoutMs: number;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const KINDS: readonly LockKind[] = ['Lease', 'Endpoints', 'ConfigMap'];
/** Patroni's default leader Endpoints port: unnamed (a named port would not match its example Service's unnamed one). */
export const DEFAULT_PORTS: readonly EndpointPort[] = Object.freeze([{ port: 5432, protocol: 'TCP' as const }]);
/** Patroni's default `kubernetes.labels`; its `scope_label` (default `cluster-name`) is added with the scope. */
export const PATRONI_DEFAULT_LABELS: Readonly<Record<string, string>> = Object.freeze({ application: 'patroni' });

/** Checks every option and reports all broken rules in one `ConfigError`. Never mutates `options`. */
export function resolveLockOptions(options: KubernetesLockOptions): ResolvedLockOptions {
  const p = new Problems();
  const o = options ?? ({} as KubernetesLockOptions);
  checkDurations(p, o);
  const api = o.client;
  p.check(
    !!api && typeof api.request === 'function' && typeof api.watch === 'function',
    'client must be a KubeClient (or an object with request(), watch() and namespace)',
  );
  const kind = o.kind ?? (o.scope !== undefined ? 'ConfigMap' : 'Lease');
  p.check(KINDS.includes(kind), `kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  const mapper = mapperFor(KINDS.includes(kind) ? kind : 'Lease');
  let name = o.name;
  if (o.scope !== undefined) {
    p.check(kind !== 'Lease', 'scope applies to the Patroni kinds (Endpoints, ConfigMap); give a Lease its name');
    p.check(o.name === undefined, 'give either name or scope, not both');
    p.check(typeof o.scope === 'string' && DNS_SUBDOMAIN.test(o.scope), `scope must be a DNS subdomain name, got ${JSON.stringify(o.scope)}`);
    name ??= kind === 'ConfigMap' ? `${o.scope}-leader` : o.scope;
  }
  p.check(
    typeof name === 'string' && name.length <= 253 && DNS_SUBDOMAIN.test(name),
    `name must be a DNS subdomain name (lowercase letters, digits, '-', '.', ≤ 253), got ${JSON.stringify(name)}`,
  );
  const namespace = o.namespace ?? api?.namespace;
  p.check(
    typeof namespace === 'string' && namespace.length <= 63 && DNS_LABEL.test(namespace),
    `namespace must be a DNS label (lowercase letters, digits, '-', ≤ 63), got ${JSON.stringify(namespace)}`,
  );
  const ttlMs = checkTtl(p, o.ttlMs);
  const drift = checkDrift(p, o.drift);
  const clock = o.clock ?? systemClock;
  p.check(typeof clock?.now === 'function' && typeof clock?.setTimer === 'function', 'clock must implement Clock (now, date, setTimer, sleep)');
  const requestTimeoutMs = o.requestTimeoutMs ?? Math.max(1000, ttlMs / 5);
  p.check(Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0, `requestTimeoutMs must be a positive number of milliseconds, got ${String(o.requestTimeoutMs)}`);
  const env = o.env ?? process.env;
  let podIp: string | undefined;
  if (kind === 'Endpoints') {
    podIp = o.podIp ?? env.POD_IP;
    // Patroni crashed here with a bare KeyError (PATRONI_KUBERNETES_POD_IP); name the variable instead.
    p.check(!!podIp, "kind 'Endpoints' writes the leader's IP into subsets: set the POD_IP environment variable (fieldRef status.podIP) or the podIp option");
  } else {
    p.check(o.podIp === undefined && o.ports === undefined, `podIp and ports apply to kind 'Endpoints' only, not ${JSON.stringify(kind)}`);
  }
  const ports = o.ports ?? DEFAULT_PORTS;
  p.check(
    Array.isArray(ports) && ports.every((x) => Number.isInteger(x?.port) && x.port > 0 && x.port < 65536),
    'ports must be a list of { name?, port (1–65535), protocol? }',
  );
  p.check(o.labels === undefined || (typeof o.labels === 'object' && o.labels !== null && Object.values(o.labels).every((v) => typeof v === 'string')), 'labels must map strings to strings');
  const roleLabels = resolveRoleLabels(p, o.roleLabels, typeof namespace === 'string' ? namespace : 'default', env);
  const watchIdleTimeoutMs = o.watchIdleTimeoutMs ?? Math.max(2 * ttlMs, 30_000);
  p.check(Number.isFinite(watchIdleTimeoutMs) && watchIdleTimeoutMs >= 1000, `watchIdleTimeoutMs must be at least 1000 ms, got ${String(o.watchIdleTimeoutMs)}`);
  p.throwIfAny('kubernetes');
  const scope = patroniScope(kind, name!);
  // Patroni lists its objects by label: on its layout, ours must carry its labels or Patroni cannot see them.
  const labels = o.labels ?? (scope !== undefined ? { ...PATRONI_DEFAULT_LABELS, 'cluster-name': scope } : {});
  return Object.freeze({
    api,
    mapper,
    namespace: namespace!,
    name: name!,
    ttlMs,
    drift,
    clock,
    requestTimeoutMs,
    podIp,
    ports: Object.freeze(ports.map((x) => Object.freeze({ ...x }))),
    labels: Object.freeze({ ...labels }),
    patroniLayout: scope !== undefined,
    roleLabels,
    failoverName: scope !== undefined && o.patroniFailover !== false ? `${scope}-failover` : undefined,
    watchIdleTimeoutMs,
  });
}
