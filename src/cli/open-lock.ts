import { readFile } from 'node:fs/promises';
import type { LeaderLock } from '../core/lock.js';
import { BackendUnavailableError } from '../core/errors.js';
import type { Connection } from './args.js';
import type { SwitchSource } from '../http/index.js';
import { UsageError } from './usage-error.js';

// Specifiers in variables: TypeScript does not resolve them, so the CLI compiles (and the other
// backends keep working) whatever state one backend's module is in. Relative to this file in src/ and dist/.
const MEMORY = '../backends/memory/index.js';
const ETCD = '../backends/etcd/index.js';
const CONSUL = '../backends/consul/index.js';
const KUBERNETES = '../backends/kubernetes/index.js';

type LockClass = new (options: Record<string, unknown>) => LeaderLock;
interface KubernetesModule {
  KubernetesLock: LockClass;
  KubeClient: (new (options?: Record<string, unknown>) => unknown) & { fromKubeconfig(path?: string, context?: string, options?: Record<string, unknown>): Promise<unknown> };
  endpointsResolver(): unknown;
}

/**
 * Builds the lock a command line asks for. Each backend's entry point is imported dynamically, so a
 * backend that fails to load (not built, a missing optional dependency) breaks only itself.
 */
export interface OpenedLock {
  lock: LeaderLock;
  /** The Kubernetes client, whose 'switch' events feed leaderlock_resolver_switches_total. */
  client?: SwitchSource;
  /** Closes what the CLI created besides the lock (the Kubernetes client), after `lock.close()`. */
  dispose?: () => Promise<void>;
}

export async function openLock(c: Connection, env: Readonly<Record<string, string | undefined>> = process.env): Promise<OpenedLock> {
  const b = c.backend;
  switch (b.kind) {
    case 'memory': {
      const m = await load<typeof import('../backends/memory/index.js')>('memory', MEMORY);
      return { lock: new m.MemoryLock(new m.MemoryStore(), { key: c.key, ...ttl(c) }) };
    }
    case 'etcd': {
      const m = await load<{ EtcdLock: LockClass }>('etcd', ETCD);
      const tls = await readTls(c);
      const options: Record<string, unknown> = { endpoints: b.endpoints, key: c.key, ...ttl(c), ...timeout(c) };
      if (tls) options.tls = tls;
      if (c.user !== undefined) Object.assign(options, { username: c.user, password: c.password ?? '' });
      return { lock: new m.EtcdLock(options) };
    }
    case 'consul': {
      const m = await load<{ ConsulLock: LockClass }>('consul', CONSUL);
      const tls = await readTls(c);
      const options: Record<string, unknown> = { key: c.key, ...ttl(c), ...timeout(c), address: b.url, secure: b.url.startsWith('https:'), env };
      if (tls) options.tls = tls;
      if (c.token !== undefined) options.token = c.token;
      return { lock: new m.ConsulLock(options) };
    }
    case 'kubernetes': {
      const m = await load<KubernetesModule>('kubernetes', KUBERNETES);
      let client: unknown;
      let name = c.key;
      let namespace = c.namespace;
      if (name.includes('/')) {
        const [ns, n, ...rest] = name.split('/');
        if (!ns || !n || rest.length > 0) throw new UsageError(`--key ${c.key}: for Kubernetes give the object name or namespace/name`);
        if (namespace !== undefined && namespace !== ns) throw new UsageError(`--key ${c.key} names namespace ${ns} but --namespace is ${namespace}`);
        [namespace, name] = [ns, n];
      }
      const clientOptions = c.bypassApiService ? { resolver: m.endpointsResolver() } : {};
      if (c.kubeconfig !== undefined || c.context !== undefined) client = await m.KubeClient.fromKubeconfig(c.kubeconfig ?? env.KUBECONFIG, c.context, clientOptions);
      else client = new m.KubeClient(clientOptions);
      const options: Record<string, unknown> = { client, kind: b.lockKind, name, ...ttl(c), ...timeout(c) };
      if (c.roleLabels) options.roleLabels = true;
      if (namespace !== undefined) options.namespace = namespace;
      const k = client as SwitchSource & { close?: () => Promise<void> };
      return { lock: new m.KubernetesLock(options), client: k, dispose: async () => k.close?.() };
    }
  }
}

function ttl(c: Connection): { ttlMs?: number } {
  return c.ttlMs === undefined ? {} : { ttlMs: c.ttlMs };
}

function timeout(c: Connection): { requestTimeoutMs?: number } {
  return c.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: c.requestTimeoutMs };
}

async function load<T>(name: string, specifier: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new BackendUnavailableError(`the ${name} backend could not be loaded (${detail}); the other backends still work`, { backend: 'cli', cause: err });
  }
}

async function readTls(c: Connection): Promise<{ ca?: string; cert?: string; key?: string } | undefined> {
  const out: { ca?: string; cert?: string; key?: string } = {};
  const files = [['ca', c.tls.caFile, '--cacert'], ['cert', c.tls.certFile, '--cert'], ['key', c.tls.keyFile, '--cert-key']] as const;
  for (const [field, path, flag] of files) {
    if (path === undefined) continue;
    try {
      out[field] = await readFile(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${flag} ${path}: ${(err as { code?: string }).code ?? String(err)}`);
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
