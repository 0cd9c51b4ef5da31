import type { Term } from '../../core/lock.js';
import type { KubeObject, WriteExtras } from './kinds.js';
import type { ResolvedLockOptions } from './lock-options.js';
import type { Snapshot } from './observer.js';
import { formatMicroTime, type WireRecord } from './records.js';

/**
 * The requests a KubernetesLock is made of, on its one object: GET, CAS PUT (on the
 * resourceVersion carried in the body), POST (create on 404). Keeps the last object seen so a renew
 * needs no GET. Statuses the lock decides on (404, 409) are returned; everything else throws the
 * client's typed errors (`ForbiddenError`, `BackendUnavailableError`, ...).
 */
export class LockObjectIo {
  readonly #o: ResolvedLockOptions;
  #cache: KubeObject | undefined;
  #lastTimeMs = NaN;
  #micros = 0;

  constructor(options: ResolvedLockOptions) {
    this.#o = options;
  }

  get objectPath(): string {
    return this.#o.mapper.objectPath(this.#o.namespace, this.#o.name);
  }

  /** One GET; a record we cannot parse throws `MalformedRecordError`. */
  async read(signal?: AbortSignal): Promise<Snapshot> {
    const { api, requestTimeoutMs } = this.#o;
    const res = await api.request<KubeObject>({ method: 'GET', path: this.objectPath, accept: [404], signal, timeoutMs: requestTimeoutMs });
    const obj = res.status === 404 ? undefined : res.body;
    this.#cache = obj;
    return { obj, wire: obj && this.parse(obj) };
  }

  parse(obj: KubeObject): WireRecord {
    return this.#o.mapper.read(obj);
  }

  /** Update conditioned on `body.metadata.resourceVersion`: 200, or 409 (someone wrote since), or 404. */
  async put(body: KubeObject, signal: AbortSignal | undefined): Promise<number> {
    const { api, requestTimeoutMs } = this.#o;
    const res = await api.request<KubeObject>({ method: 'PUT', path: this.objectPath, body, accept: [404, 409], signal, timeoutMs: requestTimeoutMs });
    this.#cache = res.status < 300 ? res.body : undefined;
    return res.status;
  }

  /** Create: 201, or 409 AlreadyExists. */
  async create(body: KubeObject, signal: AbortSignal | undefined): Promise<number> {
    const { api, mapper, namespace, requestTimeoutMs } = this.#o;
    const res = await api.request<KubeObject>({ method: 'POST', path: mapper.collectionPath(namespace), body, accept: [409], signal, timeoutMs: requestTimeoutMs });
    this.#cache = res.status < 300 ? res.body : undefined;
    return res.status;
  }

  /** The object to send: `current` (or a new object) carrying `record`. */
  build(current: KubeObject | undefined, record: WireRecord, extras: WriteExtras): KubeObject {
    const { podIp, ports, labels, mapper, namespace, name, patroniLayout } = this.#o;
    return mapper.write(current, { namespace, name }, record, { podIp, ports, labels, ensureLabels: patroniLayout, ...extras });
  }

  /**
   * The lock's watch delivered `obj` (undefined: deleted). When it shows another term than the cached
   * object (someone else wrote: client-go v0.34+ releasing over our newer term, issue 16 item 3), the
   * cache is dropped: the next renew then ends the term after one GET instead of first sending a write
   * bound to meet a 409. A watched object never becomes the cache (an event older than our last write
   * must not be the base of a CAS write); an old event only costs that renew one GET.
   */
  watched(obj: KubeObject | undefined): void {
    const cached = this.#cache;
    if (!cached || (obj && obj.metadata.resourceVersion === cached.metadata.resourceVersion)) return;
    try {
      const was = this.parse(cached);
      const now = obj && this.parse(obj);
      if (now && now.holder === was.holder && now.transitions === was.transitions) return;
    } catch {
      /* unparseable: not our term either */
    }
    this.#cache = undefined;
  }

  /** The last object seen, if it shows this term (saves a GET before a CAS write; a stale one only costs a 409). */
  cachedTermObject(term: Term): KubeObject | undefined {
    const obj = this.#cache;
    if (!obj) return undefined;
    try {
      return sameTerm(this.parse(obj), term) ? obj : undefined;
    } catch {
      return undefined;
    }
  }

  /** A MicroTime from the wall clock, unique among this lock's writes (a renewTime identifies one write). */
  nextTime(): string {
    const date = this.#o.clock.date();
    const ms = date.getTime();
    this.#micros = ms === this.#lastTimeMs ? Math.min(999, this.#micros + 1) : 0;
    this.#lastTimeMs = ms;
    return formatMicroTime(date, this.#micros);
  }
}

/** The record is this term's: same holder and token. */
export function sameTerm(wire: WireRecord, term: Term): boolean {
  return wire.holder === term.holder && BigInt(wire.transitions) === term.token;
}

/** The record is exactly the write we sent (a re-read after an ambiguous write). */
export function isOurWrite(wire: WireRecord | undefined, record: WireRecord): boolean {
  return !!wire && wire.holder === record.holder && wire.transitions === record.transitions && wire.renewTime === record.renewTime;
}
