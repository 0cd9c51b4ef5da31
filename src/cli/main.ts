#!/usr/bin/env node
/**
 * The `leaderlock` command (package.json "bin"). Everything testable lives in cli.ts; this file only
 * wires it to the real process.
 */
import { readFileSync } from 'node:fs';
import { runCli } from './cli.js';

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
