import { hostname } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseBackend, withEndpoints, BACKEND_HINT, type BackendSpec } from './backend-url.js';
import { parseDuration } from './duration.js';
import { UsageError } from './usage-error.js';

/** How to reach the lock: everything `status`, `watch` and `run` share. */
export interface Connection {
  backend: BackendSpec;
  /** etcd/Consul key, Kubernetes object name, memory key. */
  key: string;
  ttlMs: number | undefined;
  /** Files, read when the lock is opened. */
  tls: { caFile?: string; certFile?: string; keyFile?: string };
  user?: string;
  password?: string;
  token?: string;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  /** Kubernetes: label this pod role=primary|replica (needs POD_NAME from the downward API). */
  roleLabels?: boolean;
  /** Kubernetes: reach the API servers directly (EndpointSlices of default/kubernetes), not through kube-proxy. */
  bypassApiService?: boolean;
  requestTimeoutMs?: number;
}

export interface RunArgs extends Connection {
  identity: string;
  graceMs: number;
  renewDeadlineMs: number | undefined;
  retryPeriodMs: number | undefined;
  once: boolean;
  quiet: boolean;
  /** Serve the health endpoints and /metrics here. */
  listen?: { host: string; port: number };
  /** Published with every term (the elector's `metadata` option). */
  metadata?: string;
  command: string;
  commandArgs: string[];
}

export interface ReadArgs extends Connection {
  json: boolean;
}

export interface ExplainArgs {
  ttlMs: number;
  renewDeadlineMs: number | undefined;
  retryPeriodMs: number | undefined;
  drift: number | undefined;
  json: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;
type Options = NonNullable<ParseArgsConfig['options']>;

const CONNECTION: Options = {
  backend: { type: 'string', short: 'b' },
  key: { type: 'string', short: 'k' },
  ttl: { type: 'string' },
  endpoint: { type: 'string', multiple: true },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  'cert-key': { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'request-timeout': { type: 'string' },
  'role-labels': { type: 'boolean' },
  'bypass-api-service': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const RUN: Options = {
  ...CONNECTION,
  identity: { type: 'string', short: 'i' },
  metadata: { type: 'string' },
  grace: { type: 'string' },
  'renew-deadline': { type: 'string' },
  'retry-period': { type: 'string' },
  once: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  listen: { type: 'string', short: 'l' },
};

const READ: Options = { ...CONNECTION, json: { type: 'boolean' } };

const EXPLAIN: Options = {
  ttl: { type: 'string' },
  'renew-deadline': { type: 'string' },
  'retry-period': { type: 'string' },
  drift: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

type Values = Record<string, string | boolean | string[] | undefined>;

const DURATION_FLAGS: ReadonlySet<string> = new Set(['--ttl', '--grace', '--renew-deadline', '--retry-period', '--request-timeout']);

/** parseArgs with its errors turned into one-line usage errors. `undefined` means --help was asked. */
function parse(command: string, argv: readonly string[], options: Options, allowPositionals = false): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: [...argv], options, strict: true, allowPositionals });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const text = err instanceof Error ? err.message.split('. ')[0]!.replace(/\.$/, '') : String(err);
    // parseArgs refuses a value that starts with '-' ("argument is ambiguous"): say what to write.
    const ambiguous = /^option '(--[\w-]+)' argument is ambiguous/i.exec(text);
    if (ambiguous) {
      const flag = ambiguous[1]!;
      const value = argv[argv.indexOf(flag) + 1] ?? '';
      if (DURATION_FLAGS.has(flag)) throw new UsageError(`${flag} must be more than 0, got ${value} (see leaderlock ${command} --help)`);
      throw new UsageError(`${flag} ${value}: a value starting with '-' looks like a flag; write ${flag}=${value} if you mean it (see leaderlock ${command} --help)`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && command === 'run') {
      throw new UsageError(`${text}: put the command to run after --, e.g. leaderlock run --backend … --key K -- ./daemon --flag`);
    }
    throw new UsageError(`${text.charAt(0).toLowerCase()}${text.slice(1)} (see leaderlock ${command} --help)`);
  }
}

export function wantsHelp(argv: readonly string[]): boolean {
  const flags = argv.indexOf('--') === -1 ? argv : argv.slice(0, argv.indexOf('--'));
  return flags.includes('--help') || flags.includes('-h');
}

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

function connection(command: string, v: Values, env: Env): Connection {
  const backendText = str(v, 'backend') ?? env.LEADERLOCK_BACKEND;
  if (backendText === undefined) throw new UsageError(`missing --backend: ${BACKEND_HINT}`);
  const backend = withEndpoints(parseBackend(backendText, env), (v.endpoint as string[] | undefined) ?? []);
  const key = str(v, 'key') ?? env.LEADERLOCK_KEY;
  if (key === undefined || key.trim() === '') throw new UsageError(`missing --key: the leader key (etcd/Consul key, Kubernetes object name), e.g. --key /service/demo/leader (see leaderlock ${command} --help)`);
  const ttl = str(v, 'ttl');
  const timeout = str(v, 'request-timeout');
  let user = str(v, 'user');
  let password = str(v, 'password') ?? env.LEADERLOCK_PASSWORD;
  // etcdctl's --user name:password form.
  if (user?.includes(':')) [user, password] = [user.slice(0, user.indexOf(':')), user.slice(user.indexOf(':') + 1)];
  if (password !== undefined && user === undefined) throw new UsageError('--password needs --user');
  const k8sOnly = ['kubeconfig', 'context', 'namespace', 'role-labels', 'bypass-api-service'].filter((f) => v[f] !== undefined);
  if (k8sOnly.length > 0 && backend.kind !== 'kubernetes') throw new UsageError(`--${k8sOnly[0]} only applies to --backend kubernetes`);
  if (user !== undefined && backend.kind !== 'etcd') throw new UsageError('--user/--password apply to etcd; Consul uses --token (or CONSUL_HTTP_TOKEN)');
  const token = str(v, 'token') ?? (backend.kind === 'consul' ? env.CONSUL_HTTP_TOKEN : undefined);
  if (str(v, 'token') !== undefined && backend.kind !== 'consul') throw new UsageError('--token applies to Consul; etcd uses --user/--password, Kubernetes its kubeconfig or service account');
  const tls = { caFile: str(v, 'cacert'), certFile: str(v, 'cert'), keyFile: str(v, 'cert-key') };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) throw new UsageError('--cert and --cert-key go together (client certificate and its private key)');
  const hasTls = Object.values(tls).some((x) => x !== undefined);
  if (hasTls && (backend.kind === 'kubernetes' || backend.kind === 'memory')) {
    throw new UsageError(`--cacert/--cert/--cert-key do not apply to ${backend.kind}${backend.kind === 'kubernetes' ? ' (TLS comes from the kubeconfig or the service account)' : ''}`);
  }
  if (hasTls && backend.kind === 'etcd' && backend.endpoints.some((e) => e.startsWith('http:'))) {
    throw new UsageError('TLS flags given but the etcd endpoints are plain http: use etcds://host:port');
  }
  if (hasTls && backend.kind === 'consul' && backend.url.startsWith('http:')) {
    throw new UsageError('TLS flags given but the Consul address is plain http: use consuls://host:port');
  }
  const c: Connection = {
    backend,
    key: key.trim(),
    ttlMs: ttl === undefined ? undefined : parseDuration('ttl', ttl),
    tls: Object.fromEntries(Object.entries(tls).filter(([, x]) => x !== undefined)),
  };
  if (user !== undefined) c.user = user;
  if (password !== undefined) c.password = password;
  if (token !== undefined && token !== '') c.token = token;
  for (const f of ['kubeconfig', 'context', 'namespace'] as const) {
    const x = str(v, f);
    if (x !== undefined) c[f] = x;
  }
  if (v['role-labels'] === true) c.roleLabels = true;
  if (v['bypass-api-service'] === true) c.bypassApiService = true;
  if (timeout !== undefined) c.requestTimeoutMs = parseDuration('request-timeout', timeout);
  return c;
}

export function parseRunArgs(argv: readonly string[], env: Env = {}): RunArgs {
  const dd = argv.indexOf('--');
  const flags = dd === -1 ? argv : argv.slice(0, dd);
  const command = dd === -1 ? [] : argv.slice(dd + 1);
  const { values: v } = parse('run', flags, RUN);
  const conn = connection('run', v, env);
  if (command.length === 0 || command[0] === '') throw new UsageError('missing the command to run: leaderlock run --backend … --key K -- <command> [args…]');
  const identity = str(v, 'identity') ?? env.LEADERLOCK_IDENTITY ?? `${hostname()}-${process.pid}`;
  if (identity.trim() === '' || /[\u0000-\u001f\u007f]/.test(identity)) throw new UsageError(`--identity must be non-blank without control characters, got ${JSON.stringify(identity)}`);
  const grace = str(v, 'grace');
  const rd = str(v, 'renew-deadline');
  const rp = str(v, 'retry-period');
  const listen = str(v, 'listen');
  const run: RunArgs = {
    ...conn,
    identity,
    graceMs: grace === undefined ? 2000 : parseDuration('grace', grace),
    renewDeadlineMs: rd === undefined ? undefined : parseDuration('renew-deadline', rd),
    retryPeriodMs: rp === undefined ? undefined : parseDuration('retry-period', rp),
    once: v.once === true,
    quiet: v.quiet === true,
    command: command[0]!,
    commandArgs: command.slice(1),
  };
  if (listen !== undefined) run.listen = parseListen(listen);
  const metadata = str(v, 'metadata');
  if (metadata !== undefined) run.metadata = metadata;
  return run;
}

/** `host:port`, `[v6]:port` or `:port` (every interface, for a pod's probes). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*):(\d+)$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--listen ${value} must be host:port or :port, e.g. 127.0.0.1:8008 or :8008 (every interface, for Kubernetes probes)`);
  }
  const host = m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[|\]$/g, '');
  return { host, port };
}

export function parseReadArgs(command: 'status' | 'watch', argv: readonly string[], env: Env = {}): ReadArgs {
  const { values: v, positionals } = parse(command, argv, READ, true);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (see leaderlock ${command} --help)`);
  return { ...connection(command, v, env), json: v.json === true };
}

export function parseExplainArgs(argv: readonly string[]): ExplainArgs {
  const { values: v, positionals } = parse('explain', argv, EXPLAIN, true);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (see leaderlock explain --help)`);
  const ttl = str(v, 'ttl');
  const rd = str(v, 'renew-deadline');
  const rp = str(v, 'retry-period');
  const drift = str(v, 'drift');
  let driftValue: number | undefined;
  if (drift !== undefined) {
    driftValue = Number(drift.endsWith('%') ? Number(drift.slice(0, -1)) / 100 : drift);
    if (drift.trim() === '' || !Number.isFinite(driftValue) || driftValue < 0 || driftValue >= 0.5) {
      throw new UsageError(`--drift ${drift} must be a fraction in [0, 0.5), e.g. 0.01 or 1%`);
    }
  }
  return {
    ttlMs: ttl === undefined ? 15_000 : parseDuration('ttl', ttl),
    renewDeadlineMs: rd === undefined ? undefined : parseDuration('renew-deadline', rd),
    retryPeriodMs: rp === undefined ? undefined : parseDuration('retry-period', rp),
    drift: driftValue,
    json: v.json === true,
  };
}
