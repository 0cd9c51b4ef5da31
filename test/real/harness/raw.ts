/**
 * One raw HTTPS request to an API server (fake or real), for the differential test: the exact
 * status, content type and body, also for bodies KubeClient would never send (bad JSON) and for a
 * watch (only its first line is read, then the connection is dropped). Bounded by `timeoutMs`.
 */
import { request } from 'node:https';

export interface RawTarget {
  server: string;
  servername: string;
  ca: string;
  token: string;
}

export interface RawResponse {
  status: number;
  contentType: string;
  text: string;
  json: Record<string, unknown> | undefined;
}

export function raw(target: RawTarget, method: string, path: string, options: { body?: string; firstLineOnly?: boolean; timeoutMs?: number; token?: string } = {}): Promise<RawResponse> {
  const url = new URL(path, target.server);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        ca: target.ca,
        servername: target.servername,
        headers: {
          authorization: `Bearer ${options.token ?? target.token}`,
          accept: 'application/json',
          ...(options.body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) } : {}),
        },
        timeout: options.timeoutMs ?? 5000,
      },
      (res) => {
        let text = '';
        const finish = (): void => {
          let json: Record<string, unknown> | undefined;
          try {
            json = JSON.parse(options.firstLineOnly ? (text.split('\n')[0] ?? '') : text) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text, json });
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (options.firstLineOnly && text.includes('\n')) {
            finish();
            req.destroy();
          }
        });
        res.on('end', finish);
        res.on('error', () => finish());
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export interface WatchEvent {
  type: string;
  object: Record<string, unknown>;
  /** ms after the request was sent. */
  atMs: number;
}

export interface RawWatch {
  status: number;
  /** Every event line so far, parsed. */
  events: WatchEvent[];
  /** Resolves when the server ends the stream (or `boundMs` passed: then the connection is dropped). */
  ended: Promise<{ byServer: boolean }>;
  /** Resolves once the response headers are in. */
  opened: Promise<void>;
  close(): void;
}

/**
 * A whole watch stream from one raw request: every event line with its arrival time, until the server
 * ends it (its `timeoutSeconds`) or `boundMs` passes. For the differential watch tests.
 */
export function rawWatch(target: RawTarget, path: string, boundMs: number): RawWatch {
  const url = new URL(path, target.server);
  const events: WatchEvent[] = [];
  const t0 = process.hrtime.bigint();
  const since = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  let status = 0;
  let openedResolve!: () => void;
  let openedReject!: (e: Error) => void;
  const opened = new Promise<void>((res, rej) => ((openedResolve = res), (openedReject = rej)));
  let endResolve!: (r: { byServer: boolean }) => void;
  const ended = new Promise<{ byServer: boolean }>((res) => (endResolve = res));
  const req = request({ method: 'GET', hostname: url.hostname, port: url.port, path: url.pathname + url.search, ca: target.ca, servername: target.servername, headers: { authorization: `Bearer ${target.token}`, accept: 'application/json' } }, (res) => {
    status = res.statusCode ?? 0;
    w.status = status;
    openedResolve();
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) events.push({ ...(JSON.parse(line) as { type: string; object: Record<string, unknown> }), atMs: since() });
      }
    });
    res.on('end', () => endResolve({ byServer: true }));
    res.on('error', () => endResolve({ byServer: false }));
  });
  req.on('error', (err) => {
    openedReject(err);
    endResolve({ byServer: false });
  });
  req.end();
  const bound = setTimeout(() => {
    req.destroy();
    endResolve({ byServer: false });
  }, boundMs);
  void ended.then(() => clearTimeout(bound));
  opened.catch(() => undefined);
  const w: RawWatch = { status, events, ended, opened, close: () => req.destroy() };
  return w;
}
