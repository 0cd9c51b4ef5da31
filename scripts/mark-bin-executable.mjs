#!/usr/bin/env node
// tsc writes files without the execute bit. npm links a package's bins executable when it installs
// from a registry, but not every install path does (an unpacked tarball, some package managers), so
// the bins get their bit here, after the build, and the packed tarball carries it.
// Usage: node scripts/mark-bin-executable.mjs [distDir]   (default: the package's own dist/)
import { chmodSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dist = process.argv[2] ?? join(root, 'dist');
for (const target of Object.values(pkg.bin ?? {})) {
  // bin paths are "./dist/…": re-root them under the dist folder we were given
  const inDist = relative('dist', target);
  chmodSync(join(dist, inDist), 0o755);
}
