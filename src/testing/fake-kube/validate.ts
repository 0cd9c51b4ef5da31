import { invalid, statusBody, type ResourceType } from './resources.js';

/**
 * The checks a real API server makes that a client is most likely to get wrong: decoding errors
 * (400, e.g. a Lease time without six fractional digits — MicroTime — or a string where an integer
 * belongs) and validation errors (422, e.g. a label value that is not a valid label value).
 */
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function cannotDecode(t: ResourceType, why: string): { status: number; body: Record<string, unknown> } {
  return { status: 400, body: statusBody(400, 'BadRequest', `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: ${why}`) };
}

export function validateObject(t: ResourceType, name: string, obj: Record<string, unknown>): { status: number; body: Record<string, unknown> } | undefined {
  const metadata = (obj.metadata ?? {}) as Record<string, unknown>;
  for (const field of ['labels', 'annotations'] as const) {
    const m = metadata[field];
    if (m === undefined || m === null) continue;
    if (typeof m !== 'object' || Array.isArray(m)) return cannotDecode(t, `json: cannot unmarshal into metadata.${field} of type map[string]string`);
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') return cannotDecode(t, `json: cannot unmarshal ${typeof v} into Go struct field ObjectMeta.metadata.${field} of type string`);
      const [prefix, key] = k.includes('/') ? [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)] : ['', k];
      if (!LABEL_NAME.test(key) || key.length > 63 || prefix.length > 253) return { status: 422, body: invalid(t, name, `metadata.${field}: Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.'`) };
      if (field === 'labels' && (v.length > 63 || !LABEL_VALUE.test(v))) return { status: 422, body: invalid(t, name, `metadata.labels: Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'`) };
    }
  }
  if (t.kind === 'ConfigMap' && obj.data !== undefined && obj.data !== null) {
    if (typeof obj.data !== 'object' || Object.values(obj.data).some((v) => typeof v !== 'string')) return cannotDecode(t, 'json: cannot unmarshal into Go struct field ConfigMap.data of type string');
  }
  if (t.kind === 'Lease') {
    const spec = (obj.spec ?? {}) as Record<string, unknown>;
    for (const f of ['holderIdentity', 'strategy', 'preferredHolder'] as const) {
      if (spec[f] !== undefined && spec[f] !== null && typeof spec[f] !== 'string') return cannotDecode(t, `json: cannot unmarshal into Go struct field LeaseSpec.spec.${f} of type string`);
    }
    for (const f of ['leaseDurationSeconds', 'leaseTransitions'] as const) {
      if (spec[f] !== undefined && spec[f] !== null && !Number.isInteger(spec[f])) return cannotDecode(t, `json: cannot unmarshal into Go struct field LeaseSpec.spec.${f} of type int32`);
    }
    for (const f of ['acquireTime', 'renewTime'] as const) {
      const v = spec[f];
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v))) {
        return cannotDecode(t, `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": spec.${f} must be a MicroTime`);
      }
    }
    if (typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds <= 0) return { status: 422, body: invalid(t, name, `spec.leaseDurationSeconds: Invalid value: ${spec.leaseDurationSeconds}: must be greater than 0`) };
  }
  return undefined;
}
