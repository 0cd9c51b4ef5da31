import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATE_SCRIPT } from '../../src/cli/process-group.js';
import { hostMonotonicMs } from '../../src/core/clock.js';
import { spawnWatched, type WatchedCommand } from '../../src/cli/watchdog.js';
import { decodeFromReaper, decodeToReaper, encodeFromReaper, encodeToReaper, LineReader } from '../../src/cli/watchdog-protocol.js';

/** The watchdog with real processes (no backend): what kills the command's process group, and when. */

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Outcome {
  code: number | null;
  signal: string | null;
  error?: NodeJS.ErrnoException;
  watchdog: boolean;
  afterMs: number;
}

/** Resolves when the watched command reports gone (or an error), bounded; records whether the reaper killed it. */
function outcome(c: WatchedCommand, boundMs = 15_000): Promise<Outcome> {
  const t0 = performance.now();
  let watchdog = false;
  c.on('watchdog', () => (watchdog = true));
  return new Promise((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error(`no exit within ${boundMs} ms`)), boundMs);
    c.once('exit', (code: number | null, signal: string | null) => {
      clearTimeout(bound);
      resolve({ code, signal, watchdog, afterMs: performance.now() - t0 });
    });
    c.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(bound);
      resolve({ code: null, signal: null, error, watchdog, afterMs: performance.now() - t0 });
    });
  });
}

/** Waits (bounded) until the command has written its background child's pid to `file`. */
async function pidFrom(file: string): Promise<number> {
  for (let i = 0; i < 600; i++) {
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (text) return Number(text);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${file} not written in 15 s`);
}

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'leaderlock-watchdog-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe('watchdog protocol', () => {
  it('round-trips every message and rejects garbage', () => {
    for (const m of [{ type: 'deadline', ms: 1500 }, { type: 'deadline', ms: 1500, at: 8_123_456.789 }, { type: 'signal', signal: 'SIGTERM', target: 'group' }, { type: 'signal', signal: 'SIGHUP', target: 'leader' }] as const) {
      assert.deepEqual(decodeToReaper(encodeToReaper(m)), m);
    }
    for (const m of [{ type: 'ready' }, { type: 'started', pid: 42 }, { type: 'spawn-error', code: 'ENOENT' }, { type: 'killed', why: 'deadline' }, { type: 'gone', code: 3, signal: null }, { type: 'gone', code: null, signal: 'SIGKILL' }] as const) {
      assert.deepEqual(decodeFromReaper(encodeFromReaper(m)), m);
    }
    for (const bad of ['deadline -5', 'deadline soon', 'deadline 5 yesterday', 'signal TERM group', 'signal SIGTERM everyone', 'gone x y', 'rm -rf /']) {
      assert.equal(decodeToReaper(bad) ?? decodeFromReaper(bad), undefined, bad);
    }
    assert.equal(encodeToReaper({ type: 'deadline', ms: -3 }), 'deadline 0\n', 'a deadline in the past is now');
  });

  it('splits a stream into lines across chunks and drops an over-long line', () => {
    const got: string[] = [];
    const r = new LineReader((l) => got.push(l));
    r.push('dead');
    r.push('line 5\nsig');
    r.push('nal SIGKILL group\n');
    r.push('x'.repeat(300));
    r.push('\ndeadline 7\n');
    assert.deepEqual(got, ['deadline 5', 'signal SIGKILL group', 'deadline 7']);
  });
});

describe('the start gate (the command runs only once its pid is reported)', () => {
  async function gate(write: string | undefined, script: string, dir: string): Promise<{ code: number | null; out: string }> {
    const f = join(dir, 'out');
    const c = spawn('/bin/sh', ['-c', GATE_SCRIPT, 'sh', '-c', script.replaceAll('OUT', f)], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    const fd3 = c.stdio[3] as Socket;
    if (write === undefined) fd3.destroy();
    else fd3.end(write);
    const code = await new Promise<number | null>((resolve) => c.once('exit', resolve));
    return { code, out: existsSync(f) ? readFileSync(f, 'utf8').trim() : '' };
  }

  it('EOF instead of the go line: the command never runs (exit 125)', () =>
    withDir(async (dir) => {
      assert.deepEqual(await gate(undefined, 'echo ran > OUT', dir), { code: 125, out: '' });
    }));

  it('after the go line the command runs with its arguments, in the same process, with fd 3 closed', () =>
    withDir(async (dir) => {
      const r = await gate('go\n', '[ -e /proc/self/fd/3 ] && echo "fd3 open $0" > OUT || echo "fd3 closed $0" > OUT; exit 4', dir);
      assert.deepEqual(r, { code: 4, out: 'fd3 closed sh' });
    }));
});

describe('watchdog (reaper) with real processes', { concurrency: true }, () => {
  it('not extended: SIGKILLs the whole group (the command and what it started) at the deadline', () =>
    withDir(async (dir) => {
      const f = join(dir, 'bg');
      const c = spawnWatched('sh', ['-c', `trap '' TERM; sleep 60 & echo $! > ${f}; exec sleep 60`], process.env, { deadlineMs: 3000, graceMs: 500 });
      const done = outcome(c);
      const bg = await pidFrom(f);
      const o = await done;
      assert.equal(o.signal, 'SIGKILL');
      assert.equal(o.watchdog, true, 'the reaper reported that it killed the group');
      // The reaper's start-up is not added (the handshake answers with the time left then).
      assert.ok(o.afterMs >= 2000 && o.afterMs < 6000, `killed after ${o.afterMs.toFixed(0)} ms`);
      assert.equal(alive(bg), false, 'the background child died with the group');
      assert.equal(alive(c.pid!), false);
    }));

  it('extend() moves the deadline (also when called before the reaper runs); SIGTERM goes to the group', () =>
    withDir(async (dir) => {
      const f = join(dir, 'bg');
      const t0 = performance.now();
      const c = spawnWatched('sh', ['-c', `sleep 60 & echo $! > ${f}; wait`], process.env, { deadlineMs: 5000, graceMs: 500 });
      const done = outcome(c);
      c.extend(30_000); // before `ready`: kept and sent as the answer to it
      const bg = await pidFrom(f);
      const pastFirstDeadline = Math.max(0, t0 + 6500 - performance.now());
      const early = await Promise.race([done, new Promise<'running'>((r) => setTimeout(() => r('running'), pastFirstDeadline))]);
      assert.equal(early, 'running', 'not killed at the first deadline');
      assert.equal(c.kill('SIGTERM'), true);
      const o = await done;
      assert.equal(o.watchdog, false);
      assert.equal(o.signal, 'SIGTERM', 'sh (waiting) dies of SIGTERM');
      assert.equal(alive(bg), false, 'SIGTERM reached the background child too');
    }));

  it('the reaper killed (kill -9): the command and its group die too', () =>
    withDir(async (dir) => {
      const f = join(dir, 'bg');
      const c = spawnWatched('sh', ['-c', `trap '' TERM; sleep 60 & echo $! > ${f}; exec sleep 60`], process.env, { deadlineMs: 60_000, graceMs: 500 });
      const done = outcome(c);
      const bg = await pidFrom(f);
      process.kill(c.reaperPid!, 'SIGKILL');
      const o = await done;
      assert.equal(o.error, undefined, 'the pid was known before the command ran');
      assert.equal(o.signal, 'SIGKILL');
      assert.equal(alive(c.pid!), false);
      assert.equal(alive(bg), false);
    }));

  it('the command exits leaving a child behind: the leftover gets SIGTERM, exit is reported once the group is empty', () =>
    withDir(async (dir) => {
      const f = join(dir, 'bg');
      const c = spawnWatched('sh', ['-c', `sleep 60 & echo $! > ${f}; sleep 0.3; exit 3`], process.env, { deadlineMs: 60_000, graceMs: 5000 });
      const done = outcome(c);
      const bg = await pidFrom(f);
      const o = await done;
      assert.equal(o.code, 3, 'the command\'s own exit code');
      assert.equal(alive(bg), false, 'the leftover was gone before exit was reported');
    }));

  it('the term ran out before the reaper was ready: the command never starts', () =>
    withDir(async (dir) => {
      const f = join(dir, 'started');
      const o = await outcome(spawnWatched('sh', ['-c', `echo yes > ${f}`], process.env, { deadlineMs: 0, graceMs: 500 }));
      assert.equal(o.watchdog, true);
      assert.equal(o.signal, 'SIGKILL');
      assert.equal(existsSync(f), false, 'the command never ran');
    }));

  it('a command that does not exist: error ENOENT, nothing started', async () => {
    const o = await outcome(spawnWatched('leaderlock-no-such-command-for-test', [], process.env, { deadlineMs: 60_000, graceMs: 500 }));
    assert.equal(o.error?.code, 'ENOENT');
  });
});

describe('the reaper counts a deadline from when the supervisor measured it, not from when it read it', () => {
  it('a `deadline` line that spent 1 s in transit kills 1 s earlier (on the host monotonic clock), never later than from its reading', async () => {
    const reaper = fileURLToPath(new URL('../../src/cli/reaper.ts', import.meta.url));
    const r = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', reaper, '500', '--', 'sleep', '60'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    const control = r.stdio[3] as Socket;
    const lines: { line: string; at: number }[] = [];
    const waiters: (() => void)[] = [];
    const reader = new LineReader((line) => {
      lines.push({ line, at: hostMonotonicMs() });
      for (const w of waiters.splice(0)) w();
    });
    control.on('data', (d: Buffer) => reader.push(d));
    const next = async (prefix: string): Promise<{ line: string; at: number }> => {
      const bound = hostMonotonicMs() + 15_000;
      for (let seen = lines.find((l) => l.line.startsWith(prefix)); ; seen = lines.find((l) => l.line.startsWith(prefix))) {
        if (seen) return seen;
        assert.ok(hostMonotonicMs() < bound, `no "${prefix}" from the reaper in 15 s: ${JSON.stringify(lines)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    };
    try {
      await next('ready');
      control.write(encodeToReaper({ type: 'deadline', ms: 30_000, at: hostMonotonicMs() }));
      await next('started');
      // A renew's deadline measured 1 s ago (a supervisor frozen just after writing it, a reaper
      // that read it late): 1.5 s from then is 0.5 s from now.
      const sent = hostMonotonicMs();
      control.write(encodeToReaper({ type: 'deadline', ms: 1500, at: sent - 1000 }));
      const killed = await next('killed deadline');
      const after = killed.at - sent;
      assert.ok(after >= 450 && after < 1300, `killed ${after.toFixed(0)} ms after the line was written (due at 500)`);
      await next('gone');
    } finally {
      r.kill('SIGKILL');
      control.destroy();
    }
  });
});
