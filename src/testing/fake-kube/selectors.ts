/**
 * Label and field selectors as the API server parses them (`a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x)`). A selector the server would reject throws `SelectorError`.
 */
export class SelectorError extends Error {}

type Requirement = (labels: Record<string, string>) => boolean;

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(text: string | undefined): Requirement {
  if (!text) return () => true;
  const reqs: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m;
      const values = new Set(list!.split(',').map((v) => v.trim()).filter(Boolean));
      reqs.push(op === 'in' ? (l) => l[key!] !== undefined && values.has(l[key!]!) : (l) => l[key!] === undefined || !values.has(l[key!]!));
    } else if ((m = part.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/))) {
      const [, key, op, value] = m;
      reqs.push(op === '!=' ? (l) => l[key!] !== value : (l) => l[key!] === value);
    } else if ((m = part.match(/^!([\w./-]+)$/))) {
      const key = m[1]!;
      reqs.push((l) => l[key] === undefined);
    } else if ((m = part.match(/^([\w./-]+)$/))) {
      const key = m[1]!;
      reqs.push((l) => l[key] !== undefined);
    } else {
      throw new SelectorError(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return (labels) => reqs.every((r) => r(labels));
}

/** Field selectors: `metadata.name`, `metadata.namespace`, and any dotted path for the fields the fake knows. */
export function parseFieldSelector(text: string | undefined, allowed: readonly string[]): (obj: Record<string, unknown>) => boolean {
  if (!text) return () => true;
  const reqs: ((obj: Record<string, unknown>) => boolean)[] = [];
  for (const part of splitTopLevel(text)) {
    const m = part.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new SelectorError(`invalid field selector: ${JSON.stringify(part)}`);
    const [, field, op, value] = m;
    if (!allowed.includes(field!)) throw new SelectorError(`field label not supported: ${field}`);
    const get = (obj: Record<string, unknown>): string => {
      let cur: unknown = obj;
      for (const k of field!.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
      return cur === undefined || cur === null ? '' : String(cur);
    };
    reqs.push(op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (obj) => reqs.every((r) => r(obj));
}
