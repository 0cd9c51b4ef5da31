import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { generateServerCertificates } from '../../src/testing/certs.js';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/cli.js';
import { stateLine, stateToJson } from '../../src/cli/read-commands.js';
import { BackendUnavailableError, DeadlineExceededError, ForbiddenError, MalformedRecordError } from '../../src/core/errors.js';
import type { LeaderLock } from '../../src/core/lock.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `leaderlock` entry (through tsx) with a hard time bound. */
function cli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; onStdout?: (text: string, pid: number) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, DEBUG: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout, child.pid!);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`leaderlock ${args.join(' ')} did not finish in time; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('exit', (code) => {
      clearTimeout(bound);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLineUsage(r: Result, pattern: RegExp): void {
  assert.equal(r.code, 64, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^leaderlock: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('leaderlock CLI: user errors exit 64 with one line saying what to fix', { concurrency: true }, () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown backend URL', ['run', '--backend', 'zookeeper://127.0.0.1:2181', '--key', 'k', '--', 'true'], /unknown backend scheme "zookeeper:\/\/": use etcd:\/\//],
    ['bad port', ['status', '--backend', 'etcd://127.0.0.1:99999', '--key', 'k'], /port 99999 is out of range/],
    ['missing --key', ['status', '--backend', 'memory'], /missing --key/],
    ['unknown flag', ['run', '--backend', 'memory', '--key', 'k', '--ttl-ms', '5', '--', 'true'], /unknown option '--ttl-ms'/],
    ['duration without unit', ['run', '--backend', 'memory', '--key', 'k', '--ttl', '15', '--', 'true'], /--ttl 15 needs a unit: 15s or 15ms/],
    ['no command', ['run', '--backend', 'memory', '--key', 'k'], /missing the command to run/],
    ['grace does not fit', ['run', '--backend', 'memory', '--key', 'k', '--ttl', '3s', '--grace', '3s', '--', 'true'], /--grace 3s does not fit in the term/],
    ['unsafe timings', ['run', '--backend', 'memory', '--key', 'k', '--ttl', '10s', '--renew-deadline', '12s', '--', 'true'], /invalid options: --renew-deadline \(12000 ms\) must be less than --ttl/],
    ['unknown command', ['elect', '--backend', 'memory'], /unknown command "elect"/],
    ['credentials in the URL', ['status', '--backend', 'etcd://root:secret@127.0.0.1:2379', '--key', 'k'], /credentials do not belong in the URL/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const r = await cli(args);
      assertOneLineUsage(r, pattern);
      assert.doesNotMatch(r.stderr, /secret/);
    });
  }

  it('issue 12: kubernetes without a kubeconfig names --kubeconfig, $KUBECONFIG and in-cluster', async () => {
    const r = await cli(['status', '--backend', 'kubernetes', '--key', 'x'], { env: { KUBECONFIG: '/nonexistent/leaderlock-kubeconfig', KUBERNETES_SERVICE_HOST: '' } });
    assertOneLineUsage(r, /no kubeconfig found \(looked at \/nonexistent\/leaderlock-kubeconfig\).*--kubeconfig.*\$KUBECONFIG.*in-cluster/);
  });
});

describe('leaderlock CLI (in process): error messages that say what to do (issue 12)', { concurrency: true }, () => {
  // In process (runCli), not spawned: the same report() writes the line, without 20 tsx start-ups at once.
  const cases: Array<[string, string[], RegExp]> = [
    ['issue 12: a ttl below the backend minimum names the flag', ['status', '--backend', 'etcd://127.0.0.1:2379', '--key', 'k', '--ttl', '500ms'], /invalid options: --ttl must be at least 1000 ms, got 500 ms$/],
    ['issue 12: a negative duration is not "ambiguous"', ['run', '--backend', 'memory', '--key', 'k', '--ttl', '-1s', '--', 'true'], /--ttl must be more than 0, got -1s/],
    ['issue 12: a negative duration with =', ['run', '--backend', 'memory', '--key', 'k', '--ttl=-1s', '--', 'true'], /--ttl must be more than 0, got -1s$/],
    ['issue 12: another value starting with a dash', ['status', '--backend', 'memory', '--key', '-k'], /--key -k: a value starting with '-' looks like a flag; write --key=-k if you mean it/],
    ['issue 12: metadata over 1 KiB', ['run', '--backend', 'memory', '--key', 'k', '--metadata', 'x'.repeat(1025), '--', 'true'], /invalid options: --metadata must be at most 1024 bytes of UTF-8, got 1025/],
    ['issue 12: a blank identity', ['run', '--backend', 'memory', '--key', 'k', '--identity', ' ', '--', 'true'], /--identity must be non-blank without control characters, got " "/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const err: string[] = [];
      const code = await runCli(args, { out: () => undefined, err: (l) => err.push(l), env: {}, signals: new EventEmitter() as never, spawn: () => assert.fail('must not start the command') });
      assert.equal(code, 64, err.join('\n'));
      const lines = err.filter((l) => !/campaigning/.test(l));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, /^leaderlock: /);
      assert.match(lines[0]!, pattern);
    });
  }
});

// Its own suite: generating the certificates (selfsigned, pure JS) blocks this process's event loop
// for seconds, which must not overlap the bounded waits of the spawned cases above.
describe('leaderlock CLI: etcds:// to an IP host', () => {
  it('issue 12: etcds:// to an IP prints no DEP0123 warning (the certificate is still checked against the IP)', async (t) => {
    const certs = await generateServerCertificates({ caName: 'test-ca', serverName: 'etcd', dnsNames: [], ips: ['127.0.0.1'], missingMessage: 'selfsigned missing' });
    const dir = mkdtempSync(join(tmpdir(), 'leaderlock-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ca.pem'), certs.ca);
    let handshakes = 0;
    const server = createTlsServer({ cert: certs.cert, key: certs.key, ALPNProtocols: ['h2'] }, (socket) => {
      handshakes++;
      socket.destroy(); // not etcd: the client sees an unavailable member
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const r = await cli(['status', '--backend', `etcds://127.0.0.1:${port}`, '--cacert', join(dir, 'ca.pem'), '--key', 'k', '--request-timeout', '1s']);
    assert.equal(r.code, 69, r.stderr);
    assert.ok(handshakes > 0, 'the client completed a TLS handshake (certificate accepted for the IP)');
    assert.doesNotMatch(r.stderr, /DEP0123|DeprecationWarning/);
  });
});

describe('leaderlock status/watch output (issue 12)', () => {
  it('shows the leader metadata when the holder published one', () => {
    const now = new Date('2026-01-01T00:00:10Z');
    const j = stateToJson('k', 'memory', { leader: { holder: 'a', token: 3n, ttlMs: 15_000, live: true, metadata: 'http://10.0.0.1:8080' } }, now);
    assert.equal(j.metadata, 'http://10.0.0.1:8080');
    assert.match(stateLine(j), /holder=a token=3 .*metadata="http:\/\/10\.0\.0\.1:8080"/);
    assert.equal('metadata' in stateToJson('k', 'memory', { leader: { holder: 'a', token: 3n, ttlMs: 15_000, live: true } }, now), false);
  });
});

describe('leaderlock CLI: run, status, explain', { concurrency: true }, () => {
  it('run exits with the command\'s code and passes the fencing token', async () => {
    const r = await cli(['run', '--backend', 'memory', '--key', 'k', '--', process.execPath, '-e', 'console.log("token=" + process.env.LEADERLOCK_TOKEN); process.exit(7)']);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stdout, /^token=\d+$/m);
  });

  it('run forwards SIGTERM to the command and exits with its code', async () => {
    const script = 'process.on("SIGTERM", () => { console.log("child got SIGTERM"); process.exit(0); }); console.log("ready"); setInterval(() => {}, 1000);';
    let sent = false;
    const r = await cli(['run', '--backend', 'memory', '--key', 'k', '--', process.execPath, '-e', script], {
      onStdout: (text, pid) => {
        if (!sent && text.includes('ready')) {
          sent = true;
          process.kill(pid, 'SIGTERM');
        }
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /child got SIGTERM/);
  });

  it('a command that cannot be found exits 127', async () => {
    const r = await cli(['run', '--backend', 'memory', '--key', 'k', '--quiet', '--', 'leaderlock-no-such-command-for-test']);
    assert.equal(r.code, 127);
    assert.match(r.stderr, /cannot run leaderlock-no-such-command-for-test: ENOENT/);
  });

  it('an unreachable etcd exits 69 without a stack trace', async () => {
    const port = await closedPort();
    const r = await cli(['status', '--backend', `etcd://127.0.0.1:${port}`, '--key', '/service/x/leader', '--ttl', '5s', '--request-timeout', '1s']);
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /^leaderlock: backend unavailable: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('status --json reports no leader on an empty store; explain prints the implications', async () => {
    const s = await cli(['status', '--backend', 'memory', '--key', 'k', '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(JSON.parse(s.stdout), { backend: 'memory', key: 'k', holder: null, token: null, ttlMs: null, live: false, successor: null, acquiredAt: null, renewedAt: null, ageMs: null, renewedAgoMs: null });
    const e = await cli(['explain', '--ttl', '15s']);
    assert.equal(e.code, 0);
    assert.match(e.stdout, /crash failover: up to 17 s/);
    const bad = await cli(['explain', '--ttl', '5s', '--renew-deadline', '6s', '--json']);
    assert.equal(bad.code, 64);
    assert.equal((JSON.parse(bad.stdout) as { ok: boolean }).ok, false);
  });
});

describe('leaderlock CLI: backend failures map to sysexits codes', () => {
  function io(lock: Partial<LeaderLock>) {
    const err: string[] = [];
    const out: string[] = [];
    return {
      err,
      out,
      io: {
        out: (l: string) => out.push(l),
        err: (l: string) => err.push(l),
        env: {},
        signals: new EventEmitter() as never,
        openLock: async () => Object.assign(new EventEmitter(), { ttlMs: 15000, backend: 'etcd', close: async () => undefined, ...lock }) as unknown as LeaderLock,
      },
    };
  }
  const cases: Array<[string, Error, number, RegExp]> = [
    ['unreachable', new BackendUnavailableError('etcd read failed: connect ECONNREFUSED 127.0.0.1:2379', { backend: 'etcd' }), 69, /backend unavailable: etcd read failed/],
    ['forbidden', new ForbiddenError('leases "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get', { backend: 'kubernetes', status: 403 }), 77, /permission denied: leases "x" is forbidden/],
    ['malformed record', new MalformedRecordError('the record at /k cannot be parsed', { backend: 'etcd' }), 65, /cannot be parsed/],
  ];
  for (const [name, error, code, pattern] of cases) {
    it(`${name} → ${code}`, async () => {
      for (const command of ['status', 'watch']) {
        const t = io({ get: async () => Promise.reject(error) });
        assert.equal(await runCli([command, '--backend', 'etcd://127.0.0.1:2379', '--key', '/k'], t.io), code);
        assert.equal(t.err.length, 1);
        assert.match(t.err[0]!, pattern);
      }
      const t = io({ get: async () => Promise.reject(error) });
      assert.equal(await runCli(['run', '--backend', 'etcd://127.0.0.1:2379', '--key', '/k', '--', 'true'], t.io), code);
    });
  }
  it('issue 13: a start-up read that timed out (a busy host, a frozen member) is tried again within the bound, not exit 69', async () => {
    let reads = 0;
    const timedOut = new DeadlineExceededError('etcd read: no answer within 600 ms (Waiting for LB pick)', { backend: 'etcd' });
    const t = io({
      get: async () => (++reads === 1 ? Promise.reject(timedOut) : {}),
      // watch ends at once: the command then exits 0 having printed nothing more.
      watch: async function* () {},
    });
    assert.equal(await runCli(['watch', '--backend', 'etcd://127.0.0.1:2379', '--key', '/k', '--request-timeout', '600ms'], t.io), 0, t.err.join('\n'));
    assert.equal(reads, 2);
    // Still exit 69 when every read within the bound times out.
    const down = io({ get: async () => Promise.reject(timedOut) });
    assert.equal(await runCli(['watch', '--backend', 'etcd://127.0.0.1:2379', '--key', '/k', '--request-timeout', '100ms'], down.io), 69);
    assert.match(down.err[0]!, /backend unavailable/);
  });
  it('issue 12: run --listen serves /metrics out of the box, with prom-client not importable', async (t) => {
    // A resolve hook makes `import('prom-client')` fail as if it were not installed (npx, global installs).
    const hook = `export async function resolve(s, c, next) { if (s === 'prom-client') throw Object.assign(new Error('blocked by test'), { code: 'ERR_MODULE_NOT_FOUND' }); return next(s, c); }`;
    const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
    const child = spawn(
      process.execPath,
      ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--import', 'tsx', MAIN, 'run', '--backend', 'memory', '--key', 'k', '--listen', '127.0.0.1:0', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)'],
      { env: { ...process.env, DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      const bound = setTimeout(() => reject(new Error(`no health endpoint line; stderr: ${stderr}`)), 20_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /health endpoints on (http:\/\/[\d.:]+)\//.exec(stderr);
        if (m && /elected/.test(stderr)) {
          clearTimeout(bound);
          resolve(m[1]!);
        }
      });
    });
    const probe = await fetch(`${url}/metrics`);
    const body = await probe.text();
    assert.equal(probe.status, 200, body);
    assert.match(body, /leaderlock_is_leader\{backend="memory",key="k"\} 1/);
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGTERM');
    await exited;
  });

  it('--listen on a port in use is a usage error (64) naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const t = io({});
      const code = await runCli(['run', '--backend', 'memory', '--key', 'k', '--listen', `127.0.0.1:${port}`, '--', 'true'], { ...t.io, openLock: undefined, spawn: () => assert.fail('must not start the command') });
      assert.equal(code, 64);
      assert.deepEqual(t.err.filter((l) => !/campaigning/.test(l)), [`leaderlock: cannot listen on 127.0.0.1:${port} (--listen): EADDRINUSE`]);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('an unexpected error says "internal error" on one line, the stack only with DEBUG=leaderlock:*', async () => {
    const t = io({ get: async () => Promise.reject(new TypeError('x is not a function')) });
    assert.equal(await runCli(['status', '--backend', 'memory', '--key', 'k'], t.io), 70);
    assert.deepEqual(t.err, ['leaderlock: internal error: x is not a function (DEBUG=leaderlock:* shows details)']);
  });
});
