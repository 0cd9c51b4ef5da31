import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * The `kubernetes` service as kube-proxy implements it: every new TCP connection goes to one
 * endpoint picked at random from kube-proxy's current view — which still contains a dead API node
 * until the endpoints are updated. Bytes are forwarded untouched (TLS is end to end).
 */
export class ServiceProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #targets: readonly { ip: string; port: number }[] = [];
  connections = 0;

  constructor(readonly random: () => number = Math.random) {
    this.#server = createServer((client) => this.#forward(client));
  }

  /** kube-proxy's view: the endpoints it forwards to. */
  setTargets(targets: readonly { ip: string; port: number }[]): void {
    this.#targets = [...targets];
  }

  get targets(): readonly { ip: string; port: number }[] {
    return this.#targets;
  }

  async listen(host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, host, () => resolve());
    });
    return (this.#server.address() as { port: number }).port;
  }

  #forward(client: Socket): void {
    this.connections++;
    this.#sockets.add(client);
    client.once('close', () => this.#sockets.delete(client));
    const target = this.#targets[Math.floor(this.random() * this.#targets.length)];
    if (!target) {
      // No endpoints: kube-proxy rejects the connection.
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.ip);
    this.#sockets.add(upstream);
    upstream.once('close', () => {
      this.#sockets.delete(upstream);
      client.destroy();
    });
    client.once('close', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
