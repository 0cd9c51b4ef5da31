import { RESOURCES, type ResourceType } from './resources.js';

/**
 * Just enough OpenAPI v3 for kubectl: the root index and, per group-version, the item paths with
 * their `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter. With it kubectl
 * (`--validate=strict`, its default) leaves validation to the server instead of downloading schemas;
 * without schemas it computes apply patches from its built-in types, as it does for any server.
 */
function gvPath(t: ResourceType): string {
  return t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`;
}

export function openapiV3(path: string): unknown | undefined {
  const gvs = [...new Set(RESOURCES.map(gvPath))];
  if (path === '/openapi/v3') {
    return { paths: Object.fromEntries(gvs.map((gv) => [gv, { serverRelativeURL: `/openapi/v3/${gv}?hash=leaderlock-fake` }])) };
  }
  const gv = gvs.find((g) => path === `/openapi/v3/${g}`);
  if (!gv) return undefined;
  const paths: Record<string, unknown> = {};
  for (const t of RESOURCES.filter((r) => gvPath(r) === gv)) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const op = (action: string) => ({
      operationId: `${action}${t.kind}`,
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': gvk,
      parameters: [
        { name: 'dryRun', in: 'query', schema: { type: 'string' } },
        { name: 'fieldManager', in: 'query', schema: { type: 'string' } },
        { name: 'fieldValidation', in: 'query', schema: { type: 'string' } },
      ],
      responses: { '200': { description: 'OK' } },
    });
    paths[`/${gv}/namespaces/{namespace}/${t.resource}/{name}`] = { get: op('get'), put: op('put'), patch: op('patch'), delete: op('delete') };
    paths[`/${gv}/namespaces/{namespace}/${t.resource}`] = { get: op('list'), post: op('post') };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (leaderlock fake)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

