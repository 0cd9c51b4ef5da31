/**
 * The three patch kinds the API server takes for built-in types. Strategic merge is modelled as JSON
 * merge with its `$`-directives honoured for maps (`$patch: delete|replace`) and dropped for lists —
 * exact for labels, annotations, `data` and Lease/Endpoints specs, approximate for Pod containers
 * (lists are replaced, not merged by key).
 */
export class PatchError extends Error {
  constructor(
    message: string,
    readonly status: 409 | 415 | 422 | 400,
  ) {
    super(message);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Strategic merge patch, as described above. */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return strategicMergePatch({}, rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue; // $retainKeys, $setElementOrder/…, $deleteFromPrimitiveList/…
    if (v === null) delete out[k];
    else {
      const merged = strategicMergePatch(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  return out;
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** RFC 6902 JSON patch (add, remove, replace, test, copy, move). */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json patch must be an array of operations', 400);
  let doc = structuredClone(target) as Json;
  const resolve = (path: string): { parent: Json; key: string } => {
    if (!path.startsWith('/')) throw new PatchError(`invalid json pointer ${JSON.stringify(path)}`, 422);
    const segs = path.slice(1).split('/').map(unescapePointer);
    let cur: Json = doc;
    for (const s of segs.slice(0, -1)) {
      cur = Array.isArray(cur) ? (cur[Number(s)] as Json) : isObject(cur) ? (cur[s] as Json) : (undefined as unknown as Json);
      if (cur === undefined) throw new PatchError(`json patch path ${path} does not exist`, 422);
    }
    return { parent: cur, key: segs[segs.length - 1]! };
  };
  const get = (path: string): Json => {
    if (path === '') return doc;
    const { parent, key } = resolve(path);
    const v = Array.isArray(parent) ? parent[Number(key)] : isObject(parent) ? parent[key] : undefined;
    if (v === undefined) throw new PatchError(`json patch path ${path} does not exist`, 422);
    return v;
  };
  const put = (path: string, value: Json, insert: boolean): void => {
    if (path === '') {
      doc = value;
      return;
    }
    const { parent, key } = resolve(path);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (insert) parent.splice(i, 0, value);
      else parent[i] = value;
    } else if (isObject(parent)) parent[key] = value;
    else throw new PatchError(`json patch path ${path} has no parent object`, 422);
  };
  const remove = (path: string): void => {
    get(path);
    const { parent, key } = resolve(path);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else if (isObject(parent)) delete parent[key];
  };
  for (const raw of ops) {
    const op = raw as { op?: string; path?: string; from?: string; value?: Json };
    const path = op.path ?? '';
    switch (op.op) {
      case 'add':
        put(path, structuredClone(op.value as Json), true);
        break;
      case 'replace':
        get(path);
        put(path, structuredClone(op.value as Json), false);
        break;
      case 'remove':
        remove(path);
        break;
      case 'test':
        if (JSON.stringify(get(path)) !== JSON.stringify(op.value)) throw new PatchError(`json patch test failed at ${path}`, 422);
        break;
      case 'copy':
        put(path, structuredClone(get(op.from ?? '')), true);
        break;
      case 'move': {
        const v = get(op.from ?? '');
        remove(op.from ?? '');
        put(path, v, true);
        break;
      }
      default:
        throw new PatchError(`unknown json patch op ${JSON.stringify(op.op)}`, 422);
    }
  }
  return doc;
}

/** Applies a patch by its Content-Type; unsupported kinds (server-side apply) → 415. */
export function applyPatch(contentType: string, target: unknown, patch: unknown): unknown {
  const ct = contentType.split(';')[0]!.trim();
  if (ct === 'application/merge-patch+json') return mergePatch(target, patch);
  if (ct === 'application/strategic-merge-patch+json') return strategicMergePatch(target, patch);
  if (ct === 'application/json-patch+json') return jsonPatch(target, patch);
  throw new PatchError(`the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${ct}; server-side apply is not supported by the fake)`, 415);
}
