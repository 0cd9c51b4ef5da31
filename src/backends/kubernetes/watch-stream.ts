import type { Readable } from 'node:stream';

/** One event of a Kubernetes watch stream. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: unknown;
}

const TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/**
 * Splits a watch response (one JSON object per line, chunk boundaries anywhere) into events.
 * A line that is not a watch event ends the stream with an error rather than being skipped silently.
 */
export async function* parseWatchStream(body: AsyncIterable<Buffer | string> & Pick<Readable, 'setEncoding'>): AsyncGenerator<WatchEvent> {
  body.setEncoding('utf8');
  let buffer = '';
  for await (const chunk of body) {
    buffer += chunk as string;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) yield parseLine(line);
    }
  }
  if (buffer.trim()) yield parseLine(buffer.trim());
}

function parseLine(line: string): WatchEvent {
  let ev: { type?: unknown; object?: unknown };
  try {
    ev = JSON.parse(line) as typeof ev;
  } catch {
    throw new Error(`watch stream: not JSON: ${line.slice(0, 80)}`);
  }
  if (typeof ev.type !== 'string' || !TYPES.has(ev.type)) throw new Error(`watch stream: unknown event type ${JSON.stringify(ev.type)}`);
  return { type: ev.type as WatchEvent['type'], object: ev.object };
}
