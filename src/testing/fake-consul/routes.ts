import { parseDuration, formatDuration } from './duration.js';
import { InvalidSessionError, type CheckEntry, type CheckStatus, type ConsulState, type KvEntry, type ServiceEntry, type SessionEntry } from './state.js';

/**
 * Consul's HTTP API (the parts leader election and service registration use), mapped onto
 * `ConsulState`. Shapes and status codes follow Consul's documentation; a route not listed here
 * answers 404 and is recorded as unknown by the server, so a client using something the fake lacks
 * fails loudly instead of passing by accident.
 */

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Buffer;
  /** Aborts when the client goes away or the server closes (ends blocking queries). */
  signal: AbortSignal;
}

export interface FakeResponse {
  status: number;
  /** JSON-serialised unless a Buffer/string (sent as is). */
  body?: unknown;
  index?: number;
}

type Handler = (state: ConsulState, req: FakeRequest, param: string) => FakeResponse | Promise<FakeResponse>;

const SESSION_TTL_MIN_MS = 10_000;
const SESSION_TTL_MAX_MS = 86_400_000;
const MAX_LOCK_DELAY_MS = 60_000;
const DEFAULT_WAIT_MS = 300_000;
const MAX_WAIT_MS = 600_000;

const bad = (text: string): FakeResponse => ({ status: 400, body: text });
const notFound = (text: string): FakeResponse => ({ status: 404, body: text });

/** Go's encoding/json matches field names case-insensitively; so do we. */
function fields(body: Buffer): Record<string, unknown> | FakeResponse {
  if (body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return bad('Request decode failed: expected an object');
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.toLowerCase(), x]));
  } catch (err) {
    return bad(`Request decode failed: ${(err as Error).message}`);
  }
}
const isResponse = (v: unknown): v is FakeResponse => typeof v === 'object' && v !== null && 'status' in v && typeof (v as FakeResponse).status === 'number';

function uintParam(q: URLSearchParams, name: string): number | undefined | FakeResponse {
  const raw = q.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) return bad(`Invalid ${name} index: ${raw}`);
  return Number(raw);
}

/**
 * A blocking query: with `?index=N` (N > 0) the answer waits until the read's index exceeds N or
 * `?wait` (default 5 min, at most 10 min, on the fake's clock) passes. Consul adds up to wait/16 of
 * jitter; the fake does not, so tests are exact.
 */
async function blocking(state: ConsulState, req: FakeRequest, read: () => FakeResponse & { index: number }): Promise<FakeResponse> {
  const min = uintParam(req.query, 'index');
  if (isResponse(min)) return min;
  let waitMs = DEFAULT_WAIT_MS;
  const w = req.query.get('wait');
  if (w !== null) {
    const parsed = parseDuration(w);
    if (parsed === undefined) return bad(`Invalid wait time: ${w}`);
    waitMs = Math.min(parsed, MAX_WAIT_MS);
  }
  let r = read();
  if (!min) return r;
  const deadline = state.clock.now() + waitMs;
  while (r.index <= min && state.clock.now() < deadline && !req.signal.aborted) {
    state.parked += 1;
    try {
      await state.waitForChange(deadline - state.clock.now(), req.signal);
    } finally {
      state.parked -= 1;
    }
    r = read();
  }
  return r;
}

function kvJson(e: KvEntry): Record<string, unknown> {
  return {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    Value: e.value.length === 0 ? null : e.value.toString('base64'),
    ...(e.session !== undefined ? { Session: e.session } : {}),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}

export function sessionJson(s: SessionEntry): Record<string, unknown> {
  return {
    ID: s.id,
    Name: s.name,
    Node: s.node,
    LockDelay: s.lockDelayMs * 1e6,
    Behavior: s.behavior,
    TTL: s.ttlText,
    NodeChecks: s.nodeChecks,
    ServiceChecks: s.serviceChecks.length ? s.serviceChecks : null,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

// ---- KV ---------------------------------------------------------------------------------------------

const kvGet: Handler = (state, req, key) => {
  const recurse = req.query.has('recurse');
  if (req.query.has('keys')) {
    const sep = req.query.get('separator') ?? '';
    return blocking(state, req, () => {
      const keys = new Set<string>();
      for (const e of state.kvRead(key, true)) {
        const rest = e.key.slice(key.length);
        const cut = sep ? rest.indexOf(sep) : -1;
        keys.add(cut >= 0 ? key + rest.slice(0, cut + sep.length) : e.key);
      }
      const list = [...keys].sort();
      return { status: list.length ? 200 : 404, body: list.length ? list : undefined, index: state.kvIndex(key, true) };
    });
  }
  return blocking(state, req, () => {
    const entries = state.kvRead(key, recurse);
    const index = state.kvIndex(key, recurse);
    if (entries.length === 0) return { status: 404, index };
    if (req.query.has('raw')) return { status: 200, body: entries[0]!.value, index };
    return { status: 200, body: entries.map(kvJson), index };
  });
};

const kvPut: Handler = (state, req, key) => {
  if (key === '') return bad('Missing key name');
  const opts: { flags?: number; cas?: number; acquire?: string; release?: string } = {};
  for (const name of ['flags', 'cas'] as const) {
    const v = uintParam(req.query, name);
    if (isResponse(v)) return v;
    if (v !== undefined) opts[name] = v;
  }
  const acquire = req.query.get('acquire');
  const release = req.query.get('release');
  if (acquire !== null) opts.acquire = acquire;
  if (release !== null) opts.release = release;
  try {
    return { status: 200, body: state.kvPut(key, req.body, opts) };
  } catch (err) {
    if (err instanceof InvalidSessionError) return { status: 500, body: err.message };
    throw err;
  }
};

const kvDelete: Handler = (state, req, key) => {
  const cas = uintParam(req.query, 'cas');
  if (isResponse(cas)) return cas;
  return { status: 200, body: state.kvDelete(key, { recurse: req.query.has('recurse'), ...(cas !== undefined ? { cas } : {}) }) };
};

// ---- Sessions -----------------------------------------------------------------------------------------

/** Consul's rule for a numeric LockDelay: below 1000 it means seconds, otherwise nanoseconds. */
function lockDelayMs(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return 15_000;
  if (typeof v === 'number') return v < 1000 ? v * 1000 : v / 1e6;
  if (typeof v === 'string') return parseDuration(v);
  return undefined;
}

const sessionCreate: Handler = (state, req) => {
  const f = fields(req.body);
  if (isResponse(f)) return f;
  const delay = lockDelayMs(f.lockdelay);
  if (delay === undefined) return bad(`Request decode failed: invalid LockDelay ${JSON.stringify(f.lockdelay)}`);
  if (delay > MAX_LOCK_DELAY_MS) return bad(`Lock delay must be less than ${formatDuration(MAX_LOCK_DELAY_MS)}`);
  const behavior = f.behavior ?? 'release';
  if (behavior !== 'release' && behavior !== 'delete') return bad(`Invalid Behavior setting '${String(behavior)}'`);
  let ttlMs = 0;
  let ttlText = '';
  if (f.ttl !== undefined && f.ttl !== '') {
    const parsed = typeof f.ttl === 'string' ? parseDuration(f.ttl) : undefined;
    if (parsed === undefined) return bad(`Request decode failed: invalid TTL ${JSON.stringify(f.ttl)}`);
    if (parsed !== 0 && (parsed < SESSION_TTL_MIN_MS || parsed > SESSION_TTL_MAX_MS)) {
      return bad(`Invalid Session TTL '${f.ttl as string}', must be between [10s=24h0m0s]`);
    }
    ttlMs = parsed;
    ttlText = parsed === 0 ? '' : (f.ttl as string);
  }
  const list = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.map(String) : undefined);
  const node = typeof f.node === 'string' && f.node !== '' ? f.node : state.node;
  if (node !== state.node) return { status: 500, body: `Missing node registration` };
  // No Checks/NodeChecks at all means Consul's default: the node's serfHealth check.
  const nodeChecks = list(f.nodechecks) ?? list(f.checks) ?? ['serfHealth'];
  const serviceChecks = Array.isArray(f.servicechecks) ? (f.servicechecks as { ID: string }[]) : [];
  const s = state.createSession({ name: typeof f.name === 'string' ? f.name : '', node, lockDelayMs: delay, behavior, ttlMs, ttlText, nodeChecks, serviceChecks });
  return { status: 200, body: { ID: s.id } };
};

const sessionRenew: Handler = (state, _req, id) => {
  const s = state.renewSession(id);
  if (!s) return notFound(`Session id '${id}' not found`);
  return { status: 200, body: [sessionJson(s)], index: state.index };
};

const sessionDestroy: Handler = (state, _req, id) => {
  state.destroySession(id, 'destroyed');
  return { status: 200, body: true };
};

const sessionInfo: Handler = (state, req, id) =>
  blocking(state, req, () => {
    const s = state.sessions.get(id);
    return { status: 200, body: s ? [sessionJson(s)] : [], index: state.index };
  });

const sessionList: Handler = (state, req) =>
  blocking(state, req, () => ({ status: 200, body: [...state.sessions.values()].map(sessionJson), index: state.index }));

const sessionNode: Handler = (state, req, node) =>
  blocking(state, req, () => ({ status: 200, body: [...state.sessions.values()].filter((s) => s.node === node).map(sessionJson), index: state.index }));

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

const serviceRegister: Handler = (state, req) => {
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

const serviceDeregister: Handler = (state, _req, id) =>
  state.deregisterService(id) ? { status: 200 } : notFound(`Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);

const checkUpdate =
  (status: CheckStatus): Handler =>
  (state, req, id) =>
    state.updateCheck(id, status, req.query.get('note') ?? '') ? { status: 200 } : notFound(`Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);

const checkUpdateBody: Handler = (state, req, id) => {
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

const catalogService: Handler = (state, req, name) =>
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

const catalogServices: Handler = (state, req) =>
  blocking(state, req, () => {
    const out: Record<string, string[]> = { consul: [] };
    for (const s of state.services.values()) out[s.name] = [...new Set([...(out[s.name] ?? []), ...s.tags])];
    return { status: 200, body: out, index: state.catalogIndex };
  });

const serfHealth = (state: ConsulState): Record<string, unknown> => ({
  Node: state.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Notes: '', Output: 'Agent alive and reachable', ServiceID: '', ServiceName: '', ServiceTags: [], Type: '', CreateIndex: 1, ModifyIndex: 1,
});

const healthService: Handler = (state, req, name) =>
  blocking(state, req, () => {
    const rows = instances(state, name, req.query).map((s) => {
      const checks = [serfHealth(state), ...[...state.checks.values()].filter((c) => c.serviceId === s.id).map((c) => checkJson(state, c))];
      return { Node: nodeJson(state), Service: serviceJson(state, s), Checks: checks };
    });
    const passing = req.query.has('passing') ? rows.filter((r) => r.Checks.every((c) => c.Status === 'passing')) : rows;
    return { status: 200, body: passing, index: state.catalogIndex };
  });

const agentServices: Handler = (state) => ({ status: 200, body: Object.fromEntries([...state.services.values()].map((s) => [s.id, serviceJson(state, s)])) });
const agentChecks: Handler = (state) => ({ status: 200, body: Object.fromEntries([...state.checks.values()].map((c) => [c.id, checkJson(state, c)])) });
const agentSelf: Handler = (state) => ({
  status: 200,
  body: { Config: { Datacenter: state.datacenter, NodeName: state.node, Server: true, Version: '1.20.0-fake' }, Member: { Name: state.node, Addr: '127.0.0.1', Port: 8301, Status: 1 } },
});
const statusLeader: Handler = () => ({ status: 200, body: '127.0.0.1:8300' });

/** [method, path prefix, handler, exact] — the prefix's remainder is passed as `param`. */
const TABLE: Array<[string, string, Handler, boolean]> = [
  ['GET', '/v1/kv/', kvGet, false],
  ['PUT', '/v1/kv/', kvPut, false],
  ['DELETE', '/v1/kv/', kvDelete, false],
  ['PUT', '/v1/session/create', sessionCreate, true],
  ['PUT', '/v1/session/renew/', sessionRenew, false],
  ['PUT', '/v1/session/destroy/', sessionDestroy, false],
  ['GET', '/v1/session/info/', sessionInfo, false],
  ['GET', '/v1/session/list', sessionList, true],
  ['GET', '/v1/session/node/', sessionNode, false],
  ['PUT', '/v1/agent/service/register', serviceRegister, true],
  ['PUT', '/v1/agent/service/deregister/', serviceDeregister, false],
  ['PUT', '/v1/agent/check/pass/', checkUpdate('passing'), false],
  ['PUT', '/v1/agent/check/warn/', checkUpdate('warning'), false],
  ['PUT', '/v1/agent/check/fail/', checkUpdate('critical'), false],
  ['PUT', '/v1/agent/check/update/', checkUpdateBody, false],
  ['GET', '/v1/agent/services', agentServices, true],
  ['GET', '/v1/agent/checks', agentChecks, true],
  ['GET', '/v1/agent/self', agentSelf, true],
  ['GET', '/v1/catalog/service/', catalogService, false],
  ['GET', '/v1/catalog/services', catalogServices, true],
  ['GET', '/v1/health/service/', healthService, false],
  ['GET', '/v1/status/leader', statusLeader, true],
];

/** The handler for a request, or undefined for a route the fake does not implement. */
export function findRoute(method: string, path: string): { handler: Handler; param: string; write: boolean } | undefined {
  for (const [m, prefix, handler, exact] of TABLE) {
    if (m !== method) continue;
    if (exact ? path === prefix : path.startsWith(prefix) && (prefix.endsWith('/kv/') || path.length > prefix.length)) {
      return { handler, param: exact ? '' : decodeURIComponent(path.slice(prefix.length)), write: method !== 'GET' };
    }
  }
  return undefined;
}
