import type { Clock } from '../../core/clock.js';
import { LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { errorText } from '../../core/retry.js';
import { httpsUrl } from './config.js';

const log = logger('k8s:resolver');

/**
 * Which API server addresses a `KubeClient` dials, in order. The client tries `candidates()` in
 * order within one deadline (each try gets its share of the time left) and tells the resolver how
 * each try went through `report()`. Users can plug their own.
 */
export interface ApiEndpointResolver {
  /** Ordered addresses; the first is the sticky one. Never empty. */
  candidates(): Promise<readonly URL[]>;
  /** The outcome of one try against `url` (ok = the server answered, whatever the HTTP status was below 500). */
  report(url: URL, ok: boolean, err?: unknown): void;
  /** Called once by the client that uses this resolver: the service address and a way to read through it. */
  attach?(ctx: ResolverContext): void;
  close?(): void;
}

/** What a `KubeClient` gives its resolver. */
export interface ResolverContext {
  /** The configured server: in-cluster `KUBERNETES_SERVICE_HOST:PORT`, or the kubeconfig server. */
  readonly serviceUrl: URL;
  readonly clock: Clock;
  /** GET `path` trying exactly `urls` in order within `timeoutMs`; 403/404 are returned, other failures thrown. */
  read(urls: readonly URL[], path: string, query: Record<string, string>, timeoutMs: number): Promise<{ status: number; body: unknown }>;
  /** Reports a non-fatal problem (emitted as the client's `warning`). */
  warn(err: LeaderLockError): void;
}

function sameUrl(a: URL, b: URL): boolean {
  return a.href === b.href;
}

/** Always the configured server address (through kube-proxy in a cluster). `url` overrides it. */
export function serviceResolver(url?: string | URL): ApiEndpointResolver {
  let target: URL | undefined = url === undefined ? undefined : new URL(url);
  return {
    attach(ctx) {
      target ??= ctx.serviceUrl;
    },
    async candidates() {
      if (!target) throw new LeaderLockError('serviceResolver() used before being attached to a KubeClient', { backend: 'kubernetes' });
      return [target];
    },
    report() {},
  };
}

/** A fixed list: sticky on the first that works, rotating to the next on failure. */
export function staticResolver(urls: readonly (string | URL)[]): ApiEndpointResolver {
  const list = urls.map((u) => new URL(u));
  if (list.length === 0) throw new LeaderLockError('staticResolver needs at least one URL', { backend: 'kubernetes' });
  let sticky = 0;
  return {
    async candidates() {
      return list.map((_, i) => list[(sticky + i) % list.length]!);
    },
    report(url, ok) {
      const i = list.findIndex((u) => sameUrl(u, url));
      if (i < 0) return;
      if (ok) sticky = i;
      else if (i === sticky) sticky = (sticky + 1) % list.length;
    },
  };
}

export interface EndpointsResolverOptions {
  /** Re-read the API server list at most this often, ms. Default 10 000. */
  refreshMs?: number;
  /** Deadline for one refresh read, ms. Default 2 000. */
  refreshTimeoutMs?: number;
  /** Read EndpointSlices first (default true); v1 Endpoints are read when they are not served (404) or forbidden (403). */
  useEndpointSlices?: boolean;
  /** Port name in the endpoints. Default 'https' (a single unnamed port is used too). */
  portName?: string;
  /** Only for tests: picks the first sticky address; default random, so many clients spread over the API servers. */
  pick?: (n: number) => number;
}

export interface EndpointsResolverStats {
  /** Addresses from the last successful refresh. */
  addresses: readonly string[];
  sticky?: string;
  /** True once the resolver uses the service address for the life of the process. */
  fallback: boolean;
  refreshes: number;
  refreshFailures: number;
  /** Sticky changes: failures and the sticky address leaving the list. */
  rotations: number;
  /** Where the last list came from. */
  source?: 'EndpointSlice' | 'Endpoints';
}

const SLICES_PATH = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices';
const ENDPOINTS_PATH = '/api/v1/namespaces/default/endpoints/kubernetes';

/**
 * Bypasses kube-proxy: dials the API servers' own addresses from `default/kubernetes`
 * (EndpointSlices, then v1 Endpoints), sticks to one while it is listed and healthy, rotates on
 * connect/TLS/reset/timeout/5xx, and tries the service address last. When reading those objects is
 * forbidden (403 on both) or the Endpoints object does not exist, it uses the service address for the
 * life of the process and says so once (`warning`). A timeout or 5xx on the list read never does that:
 * it keeps the last list and tries again after `refreshMs`.
 */
export class EndpointsResolver implements ApiEndpointResolver {
  readonly #refreshMs: number;
  readonly #refreshTimeoutMs: number;
  readonly #useSlices: boolean;
  readonly #portName: string;
  readonly #pick: (n: number) => number;
  #ctx: ResolverContext | undefined;
  #ips: URL[] = [];
  #sticky = 0;
  #lastAttempt = -Infinity;
  #refreshing: Promise<void> | undefined;
  #fallback = false;
  #refreshes = 0;
  #refreshFailures = 0;
  #rotations = 0;
  #source: EndpointsResolverStats['source'];

  constructor(options: EndpointsResolverOptions = {}) {
    this.#refreshMs = options.refreshMs ?? 10_000;
    this.#refreshTimeoutMs = options.refreshTimeoutMs ?? 2_000;
    this.#useSlices = options.useEndpointSlices ?? true;
    this.#portName = options.portName ?? 'https';
    this.#pick = options.pick ?? ((n) => Math.floor(Math.random() * n));
    if (!(this.#refreshMs >= 0) || !(this.#refreshTimeoutMs > 0)) {
      throw new LeaderLockError('endpointsResolver: refreshMs must be >= 0 and refreshTimeoutMs > 0', { backend: 'kubernetes' });
    }
  }

  attach(ctx: ResolverContext): void {
    this.#ctx = ctx;
  }

  get stats(): EndpointsResolverStats {
    const sticky = this.#ips[this.#sticky]?.href;
    return {
      addresses: this.#ips.map((u) => u.href),
      ...(sticky ? { sticky } : {}),
      fallback: this.#fallback,
      refreshes: this.#refreshes,
      refreshFailures: this.#refreshFailures,
      rotations: this.#rotations,
      ...(this.#source ? { source: this.#source } : {}),
    };
  }

  async candidates(): Promise<readonly URL[]> {
    const ctx = this.#context();
    if (this.#fallback) return [ctx.serviceUrl];
    const stale = ctx.clock.now() - this.#lastAttempt >= this.#refreshMs;
    if (stale) {
      // Only the very first list is waited for; later refreshes run beside the requests, so a
      // refresh never adds latency to a renew.
      const running = this.refresh();
      if (this.#ips.length === 0) await running;
    }
    if (this.#fallback || this.#ips.length === 0) return [ctx.serviceUrl];
    const n = this.#ips.length;
    return [...this.#ips.map((_, i) => this.#ips[(this.#sticky + i) % n]!), ctx.serviceUrl];
  }

  report(url: URL, ok: boolean, err?: unknown): void {
    const i = this.#ips.findIndex((u) => sameUrl(u, url));
    if (i < 0) return; // the service address: nothing to learn
    if (ok) {
      this.#sticky = i;
    } else if (i === this.#sticky) {
      this.#sticky = (i + 1) % this.#ips.length;
      this.#rotations++;
      log('%s failed (%s), rotating to %s', url.host, err === undefined ? 'error' : errorText(err), this.#ips[this.#sticky]?.host);
    }
  }

  /** Reads the API server list now (one read at a time; concurrent callers share it). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  #context(): ResolverContext {
    if (!this.#ctx) throw new LeaderLockError('endpointsResolver() used before being attached to a KubeClient', { backend: 'kubernetes' });
    return this.#ctx;
  }

  async #doRefresh(): Promise<void> {
    const ctx = this.#context();
    this.#lastAttempt = ctx.clock.now();
    const via = [...this.#currentOrder(), ctx.serviceUrl];
    try {
      let denied = false;
      if (this.#useSlices) {
        const res = await ctx.read(via, SLICES_PATH, { labelSelector: 'kubernetes.io/service-name=kubernetes' }, this.#refreshTimeoutMs);
        if (res.status === 200) return this.#apply(addressesFromSlices(res.body, this.#portName), 'EndpointSlice');
        denied = res.status === 403;
        log('EndpointSlices read answered %d, reading v1 Endpoints', res.status);
      }
      const res = await ctx.read(via, ENDPOINTS_PATH, {}, this.#refreshTimeoutMs);
      if (res.status === 200) return this.#apply(addressesFromEndpoints(res.body, this.#portName), 'Endpoints');
      // 403 here (after 403 or 404 on the slices) or a missing object: there is no list we can
      // read, now or later. Patroni disables its bypass the same way.
      this.#pinFallback(res.status, res.status === 404 ? 'the default/kubernetes Endpoints object does not exist' : `reading default/kubernetes endpoints is forbidden (${denied ? 'EndpointSlices and ' : ''}Endpoints: 403)`);
    } catch (err) {
      // Timeout, 5xx, refused: keep the last list and try again after refreshMs. Never pin the fallback.
      this.#refreshFailures++;
      log('refreshing the API server list failed, keeping %d addresses: %s', this.#ips.length, errorText(err));
    }
  }

  #currentOrder(): URL[] {
    const n = this.#ips.length;
    return this.#ips.map((_, i) => this.#ips[(this.#sticky + i) % n]!);
  }

  #apply(urls: URL[], source: 'EndpointSlice' | 'Endpoints'): void {
    this.#refreshes++;
    this.#source = source;
    const sticky = this.#ips[this.#sticky];
    this.#ips = urls;
    if (urls.length === 0) {
      log('%s lists no ready API server, using the service address', source);
      return;
    }
    const keep = sticky ? urls.findIndex((u) => sameUrl(u, sticky)) : -1;
    if (keep >= 0) {
      this.#sticky = keep;
    } else {
      this.#sticky = Math.min(urls.length - 1, Math.max(0, this.#pick(urls.length)));
      if (sticky) {
        this.#rotations++;
        log('sticky %s left the list, switching to %s', sticky.host, urls[this.#sticky]!.host);
      }
    }
  }

  #pinFallback(status: number, why: string): void {
    if (this.#fallback) return;
    this.#fallback = true;
    this.#ips = [];
    const ctx = this.#context();
    log('%s: using the service address %s for the life of the process', why, ctx.serviceUrl.host);
    ctx.warn(
      new LeaderLockError(`endpointsResolver: ${why}; falling back to the service address ${ctx.serviceUrl.host} for the life of the process (grant get/list on endpoints and endpointslices in namespace default to bypass kube-proxy)`, {
        backend: 'kubernetes',
        status,
        reason: status === 404 ? 'NotFound' : 'Forbidden',
      }),
    );
  }
}

/** Create an `EndpointsResolver` (see the class). */
export function endpointsResolver(options: EndpointsResolverOptions = {}): EndpointsResolver {
  return new EndpointsResolver(options);
}

interface PortLike {
  name?: string;
  port?: number;
}

function pickPort(ports: readonly PortLike[] | undefined, name: string): number | undefined {
  if (!ports || ports.length === 0) return undefined;
  const named = ports.find((p) => p.name === name);
  if (named?.port) return named.port;
  return ports.length === 1 ? ports[0]!.port : undefined;
}

/** Ready addresses with the `https` port from an EndpointSliceList. Pure (tested on its own). */
export function addressesFromSlices(body: unknown, portName = 'https'): URL[] {
  const out = new Map<string, URL>();
  const items = (body as { items?: unknown[] } | undefined)?.items ?? [];
  for (const raw of items) {
    const slice = raw as { ports?: PortLike[]; endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[] };
    const port = pickPort(slice.ports, portName);
    if (!port) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false) continue; // unset means ready (API contract)
      for (const ip of ep.addresses ?? []) {
        const url = httpsUrl(ip, port);
        out.set(url.href, url);
      }
    }
  }
  return [...out.values()];
}

/** Ready addresses with the `https` port from a v1 Endpoints object (`notReadyAddresses` excluded). Pure. */
export function addressesFromEndpoints(body: unknown, portName = 'https'): URL[] {
  const out = new Map<string, URL>();
  const subsets = (body as { subsets?: unknown[] } | undefined)?.subsets ?? [];
  for (const raw of subsets) {
    const subset = raw as { ports?: PortLike[]; addresses?: { ip?: string }[] };
    const port = pickPort(subset.ports, portName);
    if (!port) continue;
    for (const a of subset.addresses ?? []) {
      if (!a.ip) continue;
      const url = httpsUrl(a.ip, port);
      out.set(url.href, url);
    }
  }
  return [...out.values()];
}
