import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    for (const m of [{ type: 'deadline', ms: 1500 }, { type: 'signal', signal: 'SIGTERM', target: 'group' }, { type: 'signal', signal: 'SIGHUP', target: 'leader' }] as const) {
      assert.deepEqual(decodeToReaper(encodeToReaper(m)), m);
    }
    for (const m of [{ type: 'started', pid: 42 }, { type: 'spawn-error', code: 'ENOENT' }, { type: 'killed', why: 'deadline' }, { type: 'gone', code: 3, signal: null }, { type: 'gone', code: null, signal: 'SIGKILL' }] as const) {
      assert.deepEqual(decodeFromReaper(encodeFromReaper(m)), m);
    }
    for (const bad of ['deadline -5', 'deadline soon', 'signal TERM group', 'signal SIGTERM everyone', 'gone x y', 'rm -rf /']) {
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
      // Counted from the reaper's own start, so no later than deadline + its start-up.
      assert.ok(o.afterMs >= 2900 && o.afterMs < 6000, `killed after ${o.afterMs.toFixed(0)} ms`);
      assert.equal(alive(bg), false, 'the background child died with the group');
      assert.equal(alive(c.pid!), false);
    }));

  it('extend() moves the deadline (also when called before the reaper runs); SIGTERM goes to the group', () =>
    withDir(async (dir) => {
      const f = join(dir, 'bg');
      const t0 = performance.now();
      // The first deadline counts from the reaper's own start (later than t0): 5 s leaves room for a
      // slow start under load (a reaper that starts after its deadline never starts the command).
      const c = spawnWatched('sh', ['-c', `sleep 60 & echo $! > ${f}; wait`], process.env, { deadlineMs: 5000, graceMs: 500 });
      const done = outcome(c);
      c.extend(30_000); // before `started`: kept and sent once the reaper reads
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
      const leader = c.pid!;
      process.kill(c.reaperPid!, 'SIGKILL');
      const o = await done;
      assert.equal(o.signal, 'SIGKILL');
      assert.equal(alive(leader), false);
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

  it('a reaper that starts after its first deadline never starts the command', () =>
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
