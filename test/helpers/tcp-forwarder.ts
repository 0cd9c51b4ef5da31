/**
 * A loopback TCP forwarder whose path can hang: `freeze()` holds every byte in both directions
 * (connections stay open, nothing is refused or reset — a blackholed path), `thaw()` delivers what
 * was held, in order, and forwards again. One client talks to etcd through it; the others go direct.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpForwarder {
  /** `http://127.0.0.1:<port>`: use it as the client's etcd endpoint. */
  readonly url: string;
  readonly frozen: boolean;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function tcpForwarder(target: string): Promise<TcpForwarder> {
  const { hostname, port } = new URL(target);
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') throw new Error(`tcpForwarder: loopback targets only, got ${hostname}`);
  let frozen = false;
  const sockets = new Set<Socket>();
  const held: Array<() => void> = [];
  const relay = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (frozen) held.push(() => to.write(chunk));
      else to.write(chunk);
    });
    from.on('close', () => to.destroy());
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('tcpForwarder: no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    get frozen() {
      return frozen;
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const send of held.splice(0)) send();
    },
    async close() {
      held.length = 0;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
