/** The resource types the fake serves, their discovery documents, and Status bodies. */

export interface ResourceType {
  group: string; // '' = core
  version: string;
  resource: string; // plural
  kind: string;
  shortNames: string[];
  /** Field selectors the server accepts for this type besides metadata.name/namespace. */
  fields: string[];
  /** PUT of a missing object creates it (Endpoints do, as on a real server). */
  createOnUpdate: boolean;
}

export const RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', resource: 'endpoints', kind: 'Endpoints', shortNames: ['ep'], fields: [], createOnUpdate: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', shortNames: ['cm'], fields: [], createOnUpdate: false },
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', shortNames: ['po'], fields: ['spec.nodeName', 'status.phase', 'status.podIP'], createOnUpdate: false },
  // Patroni in Endpoints mode creates a headless `<scope>-config` Service; the fake stores Services as
  // plain objects (no ClusterIP allocation, no ports validation).
  { group: '', version: 'v1', resource: 'services', kind: 'Service', shortNames: ['svc'], fields: [], createOnUpdate: false },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', shortNames: [], fields: [], createOnUpdate: false },
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', shortNames: [], fields: [], createOnUpdate: false },
];

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** `leases.coordination.k8s.io`, `configmaps` — how the server names a type in messages. */
export function qualifiedName(t: ResourceType): string {
  return t.group ? `${t.resource}.${t.group}` : t.resource;
}

export function findResource(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

function resourceList(groupVersion: string): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: RESOURCES.filter((r) => apiVersionOf(r) === groupVersion).map((r) => ({
      name: r.resource,
      singularName: r.kind.toLowerCase(),
      namespaced: true,
      kind: r.kind,
      verbs: VERBS,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      storageVersionHash: '',
    })),
  };
}

/** Discovery documents (the legacy, non-aggregated format, which kubectl falls back to). */
export function discovery(path: string, serverAddress: string): unknown | undefined {
  const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
  if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
  if (path === '/api/v1') return resourceList('v1');
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((name) => ({
        name,
        versions: [{ groupVersion: `${name}/v1`, version: 'v1' }],
        preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' },
      })),
    };
  }
  const m = path.match(/^\/apis\/([^/]+)\/?([^/]*)$/);
  if (m && groups.includes(m[1]!)) {
    if (!m[2]) return { kind: 'APIGroup', apiVersion: 'v1', name: m[1], versions: [{ groupVersion: `${m[1]}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${m[1]}/v1`, version: 'v1' } };
    if (m[2] === 'v1') return resourceList(`${m[1]}/v1`);
  }
  if (path === '/version') {
    return { major: '1', minor: '32', gitVersion: 'v1.32.0-leaderlock-fake', gitCommit: '', gitTreeState: 'clean', buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' };
  }
  return undefined;
}

/** A Status body exactly as the API server writes it. */
export function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export function notFound(t: ResourceType, name: string): Record<string, unknown> {
  return statusBody(404, 'NotFound', `${qualifiedName(t)} "${name}" not found`, { name, ...(t.group ? { group: t.group } : {}), kind: t.resource });
}

export function alreadyExists(t: ResourceType, name: string): Record<string, unknown> {
  return statusBody(409, 'AlreadyExists', `${qualifiedName(t)} "${name}" already exists`, { name, ...(t.group ? { group: t.group } : {}), kind: t.resource });
}

export function conflict(t: ResourceType, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): Record<string, unknown> {
  return statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedName(t)} "${name}": ${why}`, { name, ...(t.group ? { group: t.group } : {}), kind: t.resource });
}

export function forbidden(t: ResourceType | undefined, verb: string, name: string | undefined, namespace: string | undefined, user: string, path: string): Record<string, unknown> {
  if (!t) return statusBody(403, 'Forbidden', `forbidden: User "${user}" cannot ${verb} path "${path}"`, {});
  const what = name ? `${qualifiedName(t)} "${name}"` : qualifiedName(t);
  const scope = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
  return statusBody(403, 'Forbidden', `${what} is forbidden: User "${user}" cannot ${verb} resource "${t.resource}" in API group "${t.group}"${scope}`, {
    ...(name ? { name } : {}),
    ...(t.group ? { group: t.group } : {}),
    kind: t.resource,
  });
}

export function invalid(t: ResourceType, name: string, message: string): Record<string, unknown> {
  return statusBody(422, 'Invalid', `${t.kind} "${name}" is invalid: ${message}`, { name, ...(t.group ? { group: t.group } : {}), kind: t.kind });
}
