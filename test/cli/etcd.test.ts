import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';

/**
 * What the README promises: guard a command with `leaderlock run` on a local etcd, see the leader
 * move with `status`/`watch`. Real processes, real etcd, bounded waits.
 */
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
  waitFor(pattern: RegExp, where: 'stdout' | 'stderr', timeoutMs?: number): Promise<RegExpMatchArray>;
}

const procs: Proc[] = [];

function leaderlock(args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  const waiters = new Set<() => void>();
  const p: Proc = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    waitFor(pattern, where, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const m = p[where].match(pattern);
          if (m) {
            waiters.delete(check as () => void);
            clearTimeout(timer);
            resolve(m);
          }
          return !!m;
        };
        const timer = setTimeout(() => {
          waiters.delete(check as () => void);
          reject(new Error(`timed out waiting for ${pattern} on ${where}; stdout: ${p.stdout} stderr: ${p.stderr}`));
        }, timeoutMs);
        if (!check()) waiters.add(check as () => void);
      });
    },
  };
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', (d: Buffer) => {
    p.stdout += d.toString();
    notify();
  });
  child.stderr!.on('data', (d: Buffer) => {
    p.stderr += d.toString();
    notify();
  });
  procs.push(p);
  return p;
}

async function codes(url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of ['/primary', '/master', '/replica', '/readiness', '/liveness']) out[p] = (await fetch(url + p)).status;
  return out;
}

// Prints its token, exits 5 on SIGUSR1 (forwarded by leaderlock), 0 on SIGTERM.
const DAEMON = [
  process.execPath,
  '-e',
  // Handlers first: "started" tells the test it may signal the command now (printed before them, a
  // loaded host could deliver the test's SIGTERM while the default action still applies).
  'process.on("SIGUSR1", () => process.exit(5)); process.on("SIGTERM", () => process.exit(0));' +
    'console.log(`started ${process.env.LEADERLOCK_IDENTITY} token=${process.env.LEADERLOCK_TOKEN}`); setInterval(() => {}, 1000);',
];

describe('leaderlock run on a local etcd', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('issue 12: run --metadata publishes it with the term; status and watch on another process show it', async () => {
    const backend = `etcd://${etcd.endpoints.map((e) => new URL(e).host).join(',')}`;
    const key = '/service/cli-meta/leader';
    const a = leaderlock(['run', '--backend', backend, '--key', key, '--ttl', '4s', '--identity', 'a', '--metadata', 'http://10.0.0.1:8080', '--', ...DAEMON]);
    await a.waitFor(/started a token=\d+/, 'stdout');
    const status = leaderlock(['status', '--backend', backend, '--key', key, '--json']);
    assert.equal(await status.exit, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { holder: string; metadata?: string };
    assert.equal(s.holder, 'a');
    assert.equal(s.metadata, 'http://10.0.0.1:8080');
    const watch = leaderlock(['watch', '--backend', backend, '--key', key]);
    await watch.waitFor(/holder=a .*metadata="http:\/\/10\.0\.0\.1:8080"/, 'stdout');
    watch.child.kill('SIGINT');
    a.child.kill('SIGTERM');
    assert.equal(await a.exit, 0, a.stderr);
    await watch.exit;
  });

  it('one command runs at a time; when it exits the lock is released and the other candidate takes over at once', async () => {
    const backend = `etcd://${etcd.endpoints.map((e) => new URL(e).host).join(',')}`;
    const common = ['--backend', backend, '--key', '/service/cli/leader', '--ttl', '4s', '--grace', '1s'];
    const watch = leaderlock(['watch', '--backend', backend, '--key', '/service/cli/leader']);
    await watch.waitFor(/no leader/, 'stdout');

    const a = leaderlock(['run', ...common, '--identity', 'a', '--listen', '127.0.0.1:0', '--', ...DAEMON]);
    const [, tokenA] = await a.waitFor(/started a token=(\d+)/, 'stdout');
    const [, urlA] = await a.waitFor(/health endpoints on (http:\/\/[\d.:]+)\//, 'stderr');
    const b = leaderlock(['run', ...common, '--identity', 'b', '--listen', '127.0.0.1:0', '--', ...DAEMON]);
    await b.waitFor(/leader is a; waiting/, 'stderr');
    const [, urlB] = await b.waitFor(/health endpoints on (http:\/\/[\d.:]+)\//, 'stderr');
    assert.doesNotMatch(b.stdout, /started/);
    assert.deepEqual(await codes(urlA!), { '/primary': 200, '/master': 200, '/replica': 503, '/readiness': 200, '/liveness': 200 });
    assert.deepEqual(await codes(urlB!), { '/primary': 503, '/master': 503, '/replica': 200, '/readiness': 200, '/liveness': 200 });
    const metricsA = await (await fetch(`${urlA}/metrics`)).text();
    assert.match(metricsA, new RegExp(`leaderlock_is_leader\\{backend="etcd",key="/service/cli/leader"\\} 1`));
    assert.match(metricsA, new RegExp(`leaderlock_term_token\\{backend="etcd",key="/service/cli/leader"\\} ${tokenA}`));

    const status = leaderlock(['status', '--backend', backend, '--key', '/service/cli/leader', '--json']);
    assert.equal(await status.exit, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { holder: string; token: string; live: boolean; ttlMs: number };
    assert.equal(s.holder, 'a');
    assert.equal(s.token, tokenA);
    assert.equal(s.live, true);

    a.child.kill('SIGUSR1'); // forwarded: a's command exits 5 on its own
    const t0 = performance.now();
    assert.equal(await a.exit, 5, a.stderr);
    const [, tokenB] = await b.waitFor(/started b token=(\d+)/, 'stdout');
    const handoverMs = performance.now() - t0;
    assert.ok(BigInt(tokenB!) > BigInt(tokenA!), 'fencing tokens increase');
    // Release + watch: well under the 4 s ttl (a crash would take up to ttl + a poll).
    assert.ok(handoverMs < 3000, `handover took ${handoverMs.toFixed(0)} ms`);
    assert.deepEqual(await codes(urlB!), { '/primary': 200, '/master': 200, '/replica': 503, '/readiness': 200, '/liveness': 200 });
    assert.match(await (await fetch(`${urlB}/metrics`)).text(), /leaderlock_transitions_total\{backend="etcd",key="\/service\/cli\/leader"\} 1/);

    b.child.kill('SIGTERM');
    assert.equal(await b.exit, 0, b.stderr);
    await watch.waitFor(new RegExp(`holder=b token=${tokenB}[^\\n]*\\n[^\\n]*no leader`), 'stdout');
    watch.child.kill('SIGINT');
    assert.equal(await watch.exit, 0);
    const lines = watch.stdout.trim().split('\n');
    const order = lines.map((l) => (/holder=(\w+)/.exec(l)?.[1] ?? '-')).filter((h, i, all) => h !== all[i - 1]);
    assert.deepEqual(order, ['-', 'a', '-', 'b', '-']);
  });
});
