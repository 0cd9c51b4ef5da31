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
