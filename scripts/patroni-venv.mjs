#!/usr/bin/env node
// Creates (once) the virtualenv the Patroni interop tests drive: Patroni's DCS code only, no
// PostgreSQL. Idempotent: a venv whose recorded version matches PATRONI_SPEC is reused as is.
// Pinned: `patroni[psycopg3,etcd3,consul,kubernetes]==4.1.*` — the Patroni 4 line issue 16 is about
// (Patroni imports psycopg at start even to use only its DCS classes; the binary wheel needs no libpq).
// Output: the venv's python path on stdout; on failure a clear message and exit code 1.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PATRONI_SPEC = 'patroni[psycopg3,etcd3,consul,kubernetes]==4.1.*';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, '.cache', 'interop-venv');
const python = join(venv, 'bin', 'python');
const stamp = join(venv, 'leaderlock-spec.txt');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`patroni-venv: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})\n${r.stdout ?? ''}${r.stderr ?? ''}\n`);
    process.stderr.write('patroni-venv: the Patroni interop tests need python3 (with venv) and PyPI access to install ' + PATRONI_SPEC + '\n');
    process.exit(1);
  }
  return r.stdout;
}

if (!(existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === PATRONI_SPEC && existsSync(python))) {
  mkdirSync(dirname(venv), { recursive: true });
  run(process.env.PYTHON ?? 'python3', ['-m', 'venv', '--clear', venv]);
  run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', PATRONI_SPEC]);
  writeFileSync(stamp, PATRONI_SPEC + '\n');
}
const version = run(python, ['-c', 'import patroni.version as v; print(v.__version__)']).trim();
if (!version.startsWith('4.1.')) {
  process.stderr.write(`patroni-venv: expected Patroni 4.1.x in ${venv}, found ${version}\n`);
  process.exit(1);
}
process.stdout.write(`${python}\n${version}\n`);
