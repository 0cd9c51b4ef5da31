#!/usr/bin/env node
// `npm run test:real`: the second tier, on real servers (issue 14). It first runs
// scripts/real/build.sh (the first run builds kube-apiserver, kubectl, etcd 3.6, Consul, Patroni 4
// and the client-go peer into .cache/real; later runs reuse them; a server it cannot build makes its
// tests fail with the build's message and the tier exit non-zero); then every test/real/**/*.test.ts
// through node:test + tsx, one
// file at a time (three API servers, etcd and Consul are heavy on a 2-core machine), and the etcd
// backend's suite again on etcd 3.6.
// Extra arguments are file filters, as for `npm test`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const cache = process.env.LEADERLOCK_REAL_CACHE ?? join(root, '.cache/real');
const started = Date.now();
const build = spawnSync('bash', [join(root, 'scripts/real/build.sh')], { stdio: 'inherit', cwd: root, env: { ...process.env, LEADERLOCK_REAL_CACHE: cache } });
// A server that could not be built is not skipped: its tests still run and fail with the build's
// message (test/real/harness/bins.ts), the others run as usual, and the tier exits non-zero.
const buildFailed = build.status !== 0;
if (buildFailed) console.error('test:real: some real servers could not be built (see above); their tests will fail and so will the tier.');
else console.log(`test:real: servers ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);

function walk(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
// The etcd backend's own suite (test/backends/etcd) runs here again on the built etcd 3.6; `npm test`
// runs it on the Debian etcd (3.4).
const files = [...walk(join(root, 'test/real')), ...walk(join(root, 'test/backends/etcd'))]
  .map((f) => f.slice(root.length + 1))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const env = { ...process.env, LEADERLOCK_REAL_CACHE: cache, LEADERLOCK_ETCD_BIN: join(cache, 'bin/etcd'), LEADERLOCK_ETCDCTL_BIN: join(cache, 'bin/etcdctl'), CHECKPOINT_DISABLE: '1' };
const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', ...files], { stdio: 'inherit', cwd: root, env });
console.log(`test:real: took ${((Date.now() - started) / 1000).toFixed(1)} s in all`);
if (buildFailed) console.error('test:real: FAILED: the build script failed (see its message above)');
process.exit(buildFailed ? 1 : (r.status ?? 1));
