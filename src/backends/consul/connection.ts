import { readFileSync } from 'node:fs';
import type { Problems } from '../../core/options.js';
import { errorText } from '../../core/retry.js';

/**
 * Where and how to reach the Consul agent: explicit options first, then the environment variables
 * Consul's own CLI reads (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, CONSUL_HTTP_SSL).
 * TLS verification cannot be turned off (CONSUL_HTTP_SSL_VERIFY=false is a ConfigError).
 */

export interface ConsulConnectionOptions {
  /** Consul agent address, `host:port` or `http(s)://host:port`. Default `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500. */
  address?: string;
  /** Agent host; with `port`, an alternative to `address` (which wins when both are given). */
  host?: string;
  /** Agent port. Default 8500 (443 for an https:// address without port). */
  port?: number;
  /** TLS material (PEM): `ca` to verify the agent, `cert`/`key` for a client certificate (Consul `verify_incoming`). */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** Use HTTPS. Default `CONSUL_HTTP_SSL` (true/1), or true for an `https://` address. */
  secure?: boolean;
  /** CA certificate(s) (PEM) to verify the agent with. Default the file named by `CONSUL_CACERT`. */
  ca?: string | Buffer;
  /** ACL token, sent as `X-Consul-Token`. Default `CONSUL_HTTP_TOKEN`. Never logged. */
  token?: string;
  /** Deadline of one request (not of a blocking query's wait), ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Environment to read the `CONSUL_*` defaults from. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ResolvedConnection {
  host: string;
  port: number;
  secure: boolean;
  ca: string | Buffer | undefined;
  cert: string | Buffer | undefined;
  key: string | Buffer | undefined;
  token: string | undefined;
  requestTimeoutMs: number;
}

/** Applies the `CONSUL_*` environment defaults; explicit options win. Adds every problem to `p`. */
export function resolveConnection(p: Problems, o: ConsulConnectionOptions): ResolvedConnection {
  const env = o.env ?? process.env;
  const fromParts = o.host !== undefined || o.port !== undefined ? `${o.host ?? '127.0.0.1'}:${o.port ?? 8500}` : undefined;
  const addr = o.address ?? fromParts ?? env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500';
  let host = '127.0.0.1';
  let port = 8500;
  let scheme: string | undefined;
  const bareV6 = o.address === undefined && o.host?.includes(':') ? `[${o.host}]:${o.port ?? 8500}` : undefined;
  const m = /^(?:(https?|unix):\/\/)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(bareV6 ?? addr);
  if (!m || m[1] === 'unix') {
    const unix = addr.startsWith('unix://') ? ' (unix sockets are not supported)' : '';
    p.add(`address (CONSUL_HTTP_ADDR) must be host:port or http(s)://host:port, got ${JSON.stringify(addr)}${unix}`);
  } else {
    scheme = m[1];
    host = m[2]!.replace(/^\[|\]$/g, '');
    if (m[3] !== undefined) port = Number(m[3]);
    else if (scheme === 'https') port = 443;
    p.check(port > 0 && port < 65536, `address port must be 1–65535, got ${port}`);
  }
  const envSsl = env.CONSUL_HTTP_SSL;
  const secure = o.secure ?? (scheme !== undefined ? scheme === 'https' : envSsl === 'true' || envSsl === '1');
  if (env.CONSUL_HTTP_SSL_VERIFY === 'false' || env.CONSUL_HTTP_SSL_VERIFY === '0') {
    p.add('CONSUL_HTTP_SSL_VERIFY=false is not supported: leaderlock always verifies TLS; give the CA with CONSUL_CACERT or the ca option');
  }
  let ca = o.ca ?? o.tls?.ca;
  if (ca === undefined && env.CONSUL_CACERT) {
    try {
      ca = readFileSync(env.CONSUL_CACERT);
    } catch (err) {
      p.add(`CONSUL_CACERT ${JSON.stringify(env.CONSUL_CACERT)} cannot be read: ${errorText(err)}`);
    }
  }
  const requestTimeoutMs = o.requestTimeoutMs ?? 5000;
  p.check(Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0, `requestTimeoutMs must be a positive number, got ${String(o.requestTimeoutMs)}`);
  const token = o.token ?? (env.CONSUL_HTTP_TOKEN || undefined);
  const cert = o.tls?.cert;
  const key = o.tls?.key;
  p.check((cert === undefined) === (key === undefined), 'tls.cert and tls.key must be given together');
  if ((ca !== undefined || cert !== undefined) && !secure) p.add('tls material given but the Consul address is plain http: use https:// or secure: true');
  return { host, port, secure, ca, cert, key, token, requestTimeoutMs };
}

/** Go duration text for whole milliseconds ('0s', '15s', '1500ms'). */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.ceil(ms)}ms`;
}
