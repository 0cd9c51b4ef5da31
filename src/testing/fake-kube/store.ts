import { randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { validateObject } from './validate.js';
import { alreadyExists, apiVersionOf, conflict, invalid, notFound, type ResourceType } from './resources.js';

/** A stored object (JSON). */
export type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> };

export interface StoreEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceType;
  namespace: string;
  object: KubeObject;
  /** The object before the change (MODIFIED), for selector transitions. */
  previous?: KubeObject;
}

export type Outcome = { status: number; body: Record<string, unknown> };

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function meta(obj: unknown): Record<string, unknown> {
  const m = (obj as { metadata?: unknown } | undefined)?.metadata;
  return typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : {};
}

/**
 * One store for every API node: objects plus a single resourceVersion counter, a bounded event
 * history for watches (older versions → 410), and change listeners.
 */
export class FakeKubeStore {
  #rv = 100;
  #compactedRv = 100;
  readonly #objects = new Map<string, KubeObject>();
  readonly #history: StoreEvent[] = [];
  readonly #listeners = new Set<(ev: StoreEvent) => void>();

  constructor(
    readonly clock: Clock,
    readonly historyLimit = 1000,
  ) {}

  get resourceVersion(): number {
    return this.#rv;
  }

  /** Watches from a resourceVersion before this one get 410 Expired. */
  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  /** Drops the event history, as etcd compaction does: older watch versions become 410. */
  compact(): void {
    this.#history.length = 0;
    this.#compactedRv = this.#rv;
  }

  onChange(fn: (ev: StoreEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  eventsAfter(rv: number): StoreEvent[] {
    return this.#history.filter((e) => e.rv > rv);
  }

  #key(t: ResourceType, ns: string, name: string): string {
    return `${apiVersionOf(t)}/${t.resource}/${ns}/${name}`;
  }

  get(t: ResourceType, ns: string, name: string): KubeObject | undefined {
    const o = this.#objects.get(this.#key(t, ns, name));
    return o ? structuredClone(o) : undefined;
  }

  list(t: ResourceType, ns: string | undefined): KubeObject[] {
    const prefix = `${apiVersionOf(t)}/${t.resource}/${ns === undefined ? '' : `${ns}/`}`;
    return [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, o]) => structuredClone(o));
  }

  #emit(ev: Omit<StoreEvent, 'rv'> & { rv: number }): void {
    this.#history.push(ev);
    while (this.#history.length > this.historyLimit) this.#compactedRv = this.#history.shift()!.rv;
    for (const fn of this.#listeners) fn(ev);
  }

  #validate(t: ResourceType, name: unknown, obj: unknown): Outcome | undefined {
    if (typeof name !== 'string' || name === '') return { status: 422, body: invalid(t, '', 'metadata.name: Required value: name or generateName is required') };
    if (!NAME_RE.test(name)) return { status: 422, body: invalid(t, name, `metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`) };
    return validateObject(t, name, (obj ?? {}) as Record<string, unknown>);
  }

  /** POST: 409 AlreadyExists if present. */
  create(t: ResourceType, ns: string, input: unknown): Outcome {
    const m = meta(input);
    let name = m.name;
    if ((name === undefined || name === '') && typeof m.generateName === 'string') name = `${m.generateName}${randomUUID().slice(0, 5)}`;
    const bad = this.#validate(t, name, input);
    if (bad) return bad;
    if (m.namespace !== undefined && m.namespace !== ns) {
      return { status: 400, body: { ...invalid(t, String(name), 'the namespace of the provided object does not match the namespace sent on the request'), code: 400, reason: 'BadRequest' } };
    }
    const key = this.#key(t, ns, String(name));
    if (this.#objects.has(key)) return { status: 409, body: alreadyExists(t, String(name)) };
    const rv = ++this.#rv;
    const obj = Object.assign({ apiVersion: apiVersionOf(t), kind: t.kind, metadata: {} }, input, {
      apiVersion: apiVersionOf(t),
      kind: t.kind,
      metadata: { ...m, name, namespace: ns, uid: randomUUID(), resourceVersion: String(rv), creationTimestamp: isoSeconds(this.clock.date()) },
    }) as KubeObject;
    delete obj.metadata.generateName;
    this.#objects.set(key, obj);
    this.#emit({ rv, type: 'ADDED', resource: t, namespace: ns, object: structuredClone(obj) });
    return { status: 201, body: structuredClone(obj) };
  }

  /** PUT: CAS on metadata.resourceVersion when given (409 Conflict), unconditional otherwise. */
  update(t: ResourceType, ns: string, name: string, input: unknown): Outcome {
    const m = meta(input);
    if (m.name !== undefined && m.name !== name) {
      return { status: 400, body: { ...invalid(t, name, 'the name of the object does not match the name on the URL'), code: 400, reason: 'BadRequest' } };
    }
    const key = this.#key(t, ns, name);
    const current = this.#objects.get(key);
    if (!current) {
      if (t.createOnUpdate && !m.resourceVersion) return this.create(t, ns, { ...(input as object), metadata: { ...m, name } });
      return { status: 404, body: notFound(t, name) };
    }
    // A uid in the body is a precondition the real server checks first (a stale PUT after a delete and
    // re-create names the old object's uid): 409 with its own message.
    if (m.uid !== undefined && m.uid !== '' && m.uid !== current.metadata.uid) {
      return { status: 409, body: conflict(t, name, `StorageError: invalid object, Code: 4, Key: /registry/${t.resource}/${ns}/${name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: ${String(m.uid)}, UID in object meta: ${String(current.metadata.uid)}`) };
    }
    if (m.resourceVersion !== undefined && m.resourceVersion !== '' && m.resourceVersion !== current.metadata.resourceVersion) {
      return { status: 409, body: conflict(t, name) };
    }
    return this.#replace(t, ns, name, current, input);
  }

  /** Writes `next` over `current` (already checked), keeping the server-owned metadata. */
  #replace(t: ResourceType, ns: string, name: string, current: KubeObject, next: unknown): Outcome {
    const bad = this.#validate(t, name, next);
    if (bad) return bad;
    const m = meta(next);
    const rv = ++this.#rv;
    const obj = Object.assign({ apiVersion: apiVersionOf(t), kind: t.kind, metadata: {} }, next, {
      apiVersion: apiVersionOf(t),
      kind: t.kind,
      metadata: {
        ...m,
        name,
        namespace: ns,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        resourceVersion: String(rv),
      },
    }) as KubeObject;
    this.#objects.set(this.#key(t, ns, name), obj);
    this.#emit({ rv, type: 'MODIFIED', resource: t, namespace: ns, object: structuredClone(obj), previous: current });
    return { status: 200, body: structuredClone(obj) };
  }

  /** PATCH: `patch(current)` gives the new object; a resourceVersion in the result is a precondition. */
  patch(t: ResourceType, ns: string, name: string, apply: (current: KubeObject) => unknown): Outcome {
    const current = this.#objects.get(this.#key(t, ns, name));
    if (!current) return { status: 404, body: notFound(t, name) };
    const next = apply(structuredClone(current));
    const m = meta(next);
    if (m.resourceVersion !== undefined && m.resourceVersion !== current.metadata.resourceVersion) return { status: 409, body: conflict(t, name) };
    if (m.uid !== undefined && m.uid !== current.metadata.uid) return { status: 409, body: conflict(t, name, 'Precondition failed: UID in precondition does not match the object') };
    return this.#replace(t, ns, name, current, next);
  }

  /** DELETE with optional preconditions (`{ preconditions: { resourceVersion, uid } }`). */
  delete(t: ResourceType, ns: string, name: string, options?: unknown): Outcome {
    const key = this.#key(t, ns, name);
    const current = this.#objects.get(key);
    if (!current) return { status: 404, body: notFound(t, name) };
    const pre = (options as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined)?.preconditions;
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== current.metadata.resourceVersion) {
      return { status: 409, body: conflict(t, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(current.metadata.resourceVersion)}`) };
    }
    if (pre?.uid !== undefined && pre.uid !== current.metadata.uid) {
      return { status: 409, body: conflict(t, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(current.metadata.uid)}`) };
    }
    this.#objects.delete(key);
    const rv = ++this.#rv;
    const obj = { ...current, metadata: { ...current.metadata, resourceVersion: String(rv) } } as KubeObject;
    this.#emit({ rv, type: 'DELETED', resource: t, namespace: ns, object: structuredClone(obj) });
    return { status: 200, body: structuredClone(obj) };
  }
}

/** RFC 3339 with whole seconds, as metav1.Time serialises. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
