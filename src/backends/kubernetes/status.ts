import { BackendUnavailableError, ForbiddenError, LeaderLockError } from '../../core/errors.js';

/** A Kubernetes `Status` object (the body of every API error). */
export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata?: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; causes?: unknown[]; retryAfterSeconds?: number };
  code: number;
}

export function isStatus(body: unknown): body is KubeStatus {
  return typeof body === 'object' && body !== null && (body as { kind?: unknown }).kind === 'Status';
}

const DEFAULT_REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Gone',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/**
 * Turns a non-accepted HTTP answer into the typed error of DESIGN.md: 401/403 → `ForbiddenError`,
 * 5xx/429 → `BackendUnavailableError`, anything else → `LeaderLockError`; each with `status` and the
 * Status `reason`. The message quotes the server's Status message, which never holds our token.
 */
export function statusError(what: string, status: number, body: unknown): LeaderLockError {
  const reason = (isStatus(body) && body.reason) || DEFAULT_REASONS[status] || 'Unknown';
  const detail = isStatus(body) && body.message ? body.message : typeof body === 'string' && body ? body.slice(0, 200) : `HTTP ${status}`;
  const message = `${what}: ${status} ${reason}: ${detail}`;
  const opts = { backend: 'kubernetes' as const, status, reason };
  if (status === 401 || status === 403) return new ForbiddenError(message, opts);
  if (status >= 500 || status === 429) return new BackendUnavailableError(message, opts);
  return new LeaderLockError(message, opts);
}

/** `Retry-After` in ms (seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | string[] | undefined, body: unknown, nowWall: number): number | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (h !== undefined) {
    if (/^\d+$/.test(h.trim())) return Number(h) * 1000;
    const at = Date.parse(h);
    if (Number.isFinite(at)) return Math.max(0, at - nowWall);
  }
  const s = isStatus(body) ? body.details?.retryAfterSeconds : undefined;
  return typeof s === 'number' ? s * 1000 : undefined;
}
