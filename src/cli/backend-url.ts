import { UsageError } from './usage-error.js';

/**
 * `--backend` values, parsed without touching the network (pure, tested on its own):
 *
 *   etcd://host[:2379][,host[:port]…]   etcd over http; `etcds://` (or `etcd+https://`) for TLS
 *   consul[://host[:8500]]              Consul agent over http; `consuls://` / `consul+https://` for TLS;
 *                                       bare `consul` uses $CONSUL_HTTP_ADDR, else 127.0.0.1:8500
 *   kubernetes[:lease|endpoints|configmap]  the API server from in-cluster config or kubeconfig; `k8s` is an alias
 *   memory                              an in-process store (demos and tests only: nothing is shared between processes)
 */
export type BackendSpec =
  | { kind: 'etcd'; endpoints: string[] }
  | { kind: 'consul'; url: string }
  | { kind: 'kubernetes'; lockKind: 'Lease' | 'Endpoints' | 'ConfigMap' }
  | { kind: 'memory' };

export const BACKEND_HINT = 'use etcd://host:port[,host:port], consul://host:port, kubernetes[:lease|endpoints|configmap] or memory';

const K8S_KINDS = { lease: 'Lease', endpoints: 'Endpoints', configmap: 'ConfigMap' } as const;

export function parseBackend(value: string, env: Readonly<Record<string, string | undefined>> = {}): BackendSpec {
  const v = value.trim();
  if (v === '') throw new UsageError(`--backend is empty: ${BACKEND_HINT}`);
  if (v === 'memory') return { kind: 'memory' };
  const k8s = /^(?:kubernetes|k8s)(?::(.*))?$/i.exec(v);
  if (k8s) {
    const kindName = (k8s[1] ?? 'lease').toLowerCase();
    const lockKind = (K8S_KINDS as Record<string, 'Lease' | 'Endpoints' | 'ConfigMap'>)[kindName];
    if (!lockKind) throw new UsageError(`unknown Kubernetes lock kind "${k8s[1]}" in --backend ${v}: use kubernetes:lease, kubernetes:endpoints or kubernetes:configmap`);
    return { kind: 'kubernetes', lockKind };
  }
  if (v === 'consul') {
    const addr = env.CONSUL_HTTP_ADDR?.trim();
    if (!addr) return { kind: 'consul', url: 'http://127.0.0.1:8500' };
    const scheme = env.CONSUL_HTTP_SSL === 'true' ? 'https' : 'http';
    return { kind: 'consul', url: consulUrl(/^[a-z]+:\/\//i.test(addr) ? addr : `${scheme}://${addr}`, v) };
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(v);
  if (!m) throw new UsageError(`unknown backend "${v}": ${BACKEND_HINT}`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case 'etcd':
    case 'etcd+http':
    case 'etcds':
    case 'etcd+https': {
      const proto = scheme === 'etcds' || scheme === 'etcd+https' ? 'https' : 'http';
      const hosts = rest.replace(/\/+$/, '').split(',');
      return { kind: 'etcd', endpoints: hosts.map((h) => hostUrl(proto, h, 2379, v)) };
    }
    case 'consul':
    case 'consul+http':
    case 'consuls':
    case 'consul+https': {
      const proto = scheme === 'consuls' || scheme === 'consul+https' ? 'https' : 'http';
      const host = rest.replace(/\/+$/, '');
      if (host.includes(',')) throw new UsageError(`--backend ${v}: Consul takes one agent address (the local agent), not a list`);
      return { kind: 'consul', url: hostUrl(proto, host, 8500, v) };
    }
    case 'http':
    case 'https':
      throw new UsageError(`--backend ${v} does not say which backend: write etcd://…, etcds://…, consul://… or consuls://…`);
    default:
      throw new UsageError(`unknown backend scheme "${scheme}://": ${BACKEND_HINT}`);
  }
}

/** Adds more etcd endpoints given with --endpoint (full URLs or host:port). */
export function withEndpoints(spec: BackendSpec, extra: readonly string[]): BackendSpec {
  if (extra.length === 0) return spec;
  if (spec.kind !== 'etcd') throw new UsageError(`--endpoint only applies to etcd (several members); this backend is ${spec.kind}`);
  const defaultProto = new URL(spec.endpoints[0]!).protocol.slice(0, -1);
  const more = extra.map((e) => {
    const m = /^(https?):\/\/(.*)$/i.exec(e.trim());
    return m ? hostUrl(m[1]!.toLowerCase(), m[2]!.replace(/\/+$/, ''), 2379, e) : hostUrl(defaultProto, e, 2379, e);
  });
  return { kind: 'etcd', endpoints: [...new Set([...spec.endpoints, ...more])] };
}

function consulUrl(addr: string, original: string): string {
  const m = /^(https?):\/\/(.*)$/i.exec(addr);
  if (!m) throw new UsageError(`CONSUL_HTTP_ADDR "${addr}" (used by --backend ${original}) must be host:port or http(s)://host:port`);
  return hostUrl(m[1]!.toLowerCase(), m[2]!.replace(/\/+$/, ''), 8500, original);
}

/** `host`, `host:port`, `[v6]` or `[v6]:port` → `proto://host:port`. Credentials in the URL are refused (they end up in `ps`). */
function hostUrl(proto: string, hostPort: string, defaultPort: number, original: string): string {
  const hp = hostPort.trim();
  if (hp === '') throw new UsageError(`--backend ${original}: missing host (e.g. 127.0.0.1:${defaultPort})`);
  if (hp.includes('@')) throw new UsageError(`--backend ${original}: credentials do not belong in the URL (they show in ps); use --user/--password or --token, or their environment variables`);
  if (/[/?#]/.test(hp)) throw new UsageError(`--backend ${original}: "${hp}" is not host:port (no path or query)`);
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d*))?$/.exec(hp);
  if (!m) throw new UsageError(`--backend ${original}: "${hp}" is not host:port (IPv6 goes in brackets: [::1]:${defaultPort})`);
  const host = m[1]!;
  if (m[2] === '') throw new UsageError(`--backend ${original}: "${hp}" has an empty port`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--backend ${original}: port ${m[2]} is out of range (1-65535)`);
  return `${proto}://${host.toLowerCase()}:${port}`;
}
