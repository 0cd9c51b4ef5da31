#!/usr/bin/env node
/**
 * The `leaderlock` command (package.json "bin"). Everything testable lives in cli.ts; this file only
 * wires it to the real process.
 */
import { readFileSync } from 'node:fs';
import { runCli } from './cli.js';

// grpc-js (under etcd3) always passes the endpoint's host as the TLS servername, an IP included
// (grpc/grpc-node#1919), and Node warns about that once per process (DEP0123). We set no
// servername ourselves, and the certificate is still verified against the IP (Node checks IP SANs
// for an IP host). The warning tells an `etcds://10.0.0.1:2379` user nothing they can act on, so
// the command line drops this one warning; every other warning still prints.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
  if (code === 'DEP0123') return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

function version(): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version;
  } catch {
    return undefined;
  }
}

const code = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  version: version(),
});
process.exitCode = code;
// Let stdout drain, then leave even if a backend client keeps a socket or timer alive.
process.stdout.write('', () => process.exit(code));
