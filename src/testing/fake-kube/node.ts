import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../core/clock.js';
import type { FakeKubeApi } from './api.js';
import type { FakeKubeCerts } from './certs.js';
import { statusBody } from './resources.js';

/** Fault knobs of one API node. Change them at any time; they apply to the next request or connection. */
export interface NodeFaults {
  /** Accept connections and requests, never answer (a partitioned host). Watch events stop too. */
  blackhole: boolean;
  /** Answer every request with this status (500, 503, …) and a Status body, without applying it. */
  serverError?: number;
  /** With `serverError` 429/503: the Retry-After header, seconds. */
  retryAfterSeconds?: number;
  /** Delay before handling each request, ms (on the fake's clock). */
  latencyMs: number;
  /** Apply writes, then drop the connection without answering (the ambiguous write). */
  dropResponse: boolean;
}

/**
 * One "API server": an HTTPS listener on its own loopback IP. `down()` closes the listener and
 * every connection (connection refused); `up()` listens again on the same address.
 */
export class FakeApiNode {
  readonly faults: NodeFaults = { blackhole: false, latencyMs: 0, dropResponse: false };
  readonly #https: HttpsServer;
  readonly #sockets = new Set<Socket>();
  #net: NetServer | undefined;
  #port: number;
  #downSince: number | undefined = undefined;

  constructor(
    readonly ip: string,
    port: number,
    certs: FakeKubeCerts,
    readonly api: FakeKubeApi,
    readonly clock: Clock,
    readonly onStateChange: (node: FakeApiNode) => void,
  ) {
    this.#port = port;
    this.#https = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => void this.#serve(req, res));
    this.#https.keepAliveTimeout = 30_000;
    this.#https.on('tlsClientError', () => {});
  }

  get port(): number {
    return this.#port;
  }

  get url(): URL {
    return new URL(`https://${this.ip}:${this.#port}`);
  }

  get state(): 'up' | 'down' {
    return this.#net ? 'up' : 'down';
  }

  /** Monotonic ms (fake clock) when the node went down, if it is down. */
  get downSince(): number | undefined {
    return this.#downSince;
  }

  /** Starts listening (on port 0 the first time, which picks the shared port). */
  async up(): Promise<void> {
    if (this.#net) return;
    const net = createNetServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen(this.#port, this.ip, () => {
        net.off('error', reject);
        resolve();
      });
    });
    this.#port = (net.address() as { port: number }).port;
    this.#net = net;
    this.#downSince = undefined;
    this.onStateChange(this);
  }

  /** Connection refused from now on; open connections (and watches) are cut. */
  async down(): Promise<void> {
    const net = this.#net;
    if (!net) return;
    this.#net = undefined;
    this.#downSince = this.clock.now();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => net.close(() => resolve()));
    this.onStateChange(this);
  }

  /** Shorthand for `faults.blackhole = on`. */
  blackhole(on = true): void {
    this.faults.blackhole = on;
  }

  /** Clears every fault knob (does not bring a down node up). */
  heal(): void {
    Object.assign(this.faults, { blackhole: false, latencyMs: 0, dropResponse: false });
    delete this.faults.serverError;
    delete this.faults.retryAfterSeconds;
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    // A blackholed host completes no handshake: hold the raw socket until it is closed.
    if (this.faults.blackhole) return;
    this.#https.emit('connection', socket);
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.faults.blackhole) return; // never answered; the socket is cut on down()/close()
    if (this.faults.latencyMs > 0) await this.clock.sleep(this.faults.latencyMs);
    if (this.faults.blackhole || !this.#net) return;
    const code = this.faults.serverError;
    if (code !== undefined) {
      req.resume();
      const reason = code === 503 ? 'ServiceUnavailable' : code === 429 ? 'TooManyRequests' : code === 504 ? 'Timeout' : 'InternalError';
      const body = JSON.stringify(statusBody(code, reason, `fault injected on ${this.ip}`, this.faults.retryAfterSeconds !== undefined ? { retryAfterSeconds: this.faults.retryAfterSeconds } : undefined));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (this.faults.retryAfterSeconds !== undefined) headers['retry-after'] = String(this.faults.retryAfterSeconds);
      this.api.o.record({ node: this.ip, method: req.method ?? 'GET', path: req.url ?? '/', query: {}, status: code });
      res.writeHead(code, headers).end(body);
      return;
    }
    try {
      await this.api.handle(req, res, { ip: this.ip, dropResponse: this.faults.dropResponse, isBlackholed: () => this.faults.blackhole });
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(statusBody(500, 'InternalError', `fake bug: ${(err as Error).message}`)));
    }
  }

  /** Stops for good (used by the server's close()). */
  async close(): Promise<void> {
    await this.down();
    this.#https.close();
  }
}
