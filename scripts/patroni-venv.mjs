#!/usr/bin/env node
// The Patroni 4 virtualenv the Patroni interop tests drive (Patroni's DCS code only, no PostgreSQL):
// the one scripts/real/build.sh makes and pins (its `patroni` target; idempotent, cached in
// .cache/real). Output: the venv's python path and Patroni's version on stdout; on failure the build
// script's message on stderr and exit code 1.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const cache = process.env.LEADERLOCK_REAL_CACHE ?? join(root, '.cache/real');
const python = join(cache, 'patroni-venv', 'bin', 'python');
const env = { ...process.env, LEADERLOCK_REAL_CACHE: cache };

const build = spawnSync('bash', [join(root, 'scripts/real/build.sh'), 'patroni'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
if (build.status !== 0) {
  process.stderr.write(`patroni-venv: scripts/real/build.sh patroni failed (exit ${build.status ?? build.signal})\n${build.stderr}`);
  process.exit(1);
}
const v = spawnSync(python, ['-c', 'import patroni.version as v; print(v.__version__)'], { encoding: 'utf8' });
const version = v.stdout?.trim() ?? '';
if (v.status !== 0 || !version.startsWith('4.')) {
  process.stderr.write(`patroni-venv: expected Patroni 4 in ${python}, found ${version || v.stderr}\n`);
  process.exit(1);
}
process.stdout.write(`${python}\n${version}\n`);
