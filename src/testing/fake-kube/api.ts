import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, Timer } from '../../core/clock.js';
import { openapiV3 } from './openapi.js';
import { applyPatch, PatchError } from './patch.js';
import { discovery, findResource, forbidden, RESOURCES, statusBody, type ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import type { FakeKubeStore, KubeObject, Outcome, StoreEvent } from './store.js';

/** One request as the fake saw it. */
export interface FakeKubeRequest {
  /** The API node's IP that served it. */
  node: string;
  method: string;
  path: string;
  query: Record<string, string>;
  verb?: string;
  resource?: string;
  namespace?: string;
  name?: string;
  /** HTTP status written; 0 = never answered (blackhole, dropped response). */
  status: number;
  userAgent?: string;
  contentType?: string;
}

/** A 403 rule: every given field must match (missing = any). */
export interface DenyRule {
  verb?: string | readonly string[];
  resource?: string | readonly string[];
  namespace?: string;
  name?: string;
}

export interface NodeView {
  ip: string;
  /** Apply the write, then drop the connection without answering. */
  dropResponse: boolean;
  /** Blackholed nodes do not deliver watch events either. */
  isBlackholed(): boolean;
}

export interface ApiOptions {
  store: FakeKubeStore;
  clock: Clock;
  tokens: () => ReadonlySet<string>;
  denied: () => readonly DenyRule[];
  /** Resources answered with 404 as if their API group were not served. */
  disabled: () => ReadonlySet<string>;
  user: string;
  bookmarkIntervalMs: number;
  serverAddress: () => string;
  record: (r: FakeKubeRequest) => void;
  unknownRoute: (r: FakeKubeRequest) => void;
}

interface Route {
  t: ResourceType;
  namespace?: string;
  name?: string;
}

function parseRoute(path: string): Route | undefined {
  const parts = path.split('/').filter(Boolean);
  let group = '';
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1') {
    version = 'v1';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length < 1 || rest.length > 2) return undefined;
  const t = findResource(group, version, rest[0]!);
  if (!t) return undefined;
  if (namespace === undefined && rest.length === 2) return undefined;
  return { t, ...(namespace !== undefined ? { namespace } : {}), ...(rest[1] !== undefined ? { name: rest[1] } : {}) };
}

/**
 * A boolean query parameter as the API server reads it (apimachinery's
 * Convert_Slice_string_To_bool): absent, "0" or any case of "false" is false; every other value,
 * Patroni's `watch=True` included, is true.
 */
export function queryBool(v: string | undefined): boolean {
  return v !== undefined && v !== '0' && v.toLowerCase() !== 'false';
}

function verbOf(method: string, route: Route, watch: boolean): string {
  switch (method) {
    case 'GET':
      return watch ? 'watch' : route.name ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return route.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

function matches(rule: DenyRule, verb: string, route: Route | undefined): boolean {
  const one = (want: string | readonly string[] | undefined, got: string | undefined): boolean =>
    want === undefined || (typeof want === 'string' ? want === got : got !== undefined && want.includes(got));
  return one(rule.verb, verb) && one(rule.resource, route?.t.resource) && one(rule.namespace, route?.namespace) && one(rule.name, route?.name);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The API semantics shared by every node: auth, RBAC, routing, CRUD, patch, watch. */
export class FakeKubeApi {
  constructor(readonly o: ApiOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse, node: NodeView): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const query = Object.fromEntries(url.searchParams);
    const rec: FakeKubeRequest = {
      node: node.ip,
      method: req.method ?? 'GET',
      path,
      query,
      status: 0,
      ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
    };
    this.o.record(rec);
    const send = (status: number, body: unknown): void => {
      rec.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache, private' });
      res.end(text);
    };

    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    if (!token || !this.o.tokens().has(token)) {
      await readBody(req);
      return send(401, statusBody(401, 'Unauthorized', 'Unauthorized'));
    }

    const doc = req.method === 'GET' ? (discovery(path, this.o.serverAddress()) ?? openapiV3(path)) : undefined;
    if (doc !== undefined) return send(200, doc);

    const parsed = parseRoute(path);
    const route = parsed && !this.o.disabled().has(parsed.t.resource) ? parsed : undefined;
    const watch = queryBool(query.watch);
    const verb = route ? verbOf(rec.method, route, watch) : rec.method.toLowerCase();
    if (route) {
      rec.verb = verb;
      rec.resource = route.t.resource;
      if (route.namespace !== undefined) rec.namespace = route.namespace;
      if (route.name !== undefined) rec.name = route.name;
    }
    if (this.o.denied().some((r) => matches(r, verb, route))) {
      await readBody(req);
      return send(403, forbidden(route?.t, verb, route?.name, route?.namespace, this.o.user, path));
    }
    if (!route) {
      // Fail loudly: a route the fake does not know is recorded and answered with a message that says so.
      // /openapi/v2 is deliberately not served (kubectl falls back to its built-in types); anything else is a gap.
      if (!parsed && path !== '/openapi/v2') this.o.unknownRoute(rec);
      await readBody(req);
      return send(404, statusBody(404, 'NotFound', `the server could not find the requested resource (FakeKubeApiServer has no route for ${rec.method} ${path})`, { causes: [{ reason: 'UnexpectedServerResponse', message: 'unknown route' }] }));
    }

    let input: unknown;
    const raw = await readBody(req);
    if (raw) {
      try {
        input = JSON.parse(raw);
      } catch {
        return send(400, statusBody(400, 'BadRequest', 'the request body is not JSON (the fake accepts JSON only)'));
      }
    }

    if (verb === 'watch') return this.#watch(req, res, route, query, node, rec);
    let outcome: Outcome;
    try {
      outcome = this.#perform(verb, route, query, input, req.headers['content-type'] ?? '');
    } catch (err) {
      if (err instanceof SelectorError) outcome = { status: 400, body: statusBody(400, 'BadRequest', err.message) };
      else if (err instanceof PatchError) outcome = { status: err.status, body: statusBody(err.status, err.status === 415 ? 'UnsupportedMediaType' : err.status === 422 ? 'Invalid' : 'BadRequest', err.message) };
      else throw err;
    }
    if (node.dropResponse && verb !== 'get' && verb !== 'list') {
      // Applied, but the client never hears back: the ambiguous write.
      req.socket.destroy();
      return;
    }
    send(outcome.status, outcome.body);
  }

  #perform(verb: string, route: Route, query: Record<string, string>, input: unknown, contentType: string): Outcome {
    const { store } = this.o;
    const { t } = route;
    const ns = route.namespace ?? 'default';
    switch (verb) {
      case 'get': {
        const obj = store.get(t, ns, route.name!);
        return obj ? { status: 200, body: obj } : { status: 404, body: notFoundBody(t, route.name!) };
      }
      case 'list': {
        const keep = this.#filter(route, query);
        const items = store.list(t, route.namespace).filter(keep);
        return { status: 200, body: { kind: `${t.kind}List`, apiVersion: t.group ? `${t.group}/${t.version}` : t.version, metadata: { resourceVersion: String(store.resourceVersion) }, items } };
      }
      case 'create':
        return store.create(t, ns, input);
      case 'update':
        return store.update(t, ns, route.name!, input);
      case 'patch':
        return store.patch(t, ns, route.name!, (current) => applyPatch(contentType, current, input));
      case 'delete':
        return store.delete(t, ns, route.name!, input);
      default:
        return { status: 405, body: statusBody(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${verb})`) };
    }
  }

  #filter(route: Route, query: Record<string, string>): (o: KubeObject) => boolean {
    const labels = parseLabelSelector(query.labelSelector);
    const fields = parseFieldSelector(query.fieldSelector, ['metadata.name', 'metadata.namespace', ...route.t.fields]);
    return (o) => (route.name === undefined || o.metadata.name === route.name) && labels((o.metadata.labels ?? {}) as Record<string, string>) && fields(o);
  }

  #watch(req: IncomingMessage, res: ServerResponse, route: Route, query: Record<string, string>, node: NodeView, rec: FakeKubeRequest): void {
    const { store, clock } = this.o;
    let keep: (o: KubeObject) => boolean;
    try {
      keep = this.#filter(route, query);
    } catch (err) {
      rec.status = 400;
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify(statusBody(400, 'BadRequest', (err as Error).message)));
      return;
    }
    rec.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const write = (type: string, object: unknown): void => {
      if (!node.isBlackholed() && !res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const inScope = (ev: StoreEvent): boolean => ev.resource === route.t && (route.namespace === undefined || ev.namespace === route.namespace);
    const deliver = (ev: StoreEvent): void => {
      if (!inScope(ev)) return;
      const now = keep(ev.object);
      const before = ev.previous ? keep(ev.previous) : ev.type !== 'ADDED' && now;
      if (ev.type === 'MODIFIED') {
        if (now && before) write('MODIFIED', ev.object);
        else if (now) write('ADDED', ev.object);
        else if (before) write('DELETED', ev.object);
      } else if (now) write(ev.type, ev.object);
    };

    const rvText = query.resourceVersion;
    const from = rvText === undefined || rvText === '' || rvText === '0' ? undefined : Number(rvText);
    if (from !== undefined && (!Number.isFinite(from) || from < store.compactedResourceVersion)) {
      write('ERROR', statusBody(410, 'Expired', `too old resource version: ${rvText} (${store.compactedResourceVersion})`));
      res.end();
      return;
    }
    if (from === undefined) {
      for (const o of store.list(route.t, route.namespace).filter(keep)) write('ADDED', o);
    } else {
      for (const ev of store.eventsAfter(from)) deliver(ev);
    }
    const off = store.onChange(deliver);
    const timers: Timer[] = [];
    if (queryBool(query.allowWatchBookmarks)) {
      const bookmark = (): void => write('BOOKMARK', { kind: route.t.kind, apiVersion: route.t.group ? `${route.t.group}/${route.t.version}` : route.t.version, metadata: { resourceVersion: String(store.resourceVersion) } });
      const tick = (): void => {
        bookmark();
        timers[0] = clock.setTimer(tick, this.o.bookmarkIntervalMs, { unref: true });
      };
      timers[0] = clock.setTimer(tick, this.o.bookmarkIntervalMs, { unref: true });
      // As the real server's watch cache does: one bookmark 2 s before timeoutSeconds ends the watch
      // (none when the timeout is shorter), so a client resuming from it skips nothing it has seen.
      const preTimeoutMs = Number(query.timeoutSeconds ?? 0) * 1000 - 2000;
      if (preTimeoutMs > 0) timers.push(clock.setTimer(bookmark, preTimeoutMs, { unref: true }));
    }
    const end = (): void => {
      off();
      for (const t of timers) t.cancel();
      if (!res.writableEnded) res.end();
    };
    if (query.timeoutSeconds) timers.push(clock.setTimer(end, Number(query.timeoutSeconds) * 1000, { unref: true }));
    req.socket.once('close', end);
    res.once('close', end);
  }
}

function notFoundBody(t: ResourceType, name: string): Record<string, unknown> {
  return statusBody(404, 'NotFound', `${t.group ? `${t.resource}.${t.group}` : t.resource} "${name}" not found`, { name, ...(t.group ? { group: t.group } : {}), kind: t.resource });
}

export { RESOURCES };
