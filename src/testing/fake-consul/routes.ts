import { agentChecks, agentSelf, agentServices, catalogService, catalogServices, checkUpdate, checkUpdateBody, healthService, serviceDeregister, serviceRegister, statusLeader } from './agent-routes.js';
import { parseDuration, formatDuration } from './duration.js';
import { bad, blocking, fields, isResponse, notFound, rpcError, uintParam, type Handler } from './http.js';
import { InvalidSessionError, type KvEntry, type SessionEntry } from './state.js';

export type { FakeRequest, FakeResponse } from './http.js';

/**
 * Consul's HTTP API (the parts leader election and service registration use), mapped onto
 * `ConsulState`. Shapes and status codes follow Consul's documentation; a route not listed here
 * answers 404 and is recorded as unknown by the server, so a client using something the fake lacks
 * fails loudly instead of passing by accident.
 */

const SESSION_TTL_MIN_MS = 10_000;
const SESSION_TTL_MAX_MS = 86_400_000;
const MAX_LOCK_DELAY_MS = 60_000;

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
  // Behavior and TTL are checked by the server's Session.Apply RPC, not the HTTP layer, so real
  // Consul answers them with a plain 500 (agent/consul/session_endpoint.go in v1.16.3). Patroni
  // adapts its TTL only on that 500.
  if (behavior !== 'release' && behavior !== 'delete') return rpcError(`Invalid Behavior setting '${String(behavior)}'`);
  let ttlMs = 0;
  let ttlText = '';
  if (f.ttl !== undefined && f.ttl !== '') {
    const parsed = typeof f.ttl === 'string' ? parseDuration(f.ttl) : undefined;
    if (parsed === undefined) return typeof f.ttl === 'string' ? rpcError(`Session TTL '${f.ttl}' invalid: time: invalid duration ${JSON.stringify(f.ttl)}`) : bad(`Request decode failed: json: cannot unmarshal ${typeof f.ttl} into Go struct field Session.TTL of type string`);
    if (parsed !== 0 && (parsed < SESSION_TTL_MIN_MS || parsed > SESSION_TTL_MAX_MS)) {
      // Consul formats the parsed time.Duration with %d: nanoseconds.
      return rpcError(`Invalid Session TTL '${BigInt(Math.round(parsed * 1e6)).toString()}', must be between [10s=24h0m0s]`);
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
