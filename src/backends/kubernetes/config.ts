import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import type { Clock } from '../../core/clock.js';
import { ConfigError } from '../../core/errors.js';
import { Problems, checkDurations } from '../../core/options.js';
import { checkToken, execTokenSource, fileTokenSource, staticTokenSource, type ExecCredentialConfig, type TokenSource } from './credentials.js';

/**
 * Where the API server is and how to authenticate: explicit options, else the in-cluster service
 * account (`KUBERNETES_SERVICE_HOST`), else a kubeconfig (`$KUBECONFIG` or `~/.kube/config`).
 */
export interface KubeConnectionConfig {
  /** The API server URL as configured (the `kubernetes` service in-cluster). */
  server: URL;
  /**
   * The name the server certificate must carry, whatever address we dial (a bare API server IP
   * included): `kubernetes.default.svc` in-cluster, the kubeconfig server host (or its
   * `tls-server-name`) otherwise. Never disabled.
   */
  servername: string;
  /** PEM CA bundle; undefined = Node's default trust store. */
  ca?: string;
  /** PEM client certificate and key (kubeconfig `client-certificate(-data)`). */
  cert?: string;
  key?: string;
  tokenSource: TokenSource;
  /** The default namespace: in-cluster namespace file, kubeconfig context namespace, else 'default'. */
  namespace: string;
  source: 'explicit' | 'in-cluster' | 'kubeconfig';
}

export const IN_CLUSTER_SERVERNAME = 'kubernetes.default.svc';
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Joins a host (IPv6 bracketed) and port into an https URL. */
export function httpsUrl(host: string, port: string | number): URL {
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return new URL(`https://${h}:${port}`);
}

/** A URL's host without IPv6 brackets. */
export function bareHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export interface InClusterOptions {
  env?: NodeJS.ProcessEnv;
  /** Directory with `token`, `ca.crt`, `namespace`. Default the standard service-account mount. */
  serviceAccountDir?: string;
  clock?: Clock;
}

/** True when the process looks like it runs in a pod (the service env vars are set). */
export function isInCluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env.KUBERNETES_SERVICE_HOST && !!env.KUBERNETES_SERVICE_PORT;
}

/** The in-cluster configuration: service env vars, projected token (re-read every 60 s), CA and namespace files. */
export function inClusterConfig(options: InClusterOptions = {}): KubeConnectionConfig {
  const env = options.env ?? process.env;
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const p = new Problems();
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  p.check(!!host, 'KUBERNETES_SERVICE_HOST is not set (not running in a pod?)');
  p.check(!!port && /^\d+$/.test(port), `KUBERNETES_SERVICE_PORT must be a port number, got ${JSON.stringify(port)}`);
  const tokenPath = join(dir, 'token');
  p.check(existsSync(tokenPath), `service-account token ${tokenPath} does not exist`);
  p.throwIfAny('kubernetes');
  const caPath = join(dir, 'ca.crt');
  const nsPath = join(dir, 'namespace');
  return {
    server: httpsUrl(host!, port!),
    servername: IN_CLUSTER_SERVERNAME,
    ...(existsSync(caPath) ? { ca: readFileSync(caPath, 'utf8') } : {}),
    tokenSource: fileTokenSource(tokenPath, options.clock ? { clock: options.clock } : {}),
    namespace: existsSync(nsPath) ? readFileSync(nsPath, 'utf8').trim() || 'default' : 'default',
    source: 'in-cluster',
  };
}

interface NamedEntry<T> {
  name: string;
  value: T;
}
interface KubeconfigCluster {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}
interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  exec?: ExecCredentialConfig;
  username?: string;
  'auth-provider'?: unknown;
}
interface KubeconfigContext {
  cluster?: string;
  user?: string;
  namespace?: string;
}
interface KubeconfigFile {
  dir: string;
  'current-context'?: string;
  clusters: NamedEntry<KubeconfigCluster>[];
  users: NamedEntry<KubeconfigUser>[];
  contexts: NamedEntry<KubeconfigContext>[];
}

/** The kubeconfig paths in effect: `$KUBECONFIG` (a path list) or `~/.kube/config`. */
export function kubeconfigPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = env.KUBECONFIG?.split(delimiter).filter(Boolean) ?? [];
  return list.length > 0 ? list : [join(homedir(), '.kube', 'config')];
}

function readKubeconfigFile(path: string): KubeconfigFile {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read kubeconfig ${path}: ${(err as Error).message}`, { backend: 'kubernetes' });
  }
  const d = (doc ?? {}) as Record<string, unknown>;
  const named = <T>(key: string, inner: string): NamedEntry<T>[] =>
    Array.isArray(d[key])
      ? (d[key] as Record<string, unknown>[]).filter((e) => e && typeof e.name === 'string').map((e) => ({ name: e.name as string, value: (e[inner] ?? {}) as T }))
      : [];
  return {
    dir: dirname(resolvePath(path)),
    ...(typeof d['current-context'] === 'string' && d['current-context'] ? { 'current-context': d['current-context'] } : {}),
    clusters: named<KubeconfigCluster>('clusters', 'cluster'),
    users: named<KubeconfigUser>('users', 'user'),
    contexts: named<KubeconfigContext>('contexts', 'context'),
  };
}

export interface KubeconfigOptions {
  /** One path or a list merged as kubectl does (first definition of a name wins). Default `kubeconfigPaths()`. */
  path?: string | readonly string[];
  /** Context name; default the `current-context`. */
  context?: string;
  clock?: Clock;
}

/** Loads a kubeconfig: current (or named) context, cluster CA, token / token file / client cert / exec plugin. */
export function kubeconfigConfig(options: KubeconfigOptions = {}): KubeConnectionConfig {
  const paths = options.path === undefined ? kubeconfigPaths() : typeof options.path === 'string' ? [options.path] : [...options.path];
  const files = paths.filter((f) => existsSync(f)).map(readKubeconfigFile);
  if (files.length === 0) {
    const where =
      options.path === undefined && !isInCluster()
        ? ` and not running in a pod (KUBERNETES_SERVICE_HOST is unset): give a kubeconfig path (kubeconfig option, --kubeconfig on the command line), set $KUBECONFIG, or run in-cluster with a service account`
        : options.path === undefined ? '' : ': check the path';
    throw new ConfigError(`no kubeconfig found (looked at ${paths.join(', ')})${where}`, { backend: 'kubernetes' });
  }
  const find = <T>(pick: (f: KubeconfigFile) => NamedEntry<T>[], name: string | undefined): { value: T; dir: string } | undefined => {
    for (const f of files) {
      const hit = pick(f).find((e) => e.name === name);
      if (hit) return { value: hit.value, dir: f.dir };
    }
    return undefined;
  };
  const p = new Problems();
  const contextName = options.context ?? files.find((f) => f['current-context'])?.['current-context'];
  const context = find((f) => f.contexts, contextName);
  if (!context) {
    throw new ConfigError(contextName ? `kubeconfig context ${JSON.stringify(contextName)} not found` : 'kubeconfig has no current-context', { backend: 'kubernetes' });
  }
  const cluster = find((f) => f.clusters, context.value.cluster);
  const user = find((f) => f.users, context.value.user);
  p.check(!!cluster, `kubeconfig cluster ${JSON.stringify(context.value.cluster)} not found`);
  const c = cluster?.value ?? {};
  const u = user?.value ?? {};
  const rel = (file: string, dir: string): string => (isAbsolute(file) ? file : join(dir, file));
  let server: URL | undefined;
  try {
    server = c.server ? new URL(c.server) : undefined;
  } catch {
    /* reported below */
  }
  p.check(!!server, `kubeconfig cluster server ${JSON.stringify(c.server)} is not a URL`);
  p.check(!server || server.protocol === 'https:', `kubeconfig server must be https, got ${server?.protocol}`);
  p.check(!c['insecure-skip-tls-verify'], 'insecure-skip-tls-verify is not supported: leaderlock always verifies the API server certificate; set certificate-authority instead');
  p.check(u.username === undefined, 'basic auth (username/password) is not supported, use a token or client certificate instead');
  p.check(u['auth-provider'] === undefined, 'auth-provider is not supported, use an exec credential plugin instead');
  p.check(!!u.exec?.command || u.exec === undefined, 'exec credential plugin has no command');
  checkToken(p, u.token, 'kubeconfig user token');
  p.throwIfAny('kubernetes');

  const pem = (data: string | undefined, file: string | undefined, dir: string): string | undefined =>
    data ? Buffer.from(data, 'base64').toString('utf8') : file ? readFileSync(rel(file, dir), 'utf8') : undefined;
  const clusterDir = cluster!.dir;
  const userDir = user?.dir ?? clusterDir;
  const ca = pem(c['certificate-authority-data'], c['certificate-authority'], clusterDir);
  const cert = pem(u['client-certificate-data'], u['client-certificate'], userDir);
  const key = pem(u['client-key-data'], u['client-key'], userDir);
  const clockOpt = options.clock ? { clock: options.clock } : {};
  const tokenSource = u.token
    ? staticTokenSource(u.token)
    : u.tokenFile
      ? fileTokenSource(rel(u.tokenFile, userDir), clockOpt)
      : u.exec
        ? execTokenSource({ ...u.exec, cwd: userDir }, clockOpt)
        : staticTokenSource(undefined);
  return {
    server: server!,
    servername: c['tls-server-name'] ?? bareHost(server!),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    tokenSource,
    namespace: context.value.namespace || 'default',
    source: 'kubeconfig',
  };
}

/** Explicit connection options (no in-cluster or kubeconfig lookup). */
export interface ExplicitConnectionOptions {
  /** API server URL. Given to `KubeClient`, only explicit options are used (no in-cluster or kubeconfig lookup). */
  server: string | URL;
  /** Name the server certificate must carry. Default: the server URL's host. */
  servername?: string;
  /** PEM CA bundle. */
  ca?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  /** Bearer token, token file (re-read every 60 s and on 401), or your own source: at most one. */
  token?: string;
  tokenFile?: string;
  tokenSource?: TokenSource;
  /** Default namespace. Default 'default'. */
  namespace?: string;
  /** Checked here so every option problem is reported at once. */
  requestTimeoutMs?: number;
  clock?: Clock;
}

/** Connection settings from explicit options; every broken rule in one `ConfigError`. */
export function explicitConfig(options: ExplicitConnectionOptions): KubeConnectionConfig {
  const p = new Problems();
  checkDurations(p, options);
  let server: URL | undefined;
  try {
    server = new URL(options.server);
  } catch {
    p.add(`server must be a URL, got ${JSON.stringify(String(options.server))}`);
  }
  p.check(!server || server.protocol === 'https:', `server must be https, got ${server?.protocol}`);
  p.check(options.requestTimeoutMs === undefined || options.requestTimeoutMs > 0, `requestTimeoutMs must be > 0, got ${options.requestTimeoutMs}`);
  p.check([options.token, options.tokenFile, options.tokenSource].filter((x) => x !== undefined).length <= 1, 'give at most one of token, tokenFile, tokenSource');
  checkToken(p, options.token);
  p.throwIfAny('kubernetes');
  const host = server!.hostname.replace(/^\[|\]$/g, '');
  const clockOpt = options.clock ? { clock: options.clock } : {};
  return {
    server: server!,
    servername: options.servername ?? host,
    ...(options.ca ? { ca: options.ca } : {}),
    ...(options.cert ? { cert: options.cert } : {}),
    ...(options.key ? { key: options.key } : {}),
    tokenSource: options.tokenSource ?? (options.tokenFile ? fileTokenSource(options.tokenFile, clockOpt) : staticTokenSource(options.token)),
    namespace: options.namespace ?? 'default',
    source: 'explicit',
  };
}
