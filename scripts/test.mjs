#!/usr/bin/env node
// `npm test`: every test/**/*.test.ts (and examples/**/*.test.ts) through node:test + tsx.
// Node 20's --test does not expand globs itself, so we list the files here.
// Extra arguments are file filters: `npm test -- memory` runs files whose path contains "memory".
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    // test/real is the second tier (`npm run test:real`): real servers, built first.
    if (p === join('test', 'real')) continue;
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = ['test', 'examples']
  .flatMap((d) => {
    try {
      return walk(d);
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
