/**
 * A real Kubernetes control plane for the second test tier: one etcd 3.6 and three kube-apiservers
 * sharing it, RBAC on, static bearer tokens, TLS from a CA generated here, the lease endpoint
 * reconciler (so `default/kubernetes` lists all three and drops a dead one by itself), and a
 * service address on 127.0.0.1 that forwards each new connection to one API server like kube-proxy.
 *
 * Why a network namespace: a real API server refuses loopback addresses in Endpoints and
 * EndpointSlices (`may not be in the loopback range`), so API servers advertised on 127.0.0.2–4
 * would never appear in `default/kubernetes`. The three servers (and their etcd) run in a network
 * namespace this harness creates, on 10.213.N.2–4 behind a veth pair whose other end is in this
 * namespace: the project's own test hosts on this machine. Nothing is routed anywhere else, the
 * ClusterIP range is never dialled (every client is given the service address or these hosts),
 * and the namespace, its processes and the temp dir are removed in `stop()` and at exit.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../../src/backends/kubernetes/client.js';
import { generateServerCertificates } from '../../../src/testing/certs.js';
import { ServiceProxy } from '../../../src/testing/fake-kube/service-proxy.js';
import { realBin, realVersion } from './bins.js';
import { atExit, sh, startProc, waitFor, type Proc } from './procs.js';
import { raw } from './raw.js';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const SERVERNAME = 'kubernetes.default.svc';
const PORT = 6443;

export interface ApiServer {
  readonly index: number;
  readonly ip: string;
  readonly url: string;
  proc: Proc;
  /** kill -9, SIGSTOP, SIGCONT. */
  signal(sig: NodeJS.Signals): Promise<void>;
  /** Starts a killed server again (same address, flags and log) and waits for its /readyz (bench/kube-real.ts kills it repeatedly). */
  restart(): Promise<void>;
}

export interface KubeCluster {
  readonly version: string;
  readonly ca: string;
  /** The unprivileged test user's token (RBAC-bound below) and its file. */
  readonly token: string;
  readonly tokenFile: string;
  /** A user RBAC lets touch leases only (no endpoints, no endpointslices in default). */
  readonly leasesOnlyToken: string;
  /** system:masters, for setup only. */
  readonly adminToken: string;
  readonly caFile: string;
  /** https://127.0.0.1:<port>: the kube-proxy-like service address. */
  readonly serviceUrl: string;
  readonly apiServers: readonly ApiServer[];
  readonly proxy: ServiceProxy;
  readonly dir: string;
  /** KubeClient options for the test user through the service address. */
  clientOptions(namespace?: string): { server: string; servername: string; ca: string; token: string; namespace: string };
  /** A kubeconfig file for kubectl (test user, service address). */
  readonly kubeconfig: string;
  /** Runs kubectl with the test user's kubeconfig (async: the service proxy lives in this process). */
  kubectl(args: string[]): Promise<string>;
  admin(): KubeClient;
  stop(): Promise<void>;
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('real-server tier: the kube-apiservers run in a network namespace (ip netns), which needs root');
  }
}

export interface KubeClusterOptions {
  /**
   * Extra kube-apiserver flags, e.g. a feature gate one test file needs
   * (interop-client-go.test.ts: CoordinatedLeaderElection, beta and off by default, so the server
   * keeps a Lease's `strategy`/`preferredHolder`).
   */
  apiServerFlags?: readonly string[];
}

export async function startKubeCluster(options: KubeClusterOptions = {}): Promise<KubeCluster> {
  requireRoot();
  const apiserverBin = realBin('kube-apiserver');
  const kubectlBin = realBin('kubectl');
  const etcdBin = realBin('etcd');
  const version = realVersion('kube-apiserver');
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'leaderlock-kube-'));
  const n = 1 + (process.pid % 250);
  const ns = `llk${process.pid}`;
  const hostVeth = `llh${process.pid}`.slice(0, 15);
  const subnet = `10.213.${n}`;
  const procs: Proc[] = [];
  let proxy: ServiceProxy | undefined;
  const removeNs = (): void => {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not there */
    }
  };
  const dropExitHook = atExit(() => {
    removeNs();
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async (): Promise<void> => {
    await proxy?.close();
    await Promise.allSettled(procs.map((p) => p.kill('SIGKILL')));
    removeNs();
    rmSync(dir, { recursive: true, force: true });
    dropExitHook();
  };

  try {
    // The namespace: lo up (its etcd listens there), a veth to this namespace, three addresses.
    removeNs();
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', hostVeth]);
    sh('ip', ['link', 'set', hostVeth, 'up']);
    for (const i of [2, 3, 4]) sh('ip', ['-n', ns, 'addr', 'add', `${subnet}.${i}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);

    // TLS, service-account keys, tokens.
    const certs = await generateServerCertificates({
      caName: 'leaderlock real-tier CA',
      serverName: 'kube-apiserver',
      dnsNames: ['kubernetes', 'kubernetes.default', SERVERNAME, 'kubernetes.default.svc.cluster.local', 'localhost'],
      ips: ['127.0.0.1', `${subnet}.2`, `${subnet}.3`, `${subnet}.4`],
      missingMessage: 'the real-server tier needs the selfsigned dev dependency (npm ci)',
    });
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, certs.ca);
    writeFileSync(join(dir, 'server.crt'), certs.cert);
    writeFileSync(join(dir, 'server.key'), certs.key, { mode: 0o600 });
    const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(join(dir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const rand = (): string => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
    const adminToken = `admin-${rand()}`;
    const token = `ll-${rand()}`;
    const leasesOnlyToken = `lo-${rand()}`;
    writeFileSync(
      join(dir, 'tokens.csv'),
      `${adminToken},leaderlock-admin,uid-admin,"system:masters"\n${token},leaderlock,uid-leaderlock,"leaderlock-tests"\n${leasesOnlyToken},leases-only,uid-leases-only,"leaderlock-leases-only"\n`,
      { mode: 0o600 },
    );
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token, { mode: 0o600 });

    // etcd for the API servers, on the namespace's own loopback.
    const etcd = startProc('etcd (kube)', 'ip', ['netns', 'exec', ns, etcdBin, `--data-dir=${join(dir, 'etcd')}`, '--listen-client-urls=http://127.0.0.1:2379', '--advertise-client-urls=http://127.0.0.1:2379', '--listen-peer-urls=http://127.0.0.1:2380', '--log-level=warn', '--quota-backend-bytes=1073741824'], {
      log: join(dir, 'etcd.log'),
    });
    procs.push(etcd);

    const apiServers: ApiServer[] = [];
    async function ready(s: ApiServer): Promise<void> {
      const target = { server: s.url, servername: SERVERNAME, ca: certs.ca, token: adminToken };
      await waitFor(`${s.proc.name} /readyz`, 180_000, async () => {
        if (!s.proc.running()) return true; // reported below
        return (await raw(target, 'GET', '/readyz', { timeoutMs: 2000 })).status === 200;
      }, () => `${s.proc.name} log tail:\n${s.proc.tail()}\netcd log tail:\n${etcd.tail(10)}`, 500);
      if (!s.proc.running()) throw new Error(`${s.proc.name} exited:\n${s.proc.tail()}`);
    }
    const startApi = (index: number): Proc => {
      const ip = `${subnet}.${index + 2}`;
      const p = startProc(`kube-apiserver ${ip}`, 'ip', [
        'netns', 'exec', ns, apiserverBin,
        '--etcd-servers=http://127.0.0.1:2379',
        `--bind-address=${ip}`,
        `--advertise-address=${ip}`,
        `--secure-port=${PORT}`,
        `--cert-dir=${join(dir, `cert-${index}`)}`,
        `--tls-cert-file=${join(dir, 'server.crt')}`,
        `--tls-private-key-file=${join(dir, 'server.key')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--anonymous-auth=false',
        `--service-account-issuer=https://${SERVERNAME}`,
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        // A ClusterIP range nothing here routes or dials; clients get the service address or the hosts above.
        '--service-cluster-ip-range=10.214.0.0/24',
        '--endpoint-reconciler-type=lease',
        '--profiling=false',
        '--enable-priority-and-fairness=false',
        '--disable-admission-plugins=ServiceAccount',
        ...(options.apiServerFlags ?? []),
        '--v=1',
      ], { log: join(dir, `apiserver-${index}.log`) });
      procs.push(p);
      return p;
    };
    for (const i of [0, 1, 2]) {
      const ip = `${subnet}.${i + 2}`;
      const server: ApiServer = {
        index: i,
        ip,
        url: `https://${ip}:${PORT}`,
        proc: startApi(i),
        async signal(sig) {
          if (sig === 'SIGKILL') await server.proc.kill('SIGKILL');
          else server.proc.child.kill(sig);
        },
        async restart() {
          if (server.proc.running()) throw new Error(`${server.proc.name} is still running`);
          server.proc = startApi(i);
          await ready(server);
        },
      };
      apiServers.push(server);
    }
    const serviceProxy = new ServiceProxy();
    proxy = serviceProxy;
    serviceProxy.setTargets(apiServers.map((s) => ({ ip: s.ip, port: PORT })));
    const servicePort = await serviceProxy.listen('127.0.0.1');
    const serviceUrl = `https://127.0.0.1:${servicePort}`;

    const adminClient = (server = serviceUrl): KubeClient => new KubeClient({ server, servername: SERVERNAME, ca: certs.ca, token: adminToken, namespace: 'default', requestTimeoutMs: 5000 });
    for (const s of apiServers) await ready(s);

    // RBAC for the test user: lock objects, role-label pods, and the API server list.
    const admin = adminClient();
    try {
      await createClusterRole(admin, 'leaderlock-tests', [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['*'] },
        { apiGroups: [''], resources: ['endpoints', 'configmaps', 'pods', 'services'], verbs: ['*'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      ]);
      await bindClusterRole(admin, 'leaderlock-tests', 'leaderlock-tests', rbacGroup('leaderlock-tests'));
      await createClusterRole(admin, 'leaderlock-leases-only', [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['*'] }]);
      await bindClusterRole(admin, 'leaderlock-leases-only', 'leaderlock-leases-only', rbacGroup('leaderlock-leases-only'));
      // The lease reconciler lists every live API server in default/kubernetes.
      await waitFor('default/kubernetes to list all three API servers', 60_000, async () => {
        const res = await admin.request<{ subsets?: { addresses?: { ip: string }[] }[] }>({ method: 'GET', path: '/api/v1/namespaces/default/endpoints/kubernetes', accept: [404] });
        return (res.body.subsets?.[0]?.addresses?.length ?? 0) === 3;
      });
    } finally {
      await admin.close();
    }

    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'real',
        clusters: [{ name: 'real', cluster: { server: serviceUrl, 'certificate-authority': caFile, 'tls-server-name': SERVERNAME } }],
        users: [{ name: 'leaderlock', user: { tokenFile } }],
        contexts: [{ name: 'real', context: { cluster: 'real', user: 'leaderlock', namespace: 'default' } }],
      }),
    );

    return {
      version,
      ca: certs.ca,
      caFile,
      token,
      tokenFile,
      adminToken,
      leasesOnlyToken,
      serviceUrl,
      apiServers,
      proxy: serviceProxy,
      dir,
      kubeconfig,
      clientOptions: (namespace = 'default') => ({ server: serviceUrl, servername: SERVERNAME, ca: certs.ca, token, namespace }),
      kubectl: async (args) => (await execFileAsync(kubectlBin, ['--kubeconfig', kubeconfig, '--request-timeout=10s', ...args], { timeout: 30_000 })).stdout,
      admin: () => adminClient(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** An RBAC subject: a group (the harness's static-token users) or a ServiceAccount. */
export type RbacSubject = { kind: 'Group'; apiGroup: 'rbac.authorization.k8s.io'; name: string } | { kind: 'ServiceAccount'; name: string; namespace: string };

export const rbacGroup = (name: string): RbacSubject => ({ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name });

export async function createClusterRole(admin: KubeClient, name: string, rules: readonly Record<string, string[]>[]): Promise<void> {
  await admin.request({ method: 'POST', path: '/apis/rbac.authorization.k8s.io/v1/clusterroles', body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules } });
}

export async function bindClusterRole(admin: KubeClient, name: string, role: string, subject: RbacSubject): Promise<void> {
  await admin.request({
    method: 'POST',
    path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    body: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [subject],
    },
  });
}
