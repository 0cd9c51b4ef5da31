/**
 * The fenced resource of the fault harness: a loopback HTTP server that every guarded action POSTs
 * to (`{ holder, token, pid, at }`). It records each request's holder, token, the sender's stamp and
 * its arrival time (CLOCK_MONOTONIC, the same clock as the shared line file), and refuses (409) a
 * token lower than the highest it has accepted — what a real resource does with the fencing token.
 * The checker re-derives from the records that it never accepted a lower token.
 */
import { createServer, type Server } from 'node:http';
import { monotonicMs } from './harness.js';

export interface ResourceRecord {
  /** Arrival, ms on the shared monotonic clock. */
  arrival: number;
  /** The sender's stamp (taken before it checked its term). */
  at: number;
  holder: string;
  token: bigint;
  pid: number;
  accepted: boolean;
}

export interface FencedResource {
  readonly url: string;
  readonly records: readonly ResourceRecord[];
  close(): Promise<void>;
}

export async function fencedResource(): Promise<FencedResource> {
  const records: ResourceRecord[] = [];
  let highest = -1n;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const arrival = monotonicMs();
      let body: { holder?: unknown; token?: unknown; pid?: unknown; at?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString()) as typeof body;
        if (typeof body.holder !== 'string' || typeof body.token !== 'string' || !/^\d+$/.test(body.token)) throw new Error('bad body');
      } catch {
        res.writeHead(400).end();
        return;
      }
      const token = BigInt(body.token);
      const accepted = token >= highest;
      if (accepted) highest = token;
      records.push({ arrival, at: Number(body.at), holder: body.holder, token, pid: Number(body.pid), accepted });
      res.writeHead(accepted ? 204 : 409).end();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/act`,
    records,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
