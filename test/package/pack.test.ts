import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * The published package works for a user: `npm pack`, install the tarball into an empty ESM project,
 * import every entry point, typecheck a TypeScript file that uses each entry's types, run the bin.
 *
 * How it works from any npm cache and leaves the repo alone:
 * - the build goes to a temporary staging copy (tsc -p tsconfig.build.json --outDir <stage>/dist and
 *   the same bin chmod as `npm run build`, plus package.json, README.md, LICENSE), never to the repo's
 *   dist/, and `npm pack` runs there;
 * - the tarball is installed as a user installs it: `npm install --prefer-offline` (cached metadata and
 *   tarballs where the cache has them, the registry otherwise). A new machine's cache is empty, and
 *   `npm ci` fills it with tarballs but not with the metadata an install resolves against, so an
 *   `--offline` install fails there (ENOTCACHED).
 * - Only when the registry cannot be reached either does the test unpack the tarball into
 *   node_modules/leaderlock and link the repo's node_modules as its dependencies; the project's own
 *   `@types/node` comes from the repo too, and the bin link relies on the execute bit the tarball carries.
 */
const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(REPO, 'node_modules/typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string; exports: Record<string, unknown>; files: string[]; bin: Record<string, string>; devDependencies: Record<string, string> };
/** The same @types/node range the repo builds with. */
const TYPES_NODE = pkg.devDependencies['@types/node']!;
const ENTRIES = Object.keys(pkg.exports).filter((k) => k !== './package.json');

/** Names DESIGN.md promises per entry point. */
const PROMISED: Record<string, string[]> = {
  '.': ['LeaderElector', 'Term', 'LeaderLockError', 'ConfigError', 'LockLostError', 'BackendUnavailableError', 'DeadlineExceededError', 'ForbiddenError', 'MalformedRecordError'],
  './memory': ['MemoryLock', 'MemoryStore'],
  './etcd': ['EtcdLock'],
  './consul': ['ConsulLock'],
  './kubernetes': ['KubernetesLock', 'KubeClient', 'serviceResolver', 'endpointsResolver', 'staticResolver'],
  './http': ['createHealthHandler'],
  './testing': ['VirtualClock', 'FakeKubeApiServer', 'FakeConsulServer', 'lockConformance'],
};

const TYPES_CHECK = `
import { LeaderElector, Term, ConfigError, type LeaderLock, type LeaderRecord, type LockState, type LostReason } from 'leaderlock';
import { MemoryLock, MemoryStore } from 'leaderlock/memory';
import { EtcdLock } from 'leaderlock/etcd';
import { ConsulLock } from 'leaderlock/consul';
import { KubernetesLock, KubeClient, serviceResolver, endpointsResolver, staticResolver } from 'leaderlock/kubernetes';
import { createHealthHandler, type HealthStatus } from 'leaderlock/http';
import { VirtualClock, FakeKubeApiServer, FakeConsulServer, lockConformance } from 'leaderlock/testing';
import { createServer } from 'node:http';

const clock = new VirtualClock();
const lock: LeaderLock = new MemoryLock(new MemoryStore({ clock }), { key: 'k', ttlMs: 15_000, clock });
const elector = new LeaderElector(lock, { identity: 'a', renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
elector.on('elected', (term: Term) => { const t: bigint = term.token; void t; });
elector.on('lost', (_term: Term, reason: LostReason) => void reason);
const status: HealthStatus = elector.status();
const token: bigint | undefined = status.token;
const handler = createHealthHandler(elector);
createServer(handler).close();
const state: Promise<LockState> = lock.get();
const rec: LeaderRecord | undefined = undefined;
const err: unknown = new ConfigError(['x']);
type Ctors = [typeof EtcdLock, typeof ConsulLock, typeof KubernetesLock, typeof KubeClient, typeof FakeKubeApiServer, typeof FakeConsulServer];
const fns = [serviceResolver, endpointsResolver, staticResolver, lockConformance] as const;
// @ts-expect-error identity is required
new LeaderElector(lock, {});
export { token, state, rec, err, fns };
export type { Ctors };
`;

const RUNTIME_CHECK = `
import { createServer } from 'node:http';
const entries = ${JSON.stringify(ENTRIES)};
const out = {};
for (const e of entries) {
  const mod = await import(e === '.' ? 'leaderlock' : 'leaderlock/' + e.slice(2));
  out[e] = Object.keys(mod).sort();
}
// /metrics without the optional peer dependency prom-client: built in (issue 12.5).
const { createHealthHandler } = await import('leaderlock/http');
const h = createHealthHandler({ status: () => ({ identity: 'a', role: 'leader', isValid: true, loopStalled: false }) });
const server = createServer(h);
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = 'http://127.0.0.1:' + server.address().port;
const metrics = await fetch(base + '/metrics');
const leader = await fetch(base + '/leader');
out.metrics = { status: metrics.status, body: await metrics.text() };
out.leader = leader.status;
server.close();
console.log(JSON.stringify(out));
`;

describe('npm package (pack → install → import → typecheck)', () => {
  let work: string;
  let proj: string;
  let tarball: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'leaderlock-pack-'));
    const stage = join(work, 'stage');
    proj = join(work, 'proj');
    mkdirSync(stage);
    mkdirSync(proj);
    await exec(process.execPath, [TSC, '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')], { cwd: REPO, maxBuffer: 1 << 24 }).catch((e: { stdout?: string }) => {
      // Type errors elsewhere still emit JavaScript; the checks below decide whether it is usable.
      if (!existsSync(join(stage, 'dist', 'index.js'))) throw new Error(`build failed: ${e.stdout ?? String(e)}`);
    });
    await exec(process.execPath, [join(REPO, 'scripts/mark-bin-executable.mjs'), join(stage, 'dist')]);
    for (const f of ['package.json', 'README.md', 'LICENSE']) if (existsSync(join(REPO, f))) cpSync(join(REPO, f), join(stage, f));
    const packed = await exec('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', work], { cwd: stage });
    tarball = join(work, packed.stdout.trim().split('\n').at(-1)!);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'pack-test', version: '0.0.0', private: true, type: 'module' }));
    try {
      // @types/node: the typecheck below compiles the user's file against Node's types, as a user's project would.
      await exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', tarball, `@types/node@${TYPES_NODE}`], {
        cwd: proj,
        maxBuffer: 1 << 24,
        timeout: 240_000,
      });
    } catch (err) {
      console.error(`pack test: npm install of the tarball failed, linking the repo's dependencies instead: ${String(err).split('\n')[0]}`);
      const dest = join(proj, 'node_modules', 'leaderlock');
      mkdirSync(dest, { recursive: true });
      await exec('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1']);
      symlinkSync(join(REPO, 'node_modules'), join(dest, 'node_modules'), 'dir');
      mkdirSync(join(proj, 'node_modules', '@types'), { recursive: true });
      symlinkSync(join(REPO, 'node_modules', '@types', 'node'), join(proj, 'node_modules', '@types', 'node'), 'dir');
      mkdirSync(join(proj, 'node_modules', '.bin'), { recursive: true });
      symlinkSync(join(dest, pkg.bin.leaderlock!), join(proj, 'node_modules', '.bin', 'leaderlock'));
    }
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds dist, README and LICENSE, and no sources or tests', async () => {
    const { stdout } = await exec('tar', ['-tzf', tarball]);
    const files = stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    assert.ok(files.includes('LICENSE'));
    assert.ok(files.includes('package.json'));
    for (const e of ENTRIES) {
      const base = e === '.' ? 'dist/index' : `dist/${e === './memory' || e === './etcd' || e === './consul' || e === './kubernetes' ? 'backends/' : ''}${e.slice(2)}/index`;
      assert.ok(files.includes(`${base}.js`) && files.includes(`${base}.d.ts`), `${base}.js and .d.ts packed`);
    }
    assert.ok(files.includes('dist/cli/main.js'));
    const { stdout: long } = await exec('tar', ['-tvzf', tarball]);
    const binLine = long.split('\n').find((l) => l.endsWith(' package/dist/cli/main.js'));
    assert.match(binLine ?? '', /^-rwxr-xr-x /, 'the bin is executable in the tarball');
    assert.ok(files.includes('dist/cli/reaper.js'), "run's watchdog process is packed");
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.test.js')), 'no sources or tests');
  });

  it('every entry point imports from ESM with the promised names; /metrics works without prom-client', async () => {
    writeFileSync(join(proj, 'runtime-check.mjs'), RUNTIME_CHECK);
    const { stdout } = await exec(process.execPath, ['runtime-check.mjs'], { cwd: proj });
    const out = JSON.parse(stdout) as Record<string, string[]> & { metrics: { status: number; body: string }; leader: number };
    for (const e of ENTRIES) {
      assert.ok(out[e]!.length > 0, `${e} exports something`);
      for (const name of PROMISED[e] ?? []) assert.ok(out[e]!.includes(name), `${e} exports ${name}`);
    }
    assert.equal(out.leader, 200);
    // Built in, so the same with or without prom-client installed next to it.
    assert.equal(out.metrics.status, 200, out.metrics.body);
    assert.match(out.metrics.body, /^leaderlock_is_leader(\{[^}]*\})? 1$/m);
  });

  it('the types of every entry point typecheck in a strict NodeNext project (skipLibCheck off)', async () => {
    writeFileSync(join(proj, 'check.ts'), TYPES_CHECK);
    writeFileSync(
      join(proj, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
        files: ['check.ts'],
      }),
    );
    const r = await exec(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: proj, maxBuffer: 1 << 24 }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
    assert.ok(!('failed' in r), `tsc reported:\n${r.stdout}`);
  });

  it('the leaderlock bin runs (shebang, ESM) and answers --version and explain', async () => {
    const bin = join(proj, 'node_modules', '.bin', 'leaderlock');
    const v = await exec(bin, ['--version'], { cwd: proj });
    assert.equal(v.stdout.trim(), pkg.version);
    const e = await exec(bin, ['explain', '--ttl', '15s'], { cwd: proj });
    assert.match(e.stdout, /crash failover/);
    const bad = await exec(bin, ['run', '--backend', 'nope://x', '--key', 'k', '--', 'true'], { cwd: proj }).catch((err: { code: number; stderr: string }) => err);
    assert.equal((bad as { code: number }).code, 64);
    assert.doesNotMatch((bad as { stderr: string }).stderr, /\n\s+at /);
    assert.ok(readdirSync(join(proj, 'node_modules', 'leaderlock', 'dist', 'cli')).includes('main.js'));
  });

  it('leaderlock run starts the command under the packed watchdog (dist/cli/reaper.js, no tsx)', async () => {
    const main = join(proj, 'node_modules', 'leaderlock', pkg.bin.leaderlock!);
    const r = await exec(process.execPath, [main, 'run', '--backend', 'memory', '--key', 'k', '--quiet', '--', process.execPath, '-e', 'console.log("ran " + process.env.LEADERLOCK_TOKEN); process.exit(3)'], { cwd: proj, timeout: 30_000 }).catch(
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.equal((r as { code?: number }).code, 3, `stderr: ${(r as { stderr: string }).stderr}`);
    assert.match((r as { stdout: string }).stdout, /^ran \d+$/m);
  });
});
