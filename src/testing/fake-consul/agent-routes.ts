import { parseDuration } from './duration.js';
import { bad, blocking, fields, isResponse, notFound, type FakeResponse, type Handler } from './http.js';
import type { CheckEntry, CheckStatus, ConsulState, ServiceEntry } from './state.js';

/** Agent services and TTL checks, and the catalog/health reads that show them (Consul's documented shapes). */

// ---- Agent, catalog, health -------------------------------------------------------------------------------

function checkDefs(id: string, f: Record<string, unknown>): Array<Pick<CheckEntry, 'id' | 'name' | 'ttlMs' | 'notes'> & { status?: CheckStatus }> | FakeResponse {
  const raw: unknown[] = Array.isArray(f.checks) ? f.checks : f.check ? [f.check] : [];
  const out: Array<Pick<CheckEntry, 'id' | 'name' | 'ttlMs' | 'notes'> & { status?: CheckStatus }> = [];
  for (const [i, c] of raw.entries()) {
    if (typeof c !== 'object' || c === null) return bad('Invalid check definition');
    const cf = Object.fromEntries(Object.entries(c).map(([k, x]) => [k.toLowerCase(), x]));
    const ttl = typeof cf.ttl === 'string' ? parseDuration(cf.ttl) : 0;
    if (ttl === undefined) return bad(`Invalid check TTL ${String(cf.ttl)}`);
    const status = cf.status;
    if (status !== undefined && status !== 'passing' && status !== 'warning' && status !== 'critical') return bad(`Invalid check status ${String(status)}`);
    const checkId = typeof cf.checkid === 'string' ? cf.checkid : typeof cf.id === 'string' ? cf.id : raw.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`;
    out.push({
      id: checkId,
      name: typeof cf.name === 'string' ? cf.name : `Service '${id}' check`,
      ttlMs: ttl,
      notes: typeof cf.notes === 'string' ? cf.notes : '',
      ...(status !== undefined ? { status } : {}),
    });
  }
  return out;
}

export const serviceRegister: Handler = (state, req) => {
  const f = fields(req.body);
  if (isResponse(f)) return f;
  if (typeof f.name !== 'string' || f.name === '') return bad('Missing service name');
  const id = typeof f.id === 'string' && f.id !== '' ? f.id : f.name;
  const checks = checkDefs(id, f);
  if (isResponse(checks)) return checks;
  const tags = Array.isArray(f.tags) ? f.tags.map(String) : [];
  const meta = typeof f.meta === 'object' && f.meta !== null ? (f.meta as Record<string, string>) : {};
  state.registerService({ id, name: f.name, tags, address: typeof f.address === 'string' ? f.address : '', port: typeof f.port === 'number' ? f.port : 0, meta }, checks);
  return { status: 200 };
};

export const serviceDeregister: Handler = (state, _req, id) =>
  state.deregisterService(id) ? { status: 200 } : notFound(`Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);

export const checkUpdate =
  (status: CheckStatus): Handler =>
  (state, req, id) =>
    state.updateCheck(id, status, req.query.get('note') ?? '') ? { status: 200 } : notFound(`Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);

export const checkUpdateBody: Handler = (state, req, id) => {
  const f = fields(req.body);
  if (isResponse(f)) return f;
  const status = f.status;
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') return bad(`Invalid check status: "${String(status)}"`);
  return checkUpdate(status)(state, { ...req, query: new URLSearchParams({ note: typeof f.output === 'string' ? f.output : '' }) }, id);
};

function serviceJson(state: ConsulState, s: ServiceEntry): Record<string, unknown> {
  return { ID: s.id, Service: s.name, Tags: s.tags, Meta: s.meta, Port: s.port, Address: s.address, EnableTagOverride: false, Datacenter: state.datacenter, CreateIndex: s.createIndex, ModifyIndex: s.modifyIndex };
}

function checkJson(state: ConsulState, c: CheckEntry): Record<string, unknown> {
  const svc = state.services.get(c.serviceId);
  return {
    Node: state.node,
    CheckID: c.id,
    Name: c.name,
    Status: c.status,
    Notes: c.notes,
    Output: c.output,
    ServiceID: c.serviceId,
    ServiceName: c.serviceName,
    ServiceTags: svc?.tags ?? [],
    Type: c.ttlMs > 0 ? 'ttl' : '',
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
  };
}

function nodeJson(state: ConsulState): Record<string, unknown> {
  return { ID: '00000000-0000-4000-8000-00000000fa4e', Node: state.node, Address: '127.0.0.1', Datacenter: state.datacenter, TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' }, Meta: {}, CreateIndex: 1, ModifyIndex: 1 };
}

/** Instances of `name` carrying every `?tag=` given (Consul allows the parameter more than once). */
function instances(state: ConsulState, name: string, q: URLSearchParams): ServiceEntry[] {
  const tags = q.getAll('tag');
  return [...state.services.values()].filter((s) => s.name === name && tags.every((t) => s.tags.includes(t))).sort((a, b) => (a.id < b.id ? -1 : 1));
}

export const catalogService: Handler = (state, req, name) =>
  blocking(state, req, () => ({
    status: 200,
    index: state.catalogIndex,
    body: instances(state, name, req.query).map((s) => ({
      ID: nodeJson(state).ID,
      Node: state.node,
      Address: '127.0.0.1',
      Datacenter: state.datacenter,
      TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' },
      NodeMeta: {},
      ServiceID: s.id,
      ServiceName: s.name,
      ServiceTags: s.tags,
      ServiceAddress: s.address,
      ServicePort: s.port,
      ServiceMeta: s.meta,
      ServiceEnableTagOverride: false,
      CreateIndex: s.createIndex,
      ModifyIndex: s.modifyIndex,
    })),
  }));

export const catalogServices: Handler = (state, req) =>
  blocking(state, req, () => {
    const out: Record<string, string[]> = { consul: [] };
    for (const s of state.services.values()) out[s.name] = [...new Set([...(out[s.name] ?? []), ...s.tags])];
    return { status: 200, body: out, index: state.catalogIndex };
  });

const serfHealth = (state: ConsulState): Record<string, unknown> => ({
  Node: state.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Notes: '', Output: 'Agent alive and reachable', ServiceID: '', ServiceName: '', ServiceTags: [], Type: '', CreateIndex: 1, ModifyIndex: 1,
});

export const healthService: Handler = (state, req, name) =>
  blocking(state, req, () => {
    const rows = instances(state, name, req.query).map((s) => {
      const checks = [serfHealth(state), ...[...state.checks.values()].filter((c) => c.serviceId === s.id).map((c) => checkJson(state, c))];
      return { Node: nodeJson(state), Service: serviceJson(state, s), Checks: checks };
    });
    const passing = req.query.has('passing') ? rows.filter((r) => r.Checks.every((c) => c.Status === 'passing')) : rows;
    return { status: 200, body: passing, index: state.catalogIndex };
  });

export const agentServices: Handler = (state) => ({ status: 200, body: Object.fromEntries([...state.services.values()].map((s) => [s.id, serviceJson(state, s)])) });
export const agentChecks: Handler = (state) => ({ status: 200, body: Object.fromEntries([...state.checks.values()].map((c) => [c.id, checkJson(state, c)])) });
export const agentSelf: Handler = (state) => ({
  status: 200,
  body: { Config: { Datacenter: state.datacenter, NodeName: state.node, Server: true, Version: '1.20.0-fake' }, Member: { Name: state.node, Addr: '127.0.0.1', Port: 8301, Status: 1 } },
});
export const statusLeader: Handler = () => ({ status: 200, body: '127.0.0.1:8300' });

