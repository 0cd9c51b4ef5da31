import {
  annotationsToRecord,
  leaseSpecToRecord,
  recordToAnnotations,
  recordToLeaseSpec,
  type Annotations,
  type LeaseSpec,
  type WireRecord,
} from './records.js';

/**
 * Per-kind object mappers: where each kind lives in the API and how the neutral record sits in it.
 * Pure functions over plain objects; the lock does the I/O.
 */

export type LockKind = 'Lease' | 'Endpoints' | 'ConfigMap';

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  annotations?: Annotations;
  labels?: Record<string, string>;
  [field: string]: unknown;
}

export interface EndpointPort {
  name?: string;
  port: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface EndpointSubset {
  addresses?: Array<{ ip: string; [field: string]: unknown }>;
  ports?: EndpointPort[];
  [field: string]: unknown;
}

/** The slice of a Lease / Endpoints / ConfigMap we touch. Everything else is carried through unchanged. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: LeaseSpec;
  subsets?: EndpointSubset[];
  [field: string]: unknown;
}

/** Annotation naming the candidate a handover nominated (all kinds). Expires by observation, like the lease. */
export const SUCCESSOR_ANNOTATION = 'leaderlock.io/successor';
/**
 * The `renewTime` of the released record the nomination was written with. A nomination counts only
 * while that released record is still there: a foreign writer (client-go, Patroni) keeps our
 * annotations through its own writes, and its later release must not revive an old nomination.
 */
export const SUCCESSOR_RECORD_ANNOTATION = 'leaderlock.io/successor-record';

/**
 * Leader metadata (all kinds): the value, and the term (transitions) it was written with. A foreign
 * writer that takes over (client-go keeps annotations it does not know) changes the transitions, so
 * the metadata is shown only for the term that wrote it. Patroni and client-go read neither.
 */
export const METADATA_ANNOTATION = 'leaderlock.io/metadata';
export const METADATA_TERM_ANNOTATION = 'leaderlock.io/metadata-term';

export interface WriteExtras {
  /** Endpoints: the leader's address; subsets are emptied when the record has no holder. */
  podIp?: string | undefined;
  ports?: readonly EndpointPort[] | undefined;
  /** string: set the nomination; null: remove it; undefined: keep what is there. */
  successor?: string | null | undefined;
  /** Labels for a newly created object. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Leader metadata and its term: set it; null: remove it; undefined: keep what is there. */
  metadata?: { value: string; term: number } | null | undefined;
  /** Also add missing `labels` to an existing object (Patroni layouts: Patroni lists objects by label). Never removes or changes a label. */
  ensureLabels?: boolean | undefined;
}

export interface KindMapper {
  readonly kind: LockKind;
  readonly apiVersion: string;
  /** Plural resource name for messages and kubectl (`leases`, `endpoints`, `configmaps`). */
  readonly resource: string;
  collectionPath(namespace: string): string;
  objectPath(namespace: string, name: string): string;
  /** Throws `MalformedRecordError`. */
  read(obj: KubeObject): WireRecord;
  /** A new object (or a changed copy of `current`) carrying `record`. Never mutates `current`. */
  write(current: KubeObject | undefined, target: { namespace: string; name: string }, record: WireRecord, extras: WriteExtras): KubeObject;
}

export function successorOf(obj: KubeObject | undefined): string | undefined {
  const s = obj?.metadata.annotations?.[SUCCESSOR_ANNOTATION];
  return typeof s === 'string' && s !== '' ? s : undefined;
}

function baseObject(mapper: KindMapper, current: KubeObject | undefined, target: { namespace: string; name: string }, extras: WriteExtras): KubeObject {
  if (current) {
    const copy: KubeObject = { ...current, metadata: { ...current.metadata, annotations: { ...(current.metadata.annotations ?? {}) } } };
    const missing = Object.entries(extras.ensureLabels ? (extras.labels ?? {}) : {}).filter(([k]) => current.metadata.labels?.[k] === undefined);
    if (missing.length > 0) copy.metadata.labels = { ...(current.metadata.labels ?? {}), ...Object.fromEntries(missing) };
    return copy;
  }
  const metadata: ObjectMeta = { name: target.name, namespace: target.namespace, annotations: {} };
  if (extras.labels && Object.keys(extras.labels).length > 0) metadata.labels = { ...extras.labels };
  return { apiVersion: mapper.apiVersion, kind: mapper.kind, metadata };
}

/** The metadata written with term `transitions`, if any. */
export function metadataOf(obj: KubeObject | undefined, transitions: number | undefined): string | undefined {
  const a = obj?.metadata.annotations;
  const value = a?.[METADATA_ANNOTATION];
  return typeof value === 'string' && transitions !== undefined && a?.[METADATA_TERM_ANNOTATION] === String(transitions) ? value : undefined;
}

function applyMetadata(obj: KubeObject, metadata: WriteExtras['metadata']): void {
  if (metadata === undefined) return;
  const annotations = obj.metadata.annotations ?? {};
  if (metadata === null) {
    delete annotations[METADATA_ANNOTATION];
    delete annotations[METADATA_TERM_ANNOTATION];
  } else {
    annotations[METADATA_ANNOTATION] = metadata.value;
    annotations[METADATA_TERM_ANNOTATION] = String(metadata.term);
  }
  obj.metadata.annotations = annotations;
}

function applySuccessor(obj: KubeObject, successor: string | null | undefined, record: WireRecord): void {
  if (successor === undefined) return;
  const annotations = obj.metadata.annotations ?? {};
  delete annotations[SUCCESSOR_ANNOTATION];
  delete annotations[SUCCESSOR_RECORD_ANNOTATION];
  if (successor !== null) {
    annotations[SUCCESSOR_ANNOTATION] = successor;
    if (record.renewTime !== undefined) annotations[SUCCESSOR_RECORD_ANNOTATION] = record.renewTime;
  }
  obj.metadata.annotations = annotations;
}

/**
 * The nomination, if it belongs to the record stored next to it (see SUCCESSOR_RECORD_ANNOTATION).
 * A nomination without the marker (written by an older leaderlock) counts as before.
 */
export function nominationOf(obj: KubeObject | undefined, wire: WireRecord | undefined): string | undefined {
  const successor = successorOf(obj);
  if (successor === undefined || !wire || wire.holder !== undefined) return undefined;
  const madeFor = obj?.metadata.annotations?.[SUCCESSOR_RECORD_ANNOTATION];
  return madeFor === undefined || madeFor === wire.renewTime ? successor : undefined;
}

function describe(mapper: KindMapper, obj: KubeObject): string {
  return `${mapper.resource} ${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
}

const lease: KindMapper = {
  kind: 'Lease',
  apiVersion: 'coordination.k8s.io/v1',
  resource: 'leases',
  collectionPath: (ns) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`,
  objectPath: (ns, name) => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases/${encodeURIComponent(name)}`,
  read(obj) {
    return leaseSpecToRecord(obj.spec, describe(lease, obj));
  },
  write(current, target, record, extras) {
    const obj = baseObject(lease, current, target, extras);
    obj.spec = recordToLeaseSpec(record, current?.spec ?? {});
    // Coordinated leader election: we do not take part (we neither yield to preferredHolder nor honour
    // a strategy); like client-go's own non-coordinated elector, whose Update writes a spec without
    // them, our writes drop both, so a preferredHolder naming a past candidate never lingers.
    delete obj.spec.preferredHolder;
    delete obj.spec.strategy;
    applySuccessor(obj, extras.successor, record);
    applyMetadata(obj, extras.metadata);
    return obj;
  },
};

function patroniMapper(kind: 'Endpoints' | 'ConfigMap', resource: string): KindMapper {
  const mapper: KindMapper = {
    kind,
    apiVersion: 'v1',
    resource,
    collectionPath: (ns) => `/api/v1/namespaces/${encodeURIComponent(ns)}/${resource}`,
    objectPath: (ns, name) => `/api/v1/namespaces/${encodeURIComponent(ns)}/${resource}/${encodeURIComponent(name)}`,
    read(obj) {
      return annotationsToRecord(obj.metadata.annotations, describe(mapper, obj));
    },
    write(current, target, record, extras) {
      const obj = baseObject(mapper, current, target, extras);
      obj.metadata.annotations = recordToAnnotations(record, obj.metadata.annotations ?? {});
      applySuccessor(obj, extras.successor, record);
      applyMetadata(obj, extras.metadata);
      if (kind === 'Endpoints') {
        // As Patroni with use_endpoints: the leader's address in subsets, so a Service without a
        // selector routes to it; emptied on release.
        obj.subsets =
          record.holder !== undefined && extras.podIp
            ? [{ addresses: [{ ip: extras.podIp }], ports: (extras.ports ?? []).map((p) => ({ ...p })) }]
            : [];
      }
      return obj;
    },
  };
  return mapper;
}

const MAPPERS: Readonly<Record<LockKind, KindMapper>> = {
  Lease: lease,
  Endpoints: patroniMapper('Endpoints', 'endpoints'),
  ConfigMap: patroniMapper('ConfigMap', 'configmaps'),
};

export function mapperFor(kind: LockKind): KindMapper {
  return MAPPERS[kind];
}

/**
 * The Patroni scope of a leader object, when the object follows Patroni's layout: Endpoints
 * `<scope>`, ConfigMap `<scope>-leader`. Patroni keeps its failover request in `<scope>-failover` (same kind).
 */
export function patroniScope(kind: LockKind, name: string): string | undefined {
  if (kind === 'Endpoints') return name;
  if (kind === 'ConfigMap' && name.endsWith('-leader') && name.length > '-leader'.length) return name.slice(0, -'-leader'.length);
  return undefined;
}
