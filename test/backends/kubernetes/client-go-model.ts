import type { Clock } from '../../../src/core/clock.js';
import type { KubeClient } from '../../../src/backends/kubernetes/client.js';
import type { KubeObject } from '../../../src/backends/kubernetes/kinds.js';
import { formatMicroTime } from '../../../src/backends/kubernetes/records.js';

/**
 * A line-by-line TypeScript model of client-go's `leaderelection` on a `LeaseLock`, written from
 * kubernetes/client-go at 32ce75a7 (2026-07-24): `tools/leaderelection/leaderelection.go`
 * (`tryAcquireOrRenew` l.444–515, `tryRelease` l.326–359, `isLeaseValid` l.548–554, `IsLeader`
 * l.246, `setObservedRecord` l.558) and `resourcelock/leaselock.go` (`Get`, `Create`, `Update`,
 * `LeaseSpecToLeaderElectionRecord`, `LeaderElectionRecordToLeaseSpec`).
 *
 * `release: 'v0.33'` models the release of v0.33–v0.36 instead (`release()` l.308 at v0.33.0: Update of
 * the cached object, no fresh Get, no retry); the Get-and-retry on 409 came with commit 1b1630d3
 * ("retry release on conflict from inflight renew"), first tagged kubernetes-1.37.0-alpha.1.
 *
 * It gives the exact, virtual-clock version of each interop point; the real client-go peer
 * (test/peers/client-go, v0.33.13 and v0.37.2) checks the same points on real kube-apiservers in
 * test/real/interop-client-go.test.ts and agreed with this model on items 1–8 (issue 16).
 *
 * What it reproduces, because our interop depends on it:
 * - the raw record it compares is `json.Marshal(LeaderElectionRecord)`, whose `metav1.Time` fields
 *   marshal at whole-second precision (RFC 3339): two writes in one wall-clock second with the same
 *   other fields look like no change (issue 16 item 4);
 * - `observedTime` is its own clock at the moment it saw a changed raw record; expiry =
 *   `observedTime + observedRecord.LeaseDurationSeconds` (a leader judges itself by its last write);
 * - `IsLeader()` is `observedRecord.HolderIdentity == identity`: a record written by anyone under the
 *   same identity is "ours" (item 2);
 * - `Update` sends its cached Lease object (metadata, annotations and labels as last read) with a new
 *   spec: `strategy`/`preferredHolder` are dropped, our annotations are kept (items 6, 7);
 * - `Create` writes `leaseTransitions: 0`-based records (item 5); `tryRelease` checks `IsLeader()`
 *   against its *observed* record, not the fresh one, and retries a 409 with a fresh Get (item 3).
 */
export interface ClientGoPeer {
  readonly identity: string;
  tryAcquireOrRenew(): Promise<boolean>;
  release(): Promise<boolean>;
  isLeader(): boolean;
}

interface LeaderElectionRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: Date | undefined;
  renewTime: Date | undefined;
  leaderTransitions: number;
  strategy: string;
  preferredHolder: string;
}

/** metav1.Time MarshalJSON: UTC RFC 3339, whole seconds; the zero time is null. */
function metaTime(d: Date | undefined): string | null {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : null;
}

/** json.Marshal(LeaderElectionRecord) — field order and precision as Go writes them. */
export function rawRecord(r: LeaderElectionRecord): string {
  return JSON.stringify({
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: metaTime(r.acquireTime),
    renewTime: metaTime(r.renewTime),
    leaderTransitions: r.leaderTransitions,
    strategy: r.strategy,
    preferredHolder: r.preferredHolder,
  });
}

function specToRecord(spec: Record<string, unknown> | undefined): LeaderElectionRecord {
  const s = spec ?? {};
  const time = (v: unknown): Date | undefined => (typeof v === 'string' ? new Date(v) : undefined);
  return {
    holderIdentity: typeof s.holderIdentity === 'string' ? s.holderIdentity : '',
    leaseDurationSeconds: typeof s.leaseDurationSeconds === 'number' ? s.leaseDurationSeconds : 0,
    acquireTime: time(s.acquireTime),
    renewTime: time(s.renewTime),
    leaderTransitions: typeof s.leaseTransitions === 'number' ? s.leaseTransitions : 0,
    strategy: typeof s.strategy === 'string' ? s.strategy : '',
    preferredHolder: typeof s.preferredHolder === 'string' ? s.preferredHolder : '',
  };
}

/** MicroTime in the Lease: microseconds; our Date has ms, which is all the model needs. */
function recordToSpec(r: LeaderElectionRecord): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: r.acquireTime ? formatMicroTime(r.acquireTime) : undefined,
    renewTime: r.renewTime ? formatMicroTime(r.renewTime) : undefined,
    leaseTransitions: r.leaderTransitions,
  };
  if (r.preferredHolder !== '') spec.preferredHolder = r.preferredHolder;
  if (r.strategy !== '') spec.strategy = r.strategy;
  return spec;
}

export class ClientGoModel implements ClientGoPeer {
  readonly identity: string;
  readonly #api: KubeClient;
  readonly #path: string;
  readonly #collection: string;
  readonly #name: string;
  readonly #namespace: string;
  readonly #clock: Clock;
  readonly #leaseDurationS: number;
  /** ll.lease: the last object Get/Create/Update returned. */
  #lease: KubeObject | undefined;
  #observedRecord: LeaderElectionRecord = specToRecord({});
  #observedRawRecord: string | undefined;
  #observedTime = Number.NEGATIVE_INFINITY;
  /** Requests this peer sent, for assertions. */
  readonly log: string[] = [];

  readonly #releaseStyle: 'v0.33' | 'current';

  constructor(o: { api: KubeClient; namespace: string; name: string; identity: string; clock: Clock; leaseDurationMs: number; release?: 'v0.33' | 'current' }) {
    this.identity = o.identity;
    this.#releaseStyle = o.release ?? 'current';
    this.#api = o.api;
    this.#name = o.name;
    this.#namespace = o.namespace;
    this.#collection = `/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases`;
    this.#path = `${this.#collection}/${o.name}`;
    this.#clock = o.clock;
    // int(le.config.LeaseDuration / time.Second): truncated, not rounded.
    this.#leaseDurationS = Math.trunc(o.leaseDurationMs / 1000);
  }

  isLeader(): boolean {
    return this.#observedRecord.holderIdentity === this.identity;
  }

  /** When this peer would judge the record it observed expired (monotonic ms of our clock). */
  get observedExpiresAt(): number {
    return this.#observedTime + this.#observedRecord.leaseDurationSeconds * 1000;
  }

  isLeaseValid(now = this.#clock.now()): boolean {
    return this.observedExpiresAt > now;
  }

  #setObservedRecord(r: LeaderElectionRecord): void {
    this.#observedRecord = r;
    this.#observedTime = this.#clock.now();
  }

  async #get(): Promise<{ record: LeaderElectionRecord; raw: string } | undefined> {
    this.log.push('GET');
    const res = await this.#api.request<KubeObject>({ method: 'GET', path: this.#path, accept: [404] });
    if (res.status === 404) return undefined;
    this.#lease = res.body;
    const record = specToRecord(res.body.spec);
    return { record, raw: rawRecord(record) };
  }

  async #create(r: LeaderElectionRecord): Promise<boolean> {
    this.log.push('POST');
    const res = await this.#api.request<KubeObject>({
      method: 'POST',
      path: this.#collection,
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.#name, namespace: this.#namespace }, spec: recordToSpec(r) },
      accept: [409],
    });
    if (res.status === 409) return false;
    this.#lease = res.body;
    return true;
  }

  /** ll.Update: the cached object with a new spec (metadata as last read). 'conflict' on 409. */
  async #update(r: LeaderElectionRecord): Promise<'ok' | 'conflict' | 'error'> {
    if (!this.#lease) return 'error';
    this.log.push('PUT');
    const body: KubeObject = { ...this.#lease, spec: recordToSpec(r) as KubeObject['spec'] };
    const res = await this.#api.request<KubeObject>({ method: 'PUT', path: this.#path, body, accept: [404, 409] });
    if (res.status === 409) return 'conflict';
    if (res.status === 404) return 'error';
    this.#lease = res.body;
    return 'ok';
  }

  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#clock.date();
    const mono = this.#clock.now();
    const record: LeaderElectionRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.#leaseDurationS,
      renewTime: now,
      acquireTime: now,
      leaderTransitions: 0,
      strategy: '',
      preferredHolder: '',
    };
    // 1. fast path for the leader: optimistic update on the cached object.
    if (this.isLeader() && this.isLeaseValid(mono)) {
      record.acquireTime = this.#observedRecord.acquireTime;
      record.leaderTransitions = this.#observedRecord.leaderTransitions;
      if ((await this.#update(record)) === 'ok') {
        this.#setObservedRecord(record);
        return true;
      }
    }
    // 2. obtain or create the ElectionRecord
    const got = await this.#get();
    if (!got) {
      if (!(await this.#create(record))) return false;
      this.#setObservedRecord(record);
      return true;
    }
    // 3. Record obtained, check the Identity & Time
    if (this.#observedRawRecord !== got.raw) {
      this.#setObservedRecord(got.record);
      this.#observedRawRecord = got.raw;
    }
    if (got.record.holderIdentity.length > 0 && this.isLeaseValid(mono) && !this.isLeader()) return false;
    // 4. correct the record before updating
    if (this.isLeader()) {
      record.acquireTime = got.record.acquireTime;
      record.leaderTransitions = got.record.leaderTransitions;
    } else {
      record.leaderTransitions = got.record.leaderTransitions + 1;
    }
    if ((await this.#update(record)) !== 'ok') return false;
    this.#setObservedRecord(record);
    return true;
  }

  /** The record ReleaseOnCancel writes: no holder, a 1 s lease, the transitions count kept. */
  #releasedRecord(leaderTransitions: number): LeaderElectionRecord {
    const now = this.#clock.date();
    return { holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now, leaderTransitions, strategy: '', preferredHolder: '' };
  }

  /** tryRelease (ReleaseOnCancel): IsLeader() on the *observed* record; a 409 retries with a fresh Get. Bounded here. */
  async release(): Promise<boolean> {
    if (this.#releaseStyle === 'v0.33') {
      if (!this.isLeader()) return true;
      const record = this.#releasedRecord(this.#observedRecord.leaderTransitions);
      if ((await this.#update(record)) !== 'ok') return false;
      this.#setObservedRecord(record);
      return true;
    }
    for (let attempt = 0; attempt < 10; attempt++) {
      const got = await this.#get();
      if (!got) return false;
      if (!this.isLeader()) return true;
      const record = this.#releasedRecord(got.record.leaderTransitions);
      const r = await this.#update(record);
      if (r === 'conflict') continue;
      if (r === 'error') return false;
      this.#setObservedRecord(record);
      return true;
    }
    return false;
  }
}
