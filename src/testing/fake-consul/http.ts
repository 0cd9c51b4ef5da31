import { parseDuration } from './duration.js';
import type { ConsulState } from './state.js';

/** Request/response shapes and helpers shared by the fake's route handlers. */

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Buffer;
  /** Aborts when the client goes away or the server closes (ends blocking queries). */
  signal: AbortSignal;
}

export interface FakeResponse {
  status: number;
  /** JSON-serialised unless a Buffer/string (sent as is). */
  body?: unknown;
  index?: number;
}

export type Handler = (state: ConsulState, req: FakeRequest, param: string) => FakeResponse | Promise<FakeResponse>;

const DEFAULT_WAIT_MS = 300_000;
const MAX_WAIT_MS = 600_000;

export const bad = (text: string): FakeResponse => ({ status: 400, body: text });
/** An error from a server RPC (not an HTTPError): Consul's HTTP layer answers it with 500 and the text. */
export const rpcError = (text: string): FakeResponse => ({ status: 500, body: text });
export const notFound = (text: string): FakeResponse => ({ status: 404, body: text });

/** Go's encoding/json matches field names case-insensitively; so do we. */
export function fields(body: Buffer): Record<string, unknown> | FakeResponse {
  if (body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return bad('Request decode failed: expected an object');
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.toLowerCase(), x]));
  } catch (err) {
    return bad(`Request decode failed: ${(err as Error).message}`);
  }
}
export const isResponse = (v: unknown): v is FakeResponse => typeof v === 'object' && v !== null && 'status' in v && typeof (v as FakeResponse).status === 'number';

export function uintParam(q: URLSearchParams, name: string): number | undefined | FakeResponse {
  const raw = q.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) return bad(`Invalid ${name} index: ${raw}`);
  return Number(raw);
}

/**
 * A blocking query: with `?index=N` (N > 0) the answer waits until the read's index exceeds N or
 * `?wait` (default 5 min, at most 10 min, on the fake's clock) passes. Consul adds up to wait/16 of
 * jitter; the fake does not, so tests are exact.
 */
export async function blocking(state: ConsulState, req: FakeRequest, read: () => FakeResponse & { index: number }): Promise<FakeResponse> {
  const min = uintParam(req.query, 'index');
  if (isResponse(min)) return min;
  let waitMs = DEFAULT_WAIT_MS;
  const w = req.query.get('wait');
  if (w !== null) {
    const parsed = parseDuration(w);
    if (parsed === undefined) return bad(`Invalid wait time: ${w}`);
    waitMs = Math.min(parsed, MAX_WAIT_MS);
  }
  let r = read();
  if (!min) return r;
  const deadline = state.clock.now() + waitMs;
  while (r.index <= min && state.clock.now() < deadline && !req.signal.aborted) {
    state.parked += 1;
    try {
      await state.waitForChange(deadline - state.clock.now(), req.signal);
    } finally {
      state.parked -= 1;
    }
    r = read();
  }
  return r;
}
