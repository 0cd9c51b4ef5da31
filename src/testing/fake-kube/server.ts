import { randomBytes } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import { systemClock, type Clock, type Timer } from '../../core/clock.js';
import { logger } from '../../core/log.js';
import { FakeKubeApi, type DenyRule, type FakeKubeRequest } from './api.js';
import { generateCerts, type FakeKubeCerts } from './certs.js';
import { FakeApiNode } from './node.js';
import { findResource } from './resources.js';
import { ServiceProxy } from './service-proxy.js';
import { FakeKubeStore } from './store.js';

const log = logger('fake-kube');

export interface FakeKubeApiServerOptions {
  /** API nodes at start (127.0.0.2, 127.0.0.3, …). Default 3. */
  nodes?: number;
  /** Accepted bearer tokens. Default one random token (`fake.token`). */
  tokens?: readonly string[];
  /** Clock for latency, bookmarks and the endpoints update delay. Default the real clock. */
  clock?: Clock;
  /**
   * How long a node that went down stays listed in `default/kubernetes` and in the service's
   * kube-proxy view (connections through the service may still go to it), ms. Default 5000.
   * A node removed with `removeNode()` leaves at once (a graceful removal).
   */
  endpointsUpdateDelayMs?: number;
  /** Interval of watch bookmarks when the client allows them, ms. Default 60 000 (the real server's order). */
  bookmarkIntervalMs?: number;
  /** Watch events kept; older resourceVersions get 410 Expired. Default 1000. */
  historyLimit?: number;
  /** The user named in 403 messages. */
  user?: string;
  /** Requests kept in `requests` (oldest dropped first). Default 100 000. */
  recordLimit?: number;
  /** First node IP's last octet. Default 2 (127.0.0.2). */
  firstOctet?: number;
  /** Random source of the service proxy (which node a new connection goes to). */
  random?: () => number;
}

/** Options for `KubeClient` that reach this fake (structurally a `KubeClientOptions`). */
export interface FakeKubeClientOptions {
  server: string;
  servername: string;
  ca: string;
  token: string;
  namespace: string;
}

const MAX_OCTET = 62; // the certificate carries SANs for 127.0.0.1 … 127.0.0.62

/**
 * A Kubernetes API server for tests: HTTPS "API nodes" on 127.0.0.2, 127.0.0.3, … sharing one
 * store, a `kubernetes` service address (127.0.0.1:port) that forwards like kube-proxy, the
 * `default/kubernetes` Endpoints and EndpointSlice listing the live nodes, Lease / Endpoints /
 * ConfigMap / Pod / EndpointSlice CRUD, patch and watch with resourceVersion CAS (409), 410 for
 * too-old watches, Status error bodies, tokens (401), denials (403) and per-node faults. Every
 * request is recorded; unknown routes are recorded in `unknownRequests` and answered 404.
 */
export class FakeKubeApiServer {
  readonly store: FakeKubeStore;
  readonly clock: Clock;
  readonly servername = 'kubernetes.default.svc';
  readonly #certs: FakeKubeCerts;
  readonly #api: FakeKubeApi;
  readonly #proxy: ServiceProxy;
  readonly #nodes: FakeApiNode[] = [];
  readonly #tokens: Set<string>;
  readonly #deny: DenyRule[] = [];
  readonly #disabled = new Set<string>();
  readonly #requests: FakeKubeRequest[] = [];
  readonly #unknown: FakeKubeRequest[] = [];
  readonly #delayMs: number;
  readonly #recordLimit: number;
  readonly #timers = new Set<Timer>();
  #nextOctet: number;
  #port = 0;
  #servicePort = 0;
  #closing = false;
  #listed: readonly FakeApiNode[] = [];

  private constructor(certs: FakeKubeCerts, options: FakeKubeApiServerOptions) {
    this.#certs = certs;
    this.clock = options.clock ?? systemClock;
    this.store = new FakeKubeStore(this.clock, options.historyLimit ?? 1000);
    this.#tokens = new Set(options.tokens ?? [`fake-${randomBytes(12).toString('hex')}`]);
    this.#delayMs = options.endpointsUpdateDelayMs ?? 5000;
    this.#recordLimit = options.recordLimit ?? 100_000;
    this.#nextOctet = options.firstOctet ?? 2;
    this.#proxy = new ServiceProxy(options.random);
    this.#api = new FakeKubeApi({
      store: this.store,
      clock: this.clock,
      tokens: () => this.#tokens,
      denied: () => this.#deny,
      disabled: () => this.#disabled,
      user: options.user ?? 'system:serviceaccount:default:leaderlock',
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      serverAddress: () => `127.0.0.1:${this.#servicePort}`,
      record: (r) => {
        this.#requests.push(r);
        if (this.#requests.length > this.#recordLimit) this.#requests.splice(0, this.#requests.length - this.#recordLimit);
      },
      unknownRoute: (r) => {
        this.#unknown.push(r);
        log('UNKNOWN ROUTE %s %s', r.method, r.path);
      },
    });
  }

  /** Generates the certificates, starts the nodes and the service address. */
  static async start(options: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
    const ips = Array.from({ length: MAX_OCTET }, (_, i) => `127.0.0.${i + 1}`);
    const fake = new FakeKubeApiServer(await generateCerts(ips), options);
    try {
      fake.#servicePort = await fake.#proxy.listen('127.0.0.1');
      for (let i = 0; i < (options.nodes ?? 3); i++) await fake.addNode();
    } catch (err) {
      await fake.close();
      throw err;
    }
    return fake;
  }

  /** PEM CA the node certificates chain to. */
  get ca(): string {
    return this.#certs.ca;
  }

  /** The first accepted token. */
  get token(): string {
    return [...this.#tokens][0] ?? '';
  }

  /** The `kubernetes` service address (kube-proxy-like forwarding to a random listed node). */
  get serviceUrl(): URL {
    return new URL(`https://127.0.0.1:${this.#servicePort}`);
  }

  /** Every node ever added and not removed, up or down. */
  get nodes(): readonly FakeApiNode[] {
    return this.#nodes;
  }

  node(i: number): FakeApiNode {
    const n = this.#nodes[i];
    if (!n) throw new Error(`FakeKubeApiServer has no node ${i} (it has ${this.#nodes.length})`);
    return n;
  }

  nodeByIp(ip: string): FakeApiNode | undefined {
    return this.#nodes.find((n) => n.ip === ip);
  }

  /** Nodes currently in default/kubernetes and in the service's forwarding view. */
  get listedNodes(): readonly FakeApiNode[] {
    return this.#listed;
  }

  get requests(): readonly FakeKubeRequest[] {
    return this.#requests;
  }

  /** Requests to routes the fake does not serve. A test that expects none should assert this is empty. */
  get unknownRequests(): readonly FakeKubeRequest[] {
    return this.#unknown;
  }

  /** TCP connections the service address forwarded. */
  get serviceConnections(): number {
    return this.#proxy.connections;
  }

  clearRequests(): void {
    this.#requests.length = 0;
    this.#unknown.length = 0;
  }

  /** Replaces the accepted tokens (a rotated service-account token: old ones get 401). */
  setTokens(tokens: readonly string[]): void {
    this.#tokens.clear();
    for (const t of tokens) this.#tokens.add(t);
  }

  /** Answers 403 to requests matching `rule`. Returns a function that lifts it. */
  deny(rule: DenyRule): () => void {
    this.#deny.push(rule);
    return () => {
      const i = this.#deny.indexOf(rule);
      if (i >= 0) this.#deny.splice(i, 1);
    };
  }

  /** Serves `resource` (e.g. 'endpointslices') as 404, as a cluster whose API group is not enabled. Returns a function that re-enables it. */
  disableResource(resource: string): () => void {
    this.#disabled.add(resource);
    return () => this.#disabled.delete(resource);
  }

  allowAll(): void {
    this.#deny.length = 0;
  }

  /** Starts one more API node on the next loopback IP and lists it. */
  async addNode(): Promise<FakeApiNode> {
    if (this.#nextOctet > MAX_OCTET) throw new Error(`FakeKubeApiServer supports at most ${MAX_OCTET - 1} nodes over its life`);
    const node = new FakeApiNode(`127.0.0.${this.#nextOctet++}`, this.#port, this.#certs, this.#api, this.clock, (n) => this.#onNodeState(n));
    this.#nodes.push(node);
    try {
      await node.up();
    } catch (err) {
      this.#nodes.pop();
      throw err;
    }
    this.#port = node.port;
    return node;
  }

  /** Stops a node and removes it from the endpoints at once. */
  async removeNode(node: FakeApiNode): Promise<void> {
    const i = this.#nodes.indexOf(node);
    if (i < 0) return;
    this.#nodes.splice(i, 1);
    await node.close();
    this.#syncEndpoints();
  }

  #onNodeState(node: FakeApiNode): void {
    if (this.#closing) return;
    if (!this.#port) this.#port = node.port;
    if (node.state === 'up' || this.#delayMs <= 0) {
      this.#syncEndpoints();
      return;
    }
    // The endpoint reconciler and kube-proxy notice a dead API server only after a while.
    const timer = this.clock.setTimer(
      () => {
        this.#timers.delete(timer);
        this.#syncEndpoints();
      },
      this.#delayMs,
      { unref: true },
    );
    this.#timers.add(timer);
  }

  /** Writes default/kubernetes (Endpoints + EndpointSlice) from the live nodes and updates the service view. */
  #syncEndpoints(): void {
    if (this.#closing) return;
    const now = this.clock.now();
    const listed = this.#nodes.filter((n) => n.state === 'up' || (n.downSince !== undefined && now - n.downSince < this.#delayMs));
    this.#listed = listed;
    this.#proxy.setTargets(listed.map((n) => ({ ip: n.ip, port: n.port })));
    const ports = [{ name: 'https', port: this.#port, protocol: 'TCP' }];
    const ep = findResource('', 'v1', 'endpoints')!;
    const slice = findResource('discovery.k8s.io', 'v1', 'endpointslices')!;
    const currentEp = this.store.get(ep, 'default', 'kubernetes');
    const subsets = listed.length ? [{ addresses: listed.map((n) => ({ ip: n.ip })), ports }] : [];
    if (JSON.stringify(currentEp?.subsets ?? null) !== JSON.stringify(subsets)) {
      this.store.update(ep, 'default', 'kubernetes', {
        metadata: { name: 'kubernetes', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
        subsets,
      });
      const sliceBody = {
        metadata: { name: 'kubernetes', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
        addressType: 'IPv4',
        endpoints: listed.map((n) => ({ addresses: [n.ip], conditions: { ready: true, serving: true, terminating: false } })),
        ports,
      };
      const r = this.store.update(slice, 'default', 'kubernetes', sliceBody);
      if (r.status === 404) this.store.create(slice, 'default', sliceBody);
      log('default/kubernetes now lists %s', listed.map((n) => n.ip).join(', ') || 'nothing');
    }
  }

  /** Options for `new KubeClient(...)` that reach this fake through the service address. */
  clientOptions(namespace = 'default'): FakeKubeClientOptions {
    return { server: this.serviceUrl.href.replace(/\/$/, ''), servername: this.servername, ca: this.ca, token: this.token, namespace };
  }

  /** A kubeconfig (YAML text) for kubectl or `KubeClient.fromKubeconfig`. `server` defaults to the service address. */
  kubeconfig(options: { server?: string | URL; namespace?: string; token?: string } = {}): string {
    const server = (options.server ?? this.serviceUrl).toString().replace(/\/$/, '');
    return toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: { server, 'certificate-authority-data': Buffer.from(this.ca).toString('base64') } }],
      users: [{ name: 'fake', user: { token: options.token ?? this.token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: options.namespace ?? 'default' } }],
    });
  }

  /** Stops every node, the service address and pending timers. Idempotent. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    await Promise.allSettled([this.#proxy.close(), ...this.#nodes.map((n) => n.close())]);
  }
}
