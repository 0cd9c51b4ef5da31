import { createServer, type Server } from 'node:http';
import type { createHealthHandler } from '../http/index.js';
import { UsageError } from './usage-error.js';

/** `host:port`, with IPv6 hosts in brackets. */
export function hostPort(l: { host: string; port: number }): string {
  return `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
}

/** Serves the health handler for `leaderlock run --listen`; a port in use is the user's to fix (exit 64). */
export async function listen(handler: ReturnType<typeof createHealthHandler>, at: { host: string; port: number }): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new UsageError(`cannot listen on ${hostPort(at)} (--listen): ${err.code ?? err.message}`)));
    server.listen(at.port, at.host, () => resolve());
  });
  // Probes must not keep the process alive after the command is done.
  server.unref();
  return server;
}
