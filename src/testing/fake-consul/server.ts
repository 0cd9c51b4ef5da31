import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { systemClock, type Clock } from '../../core/clock.js';
import { generateConsulCerts, type FakeConsulCerts } from './certs.js';
import { findRoute, type FakeResponse } from './routes.js';
import { ConsulState, type KvEntry, type ServiceEntry, type CheckEntry, type SessionEntry, type SessionEndReason } from './state.js';

/**
 * A Consul agent+server on 127.0.0.1 speaking Consul's documented HTTP API for sessions, KV
 * (`?acquire`, `?release`, `?cas`, `?recurse`, `?keys`, `?raw`, blocking `?index=&wait=` with
 * `X-Consul-Index`), agent services and TTL checks, catalog and health reads. Sessions end on TTL
 * (`sessionTtlFactor` × TTL after the last renew; Consul's range is 1–2 ×, default the worst case 2)
 * or on destroy, releasing/deleting their keys per `Behavior` and applying lock-delay. ACL tokens
 * (403), fault injection (down = connection refused, latency, 5xx, apply-then-drop-response,
 * blackhole) and an injectable clock. Every request is recorded; unknown routes answer 404 and are
 * listed in `unknownRequests`.
 */

export interface FakeConsulServerOptions {
  /** Clock for session TTLs, lock-delay, check TTLs, blocking-query waits and injected latency. Default real time. */
  clock?: Clock;
  /** Session invalidation after the last renew, as a multiple of TTL, in [1, 2]. Default 2 (Consul's worst case). */
  sessionTtlFactor?: number;
  /**
   * Enforce ACLs (default deny): token → 'write' (everything) or 'read' (GET only). Requests without
   * a known token get 403. Tokens are read from `X-Consul-Token`, `Authorization: Bearer` or `?token=`.
   */
  acl?: { tokens: Record<string, 'read' | 'write'> };
  node?: string;
  datacenter?: string;
  /** Loopback address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Serve HTTPS with a generated CA (`fake.ca`, for CONSUL_CACERT). Needs the `selfsigned` dev dependency. */
  tls?: boolean;
}

export interface RecordedRequest {
  seq: number;
  method: string;
  path: string;
  /** Raw query string without '?'. */
  search: string;
  query: Record<string, string>;
  body: string;
  token: string | undefined;
  /** Response status; undefined when no response was sent (dropped, blackholed, client gone). */
  status: number | undefined;
  /** Fake clock time at arrival. */
  at: number;
  known: boolean;
  fault: FaultKind | undefined;
}

export type FaultKind = 'latency' | 'error' | 'drop-response' | 'blackhole';

export interface FaultRule {
  kind: FaultKind;
  /** Which requests it applies to; default every request. A string path matches as a prefix. */
  match?: { method?: string; path?: string | RegExp };
  /** How many requests it applies to before it removes itself. Default unlimited. */
  times?: number;
  /** 'latency': delay before handling, on the fake's clock. */
  latencyMs?: number;
  /** 'error': status to answer (default 500) without applying the request. */
  status?: number;
  body?: string;
}

export interface FakeConsulServerEvents {
  /** A request arrived (recorded, not answered yet). */
  arrival: [RecordedRequest];
  /** A request was answered (or dropped): `status` is final. */
  request: [RecordedRequest];
  'session-ended': [{ id: string; reason: SessionEndReason }];
}

export class FakeConsulServer extends EventEmitter<FakeConsulServerEvents> {
  readonly clock: Clock;
  readonly requests: RecordedRequest[] = [];
  readonly #state: ConsulState;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #inflight = new Set<AbortController>();
  readonly #host: string;
  #port: number;
  #faults: Array<FaultRule & { left: number }> = [];
  #acl: Map<string, 'read' | 'write'> | undefined;
  #seq = 0;
  #closed = false;
  #down = false;
  readonly #certs: FakeConsulCerts | undefined;

  private constructor(options: FakeConsulServerOptions, certs: FakeConsulCerts | undefined) {
    super();
    const factor = options.sessionTtlFactor ?? 2;
    if (!(factor >= 1 && factor <= 2)) throw new RangeError(`sessionTtlFactor must be in [1, 2], got ${factor}`);
    const host = options.host ?? '127.0.0.1';
    if (!/^(127\.\d+\.\d+\.\d+|::1)$/.test(host)) throw new RangeError(`FakeConsulServer listens on loopback only, got ${host}`);
    this.clock = options.clock ?? systemClock;
    this.#host = host;
    this.#port = options.port ?? 0;
    this.#acl = options.acl ? new Map(Object.entries(options.acl.tokens)) : undefined;
    this.#state = new ConsulState({ clock: this.clock, node: options.node ?? 'fake-node', datacenter: options.datacenter ?? 'dc1', sessionTtlFactor: factor });
    this.#state.onSessionEnd = (s, reason) => this.emit('session-ended', { id: s.id, reason });
    this.#certs = certs;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = certs ? (createHttpsServer({ cert: certs.cert, key: certs.key }, handler) as unknown as Server) : createServer(handler);
    this.#server.keepAliveTimeout = 5_000;
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: FakeConsulServerOptions = {}): Promise<FakeConsulServer> {
    const certs = options.tls ? await generateConsulCerts(options.host ?? '127.0.0.1') : undefined;
    const fake = new FakeConsulServer(options, certs);
    await fake.#listen();
    return fake;
  }

  get host(): string {
    return this.#host;
  }
  get port(): number {
    return this.#port;
  }
  /** PEM of the CA that signed the server certificate (tls: true only). */
  get ca(): string | undefined {
    return this.#certs?.ca;
  }
  /** `http://127.0.0.1:<port>` (`https://` with tls). */
  get url(): string {
    return `${this.#certs ? 'https' : 'http'}://${this.#host.includes(':') ? `[${this.#host}]` : this.#host}:${this.#port}`;
  }
  /** `127.0.0.1:<port>`, the form of `CONSUL_HTTP_ADDR`. */
  get address(): string {
    return `${this.#host}:${this.#port}`;
  }
  /** Requests that hit no known route (a fidelity gap or a client bug); tests should assert it stays empty. */
  get unknownRequests(): RecordedRequest[] {
    return this.requests.filter((r) => !r.known);
  }
  /**
   * Blocking queries parked waiting for a change. A test that counts its client's pending requests
   * can wait until pending == parked: then every other request has been answered (the system is idle).
   */
  get parkedRequests(): number {
    return this.#state.parked;
  }
  /** Current raft index. */
  get index(): number {
    return this.#state.index;
  }

  // ---- Inspection and direct manipulation (for tests) -----------------------------------------------

  kv(key: string): Readonly<KvEntry> | undefined {
    return this.#state.kv.get(key);
  }
  sessions(): ReadonlyArray<Readonly<SessionEntry>> {
    return [...this.#state.sessions.values()];
  }
  session(id: string): Readonly<SessionEntry> | undefined {
    return this.#state.sessions.get(id);
  }
  services(): ReadonlyArray<Readonly<ServiceEntry>> {
    return [...this.#state.services.values()];
  }
  checks(): ReadonlyArray<Readonly<CheckEntry>> {
    return [...this.#state.checks.values()];
  }
  /** Ends a session now as if its TTL ran out (keys released/deleted per behavior, lock-delay applied). */
  invalidateSession(id: string): boolean {
    return this.#state.destroySession(id, 'ttl');
  }
  /** When sessions are invalidated after their last renew, as a multiple of TTL (applies from the next renew). */
  set sessionTtlFactor(f: number) {
    if (!(f >= 1 && f <= 2)) throw new RangeError(`sessionTtlFactor must be in [1, 2], got ${f}`);
    this.#state.sessionTtlFactor = f;
  }
  get sessionTtlFactor(): number {
    return this.#state.sessionTtlFactor;
  }
  /** Replace the ACL token table (undefined = ACLs off). */
  setAcl(acl: { tokens: Record<string, 'read' | 'write'> } | undefined): void {
    this.#acl = acl ? new Map(Object.entries(acl.tokens)) : undefined;
  }

  // ---- Faults ----------------------------------------------------------------------------------------

  /** Adds a fault; returns a function that removes it. Rules are checked in the order added. */
  addFault(rule: FaultRule): () => void {
    const entry = { ...rule, left: rule.times ?? Infinity };
    this.#faults.push(entry);
    return () => {
      this.#faults = this.#faults.filter((f) => f !== entry);
    };
  }
  clearFaults(): void {
    this.#faults = [];
  }
  /** Stops listening and drops every connection: clients get ECONNREFUSED until `up()`. State is kept. */
  async down(): Promise<void> {
    if (this.#down || this.#closed) return;
    this.#down = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#abortAll();
    await closed;
  }
  /** Listens again on the same port. */
  async up(): Promise<void> {
    if (!this.#down || this.#closed) return;
    this.#down = false;
    await this.#listen();
  }
  get isDown(): boolean {
    return this.#down;
  }

  /**
   * Resolves with the first request that arrived (from `since` on) matching `pred` — a parked
   * blocking query counts as soon as it arrives; its `status` is filled in when answered — or rejects after
   * `timeoutMs` of real time — a bounded wait on I/O, not a sleep.
   */
  waitForRequest(pred: (r: RecordedRequest) => boolean, options: { timeoutMs?: number; since?: number } = {}): Promise<RecordedRequest> {
    const found = this.requests.find((r) => r.seq >= (options.since ?? 0) && pred(r));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onRequest = (r: RecordedRequest): void => {
        if (r.seq < (options.since ?? 0) || !pred(r)) return;
        cleanup();
        resolve(r);
      };
      // Real time on purpose: it bounds a wait for real I/O, whatever clock the fake runs on.
      const timer = systemClock.setTimer(() => {
        cleanup();
        reject(new Error(`FakeConsulServer: no matching request within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      const cleanup = (): void => {
        timer.cancel();
        this.off('arrival', onRequest);
      };
      this.on('arrival', onRequest);
    });
  }

  /** Sequence number the next recorded request gets (for `waitForRequest({ since })`). */
  get nextSeq(): number {
    return this.#seq;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#state.dispose();
    const closed = this.#down ? Promise.resolve() : new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#abortAll();
    await closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #abortAll(): void {
    for (const c of this.#inflight) c.abort();
    for (const s of this.#sockets) s.destroy();
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, this.#host, () => {
        this.#server.off('error', reject);
        const addr = this.#server.address();
        if (addr && typeof addr === 'object') this.#port = addr.port;
        resolve();
      });
    });
  }

  #token(req: IncomingMessage, query: URLSearchParams): string | undefined {
    const header = req.headers['x-consul-token'];
    if (typeof header === 'string' && header !== '') return header;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '');
    return query.get('token') ?? undefined;
  }

  #takeFault(method: string, path: string): FaultRule | undefined {
    for (const f of this.#faults) {
      if (f.left <= 0) continue;
      const m = f.match;
      if (m?.method !== undefined && m.method !== method) continue;
      if (m?.path !== undefined && (typeof m.path === 'string' ? !path.startsWith(m.path) : !m.path.test(path))) continue;
      f.left -= 1;
      if (f.left <= 0) this.#faults = this.#faults.filter((x) => x !== f);
      return f;
    }
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController();
    this.#inflight.add(controller);
    res.on('close', () => {
      controller.abort();
      this.#inflight.delete(controller);
    });
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const route = findRoute(req.method ?? 'GET', url.pathname);
    const rec: RecordedRequest = {
      seq: this.#seq++,
      method: req.method ?? 'GET',
      path: url.pathname,
      search: url.search.slice(1),
      query: Object.fromEntries(url.searchParams),
      body: body.toString('utf8'),
      token: this.#token(req, url.searchParams),
      status: undefined,
      at: this.clock.now(),
      known: route !== undefined,
      fault: undefined,
    };
    this.requests.push(rec);
    this.emit('arrival', rec);
    const finish = (): void => void this.emit('request', rec);
    try {
      const fault = this.#takeFault(rec.method, rec.path);
      rec.fault = fault?.kind;
      if (fault?.kind === 'blackhole') {
        // Never answers; the socket stays open until the client gives up or the fault scope ends with close().
        return finish();
      }
      if (fault?.kind === 'latency') await this.clock.sleep(fault.latencyMs ?? 0, controller.signal).catch(() => undefined);
      if (controller.signal.aborted) return finish();
      if (fault?.kind === 'error') {
        this.#send(res, rec, { status: fault.status ?? 500, body: fault.body ?? 'injected fault' });
        return finish();
      }
      if (!route) {
        this.#send(res, rec, { status: 404, body: `FakeConsulServer: unknown route ${rec.method} ${rec.path}` });
        return finish();
      }
      const denied = this.#denied(rec.token, route.write);
      if (denied) {
        this.#send(res, rec, { status: 403, body: denied });
        return finish();
      }
      const answer = await route.handler(this.#state, { method: rec.method, path: rec.path, query: url.searchParams, body, signal: controller.signal }, route.param);
      if (fault?.kind === 'drop-response') {
        // Applied, but the client never learns the outcome (a reset after the server committed).
        req.socket.destroy();
        return finish();
      }
      if (!controller.signal.aborted) this.#send(res, rec, answer);
      finish();
    } catch (err) {
      if (!res.headersSent && !res.destroyed) this.#send(res, rec, { status: 500, body: `FakeConsulServer: ${(err as Error).message}` });
      finish();
    }
  }

  #denied(token: string | undefined, write: boolean): string | undefined {
    if (!this.#acl) return undefined;
    if (token === undefined) return 'Permission denied';
    const grant = this.#acl.get(token);
    if (grant === undefined) return 'ACL not found';
    if (write && grant !== 'write') return 'Permission denied';
    return undefined;
  }

  #send(res: ServerResponse, rec: RecordedRequest, answer: FakeResponse): void {
    rec.status = answer.status;
    const headers: Record<string, string> = { 'X-Consul-Knownleader': 'true', 'X-Consul-Lastcontact': '0', 'X-Consul-Default-Acl-Policy': this.#acl ? 'deny' : 'allow' };
    if (answer.index !== undefined) headers['X-Consul-Index'] = String(Math.max(1, answer.index));
    let payload: Buffer | string = '';
    if (Buffer.isBuffer(answer.body)) {
      payload = answer.body;
      headers['Content-Type'] = 'application/octet-stream';
    } else if (typeof answer.body === 'string' && answer.status >= 300) {
      payload = answer.body;
      headers['Content-Type'] = 'text/plain; charset=utf-8';
    } else if (answer.body !== undefined) {
      payload = JSON.stringify(answer.body);
      headers['Content-Type'] = 'application/json';
    }
    res.writeHead(answer.status, headers);
    res.end(payload);
  }
}
