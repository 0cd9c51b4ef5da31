/**
 * Where the real-server tier finds its servers and peers: the build script's cache
 * (scripts/real/build.sh, default <repo>/.cache/real). A missing one is an error carrying the build
 * script's own failure message — this tier never skips a server silently.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');
export const CACHE = process.env.LEADERLOCK_REAL_CACHE ?? join(REPO, '.cache/real');
export const BIN = join(CACHE, 'bin');

function buildFailures(): string {
  let names: string[] = [];
  try {
    names = readdirSync(CACHE).filter((n) => n.startsWith('FAILED-'));
  } catch {
    return '';
  }
  return names.map((n) => readFileSync(join(CACHE, n), 'utf8').trim()).join('\n');
}

/** The path of a built binary, or an error saying what the build reported. */
export function realBin(name: string): string {
  const p = join(BIN, name);
  if (!existsSync(p)) {
    const failures = buildFailures();
    throw new Error(`real-server tier: ${p} is missing; run scripts/real/build.sh${failures ? `\nbuild failures:\n${failures}` : ''}`);
  }
  return p;
}

/**
 * Why the build script could not make `name` on this machine at all (its registries do not serve
 * what it needs), or undefined. Tests of such a server are skipped with this reason in their name
 * and summary; a server that merely failed to build is never skipped (realBin throws).
 */
export function realUnavailable(name: string): string | undefined {
  try {
    return `real ${name} unavailable here: ${readFileSync(join(CACHE, `UNAVAILABLE-${name}`), 'utf8').trim()}`;
  } catch {
    return undefined;
  }
}

/** The version the build script stamped next to a binary. */
export function realVersion(name: string): string {
  try {
    return readFileSync(join(BIN, `${name}.version`), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export const PATRONI_PYTHON = join(CACHE, 'patroni-venv/bin/python');
export function patroniPython(): string {
  if (!existsSync(PATRONI_PYTHON)) throw new Error(`real-server tier: ${PATRONI_PYTHON} is missing; run scripts/real/build.sh patroni\n${buildFailures()}`);
  return PATRONI_PYTHON;
}
