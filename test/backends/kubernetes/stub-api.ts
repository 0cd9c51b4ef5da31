import { EventEmitter, on } from 'node:events';
import { BackendUnavailableError, ForbiddenError, LeaderLockError } from '../../../src/core/errors.js';
import type { KubeLockApi, KubeLockRequest, KubeLockResponse, KubeWatchEvent } from '../../../src/backends/kubernetes/lock-api.js';

/**
 * A tiny in-memory Kubernetes API for unit tests of KubernetesLock: objects by path, a global
 * resourceVersion, CAS on PUT, create-or-409 on POST, merge-patch, and a watch stream. No HTTP, no
 * timers: everything resolves on the microtask queue, so tests run on a VirtualClock without sleeps.
 * `hook` sees each request before it is served and may throw (fault) or return 'lose-response'
 * (applied, then the response is lost — an ambiguous write) or 'applied-then-409' (applied, and the
 * client's re-sent copy meets it: what KubeClient returns after a reset on a write).
 */
export type Hook = (req: KubeLockRequest) => void | 'lose-response' | 'applied-then-409';

export class StubKubeApi implements KubeLockApi {
  readonly namespace: string;
  readonly objects = new Map<string, Record<string, unknown>>();
  readonly requests: KubeLockRequest[] = [];
  hook: Hook | undefined;
  /** Events the next watch() calls start with (one per call), e.g. an ERROR 410 Gone; the stream then ends. */
  readonly watchStarts: KubeWatchEvent[] = [];
  watchCalls = 0;
  #rv = 100;
  readonly #events = new EventEmitter();

  constructor(namespace = 'default') {
    this.namespace = namespace;
    this.#events.setMaxListeners(100);
  }

  /** The stored object at an object path (a copy). */
  get(path: string): Record<string, unknown> | undefined {
    const o = this.objects.get(path);
    return o && structuredClone(o);
  }

  /** Another writer: merge-patch the stored object (no CAS), as `kubectl annotate/label` would. */
  touch(path: string, patch: Record<string, unknown>): void {
    const cur = this.objects.get(path);
    if (!cur) throw new Error(`no object at ${path}`);
    this.#store(path, merge(cur, patch) as Record<string, unknown>, 'MODIFIED');
  }

  async request<T = unknown>(req: KubeLockRequest): Promise<KubeLockResponse<T>> {
    this.requests.push(req);
    await Promise.resolve();
    const fault = this.hook?.(req);
    const res = this.#serve(req);
    if (fault === 'applied-then-409' && res.status < 300) {
      const conflict = status(req.method === 'POST' ? 409 : 409, req.method === 'POST' ? 'AlreadyExists' : 'Conflict');
      if ((req.accept ?? []).includes(409)) return conflict as KubeLockResponse<T>;
      throw new LeaderLockError(`${req.method} ${req.path}: 409`, { backend: 'kubernetes', status: 409 });
    }
    if (fault === 'lose-response') throw new BackendUnavailableError(`${req.method} ${req.path}: connection reset`, { backend: 'kubernetes' });
    if (res.status >= 300 && !(req.accept ?? []).includes(res.status)) {
      const what = `${req.method} ${req.path}`;
      if (res.status === 403) throw new ForbiddenError(`${what}: 403 Forbidden`, { backend: 'kubernetes', status: 403, reason: 'Forbidden' });
      throw new LeaderLockError(`${what}: ${res.status}`, { backend: 'kubernetes', status: res.status });
    }
    return res as KubeLockResponse<T>;
  }

  async *watch(opts: { path: string; query?: Record<string, string | number | boolean | undefined>; signal: AbortSignal }): AsyncIterable<KubeWatchEvent> {
    this.watchCalls++;
    const first = this.watchStarts.shift();
    if (first) {
      yield first;
      return;
    }
    const name = String(opts.query?.fieldSelector ?? '').replace(/^metadata\.name=/, '');
    const from = Number(opts.query?.resourceVersion ?? 0);
    if (!opts.query?.resourceVersion) {
      const cur = this.objects.get(`${opts.path}/${name}`);
      if (cur) yield { type: 'ADDED', object: structuredClone(cur) };
    }
    try {
      for await (const [ev] of on(this.#events, 'event', { signal: opts.signal })) {
        const e = ev as { path: string; type: KubeWatchEvent['type']; object: Record<string, unknown>; rv: number };
        if (e.path === `${opts.path}/${name}` && e.rv > from) yield { type: e.type, object: structuredClone(e.object) };
      }
    } catch (err) {
      if (!opts.signal.aborted) throw err;
    }
  }

  #serve(req: KubeLockRequest): KubeLockResponse {
    const body = req.body as Record<string, unknown> | undefined;
    const meta = (body?.metadata ?? {}) as Record<string, unknown>;
    switch (req.method) {
      case 'GET': {
        const o = this.objects.get(req.path);
        return o ? { status: 200, body: structuredClone(o) } : status(404, 'NotFound');
      }
      case 'POST': {
        const path = `${req.path}/${String(meta.name)}`;
        if (this.objects.has(path)) return status(409, 'AlreadyExists');
        return { status: 201, body: this.#store(path, body!, 'ADDED') };
      }
      case 'PUT': {
        const cur = this.objects.get(req.path);
        if (!cur) return status(404, 'NotFound');
        if (meta.resourceVersion !== (cur.metadata as { resourceVersion: string }).resourceVersion) return status(409, 'Conflict');
        return { status: 200, body: this.#store(req.path, body!, 'MODIFIED') };
      }
      case 'PATCH': {
        const cur = this.objects.get(req.path);
        if (!cur) return status(404, 'NotFound');
        if (meta.resourceVersion !== undefined && meta.resourceVersion !== (cur.metadata as { resourceVersion: string }).resourceVersion) return status(409, 'Conflict');
        return { status: 200, body: this.#store(req.path, merge(cur, body) as Record<string, unknown>, 'MODIFIED') };
      }
      default:
        return status(405, 'MethodNotAllowed');
    }
  }

  #store(path: string, obj: Record<string, unknown>, type: 'ADDED' | 'MODIFIED'): Record<string, unknown> {
    const rv = ++this.#rv;
    const stored = structuredClone(obj);
    stored.metadata = { ...(stored.metadata as object), resourceVersion: String(rv) };
    this.objects.set(path, stored);
    this.#events.emit('event', { path, type, object: stored, rv });
    return structuredClone(stored);
  }
}

function status(code: number, reason: string): KubeLockResponse {
  return { status: code, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code } };
}

/** RFC 7386 JSON merge patch. */
function merge(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out;
}
