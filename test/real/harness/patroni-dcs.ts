/**
 * Patroni 4's own DCS classes as a peer, one command per Python run of test/peers/patroni/dcs.py in
 * the build script's pinned virtualenv (scripts/real/build.sh patroni). A missing venv fails with the
 * build script's message (bins.ts), never a skip.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, patroniPython } from './bins.js';

const run = promisify(execFile);

/** What dcs.py's `cluster` command reports. */
export interface PatroniCluster {
  leader: string | null;
  failover: { leader: string | null; member: string | null; scheduled_at: string | null } | null;
  members: string[];
}

/** Runs one dcs.py command with `config` (dcs, hosts, scope, name, ttl, …); resolves its last JSON line. */
export async function patroniDcs<T>(config: Record<string, unknown>, cmd: string, args: readonly string[] = [], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<T> {
  const { stdout } = await run(patroniPython(), [join(REPO, 'test/peers/patroni/dcs.py'), JSON.stringify(config), cmd, ...args], { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

/** "Patroni 4.1.5 via <python>", for the suite's opening line (the version the build script pinned). */
export function patroniBanner(): string {
  const python = patroniPython();
  const pinned = readFileSync(join(dirname(dirname(python)), '.version'), 'utf8').trim();
  return `Patroni ${pinned} via ${python}`;
}
