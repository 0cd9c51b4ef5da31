import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import type { RunArgs } from '../../src/cli/args.js';
import { supervise, type ChildLike, type SignalSource } from '../../src/cli/supervise.js';
import { UsageError } from '../../src/cli/usage-error.js';

/** A child process that records the signals it gets (with the virtual time) and exits when told. */
class FakeChild extends EventEmitter implements ChildLike {
  readonly pid: number;
  readonly received: Array<{ signal: string; at: number }> = [];
  /** Watchdog deadlines set: [virtual time, ms from then]. */
  readonly extended: Array<{ at: number; ms: number }> = [];
  exited = false;
  constructor(
    readonly env: NodeJS.ProcessEnv,
    readonly clock: VirtualClock,
    pid: number,
    /** Signals on which it exits by itself (with 128 + n); others are ignored like a stuck daemon. */
    readonly diesOn: readonly string[],
  ) {
    super();
    this.pid = pid;
  }
  kill(signal: NodeJS.Signals): boolean {
    if (this.exited) return false;
    this.received.push({ signal, at: this.clock.now() });
    if (signal === 'SIGKILL' || this.diesOn.includes(signal)) queueMicrotask(() => this.exit(null, signal));
    return true;
  }
  extend(ms: number): void {
    this.extended.push({ at: this.clock.now(), ms });
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.exited) return;
    this.exited = true;
    this.emit('exit', code, signal);
  }
}

class FakeSignals extends EventEmitter implements SignalSource {
  send(sig: NodeJS.Signals): void {
    this.emit(sig);
  }
}

function setup(opts: { diesOn?: string[]; once?: boolean; graceMs?: number } = {}) {
  const clock = new VirtualClock();
  const store = new MemoryStore({ clock });
  const lock = new MemoryLock(store, { key: 'leader', ttlMs: 15_000, clock });
  const children: FakeChild[] = [];
  const spawned: Array<{ deadlineMs: number; graceMs: number }> = [];
  const signals = new FakeSignals();
  const args: RunArgs = {
    backend: { kind: 'memory' },
    key: 'leader',
    ttlMs: 15_000,
    tls: {},
    identity: 'node-a',
    graceMs: opts.graceMs ?? 2000,
    renewDeadlineMs: undefined,
    retryPeriodMs: undefined,
    once: opts.once ?? false,
    quiet: false,
    command: 'daemon',
    commandArgs: ['--flag'],
  };
  const lines: string[] = [];
  const run = supervise(args, {
    lock,
    clock,
    signals,
    env: { PATH: '/bin' },
    log: (l) => lines.push(l),
    spawn: (cmd, a, env, o) => {
      spawned.push(o);
      assert.equal(cmd, 'daemon');
      assert.deepEqual(a, ['--flag']);
      const c = new FakeChild(env, clock, 100 + children.length, opts.diesOn ?? ['SIGTERM', 'SIGINT']);
      children.push(c);
      return c;
    },
  });
  return { clock, store, lock, children, spawned, signals, run, lines };
}

describe('leaderlock run (supervisor, on a virtual clock)', () => {
  it('starts the command with the token in LEADERLOCK_TOKEN, releases and exits with its code when it exits', async () => {
    const t = setup();
    await t.clock.advance(0);
    assert.equal(t.children.length, 1);
    const c = t.children[0]!;
    const token = t.store.record('leader')!.token;
    assert.equal(c.env.LEADERLOCK_TOKEN, token.toString());
    assert.equal(c.env.LEADERLOCK_IDENTITY, 'node-a');
    assert.equal(c.env.PATH, '/bin');
    await t.clock.advance(30_000); // renewals keep it; nothing is signalled while healthy
    assert.deepEqual(c.received, []);
    assert.equal(t.store.record('leader')?.holder, 'node-a');
    c.exit(3);
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 3);
    assert.equal(t.store.record('leader'), undefined, 'the lock is released when the command exits');
  });

  it('a taken key: SIGTERM at once, restarted with a higher token in the next term won', async () => {
    const t = setup();
    await t.clock.advance(0);
    const first = t.children[0]!;
    const token1 = t.store.record('leader')!.token;
    t.store.forceDelete('leader'); // an operator (or another writer) takes the key away
    const other = t.store.create('leader', 'intruder', 15_000);
    assert.ok(other.ok);
    await t.clock.advance(2_000); // next renew finds it taken
    assert.equal(first.received[0]?.signal, 'SIGTERM');
    assert.equal(first.exited, true);
    await t.clock.advance(20_000); // the intruder's record expires; we win again
    assert.equal(t.children.length, 2);
    assert.ok(BigInt(t.children[1]!.env.LEADERLOCK_TOKEN!) > token1);
    t.signals.send('SIGTERM');
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 143);
  });

  it('renewals failing: SIGTERM no later than validUntil − grace, SIGKILL a lead (¼ grace, ≤ 250 ms) before validUntil for a command that ignores SIGTERM', async () => {
    // grace 6 s > ttl·(1−drift) − renewDeadline (4.85 s): the grace timer, not the elector's deadline, fires first.
    const t = setup({ diesOn: [], graceMs: 6000 });
    await t.clock.advance(0);
    const c = t.children[0]!;
    await t.clock.advance(1_000);
    t.lock.faults.partition();
    // validUntil only moves on confirmed renewals: it is the last refresh the store saw (sent with no
    // latency, so send time = store time) + ttl·(1 − drift), i.e. the server's expiry − ttl·drift.
    await t.clock.advance(2_500);
    const validUntil = t.store.record('leader')!.expiresAt - 15_000 * 0.01;
    await t.clock.advance(20_000);
    const term = c.received.find((r) => r.signal === 'SIGTERM');
    const kill = c.received.find((r) => r.signal === 'SIGKILL');
    assert.ok(term && kill, `got ${JSON.stringify(c.received)}`);
    assert.ok(term.at <= validUntil - 6000, `SIGTERM at ${term.at}, validUntil ${validUntil}`);
    assert.ok(kill.at <= validUntil - 250 && kill.at >= validUntil - 300, `SIGKILL at ${kill.at}, validUntil ${validUntil}`);
    assert.ok(kill.at - term.at <= 6000);
    t.lock.faults.heal();
    t.signals.send('SIGINT');
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 130);
  });

  it('--once: after a lost term the command is stopped and leaderlock exits with its code, no restart', async () => {
    const t = setup({ once: true });
    await t.clock.advance(0);
    t.store.forceDelete('leader');
    t.store.create('leader', 'intruder', 15_000);
    await t.clock.advance(2_000);
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 143); // the fake dies of SIGTERM
    assert.equal(t.children.length, 1);
  });

  it('forwards SIGHUP/SIGUSR1 as is; SIGTERM is forwarded and the exit code is the child\'s', async () => {
    const t = setup({ diesOn: [] });
    await t.clock.advance(0);
    const c = t.children[0]!;
    t.signals.send('SIGHUP');
    t.signals.send('SIGUSR1');
    t.signals.send('SIGTERM');
    assert.deepEqual(c.received.map((r) => r.signal), ['SIGHUP', 'SIGUSR1', 'SIGTERM']);
    c.exit(0); // a clean shutdown after SIGTERM
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 0);
    assert.equal(t.store.record('leader'), undefined);
    assert.equal(t.signals.listenerCount('SIGTERM'), 0, 'signal handlers are removed');
  });

  it('SIGTERM while following: exits 143 without ever starting the command', async () => {
    const clock = new VirtualClock();
    const store = new MemoryStore({ clock });
    store.create('leader', 'node-b', 15_000);
    const t = setupWith(store, clock);
    await clock.advance(5_000);
    assert.equal(t.children.length, 0);
    t.signals.send('SIGTERM');
    await clock.runUntilIdle();
    assert.equal(await t.run, 143);
    assert.ok(t.lines.some((l) => l.includes('leader is node-b')));
  });

  it('watchdog: the first deadline is the time left in the term, and every confirmed renew moves it to the new validUntil (less the kill lead)', async () => {
    const t = setup();
    await t.clock.advance(0);
    const c = t.children[0]!;
    // Acquired at t=0 with no latency: validUntil = ttl × (1 − drift) = 14,850 ms; the kill lead is
    // a quarter of the 2 s grace, capped at 250 ms.
    assert.deepEqual(t.spawned, [{ deadlineMs: 14_600, graceMs: 2000 }]);
    await t.clock.advance(6_000); // three renews (retry period 2 s)
    assert.ok(c.extended.length >= 3, `extended ${JSON.stringify(c.extended)}`);
    for (const e of c.extended) assert.equal(e.at + e.ms, Math.floor(e.at / 2000) * 2000 + 14_600, `deadline = that renew's send + ttl·(1 − drift) − 250 ms: ${JSON.stringify(e)}`);
    t.lock.faults.partition();
    const before = c.extended.length;
    await t.clock.advance(4_000);
    assert.equal(c.extended.length, before, 'a failed renew never extends the watchdog');
    t.lock.faults.heal();
    t.signals.send('SIGTERM');
    await t.clock.runUntilIdle();
    await t.run;
  });

  it('the watchdog killed the command at validUntil (supervisor was frozen): campaigns again, does not exit with 137', async () => {
    const t = setup();
    await t.clock.advance(0);
    const c = t.children[0]!;
    c.emit('watchdog', 'deadline');
    c.exit(null, 'SIGKILL');
    await t.clock.advance(20_000);
    assert.equal(t.children.length, 2, 'the command was started again in a new term');
    assert.ok(t.lines.some((l) => l.includes('waiting to be elected again')));
    t.signals.send('SIGTERM');
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 143);
  });

  it('shutdown: the key is released only once the command (its whole group) is gone', async () => {
    const t = setup({ diesOn: [] });
    await t.clock.advance(0);
    const c = t.children[0]!;
    t.signals.send('SIGTERM');
    await t.clock.advance(5_000); // still shutting down: renewals go on, the key stays ours
    assert.equal(t.store.record('leader')?.holder, 'node-a');
    c.exit(0);
    await t.clock.runUntilIdle();
    assert.equal(await t.run, 0);
    assert.equal(t.store.record('leader'), undefined);
  });

  it('refuses a grace that does not fit in the term', async () => {
    const clock = new VirtualClock();
    const lock = new MemoryLock(new MemoryStore({ clock }), { ttlMs: 15_000, clock });
    await assert.rejects(
      supervise({ ...baseArgs(), graceMs: 13_000 }, { lock, clock, signals: new FakeSignals(), spawn: () => assert.fail('spawned') }),
      (err: unknown) => err instanceof UsageError && /--grace 13s does not fit/.test(err.message),
    );
  });
});

function baseArgs(): RunArgs {
  return { backend: { kind: 'memory' }, key: 'leader', ttlMs: 15_000, tls: {}, identity: 'node-a', graceMs: 2000, renewDeadlineMs: undefined, retryPeriodMs: undefined, once: false, quiet: false, command: 'daemon', commandArgs: [] };
}

function setupWith(store: MemoryStore, clock: VirtualClock) {
  const lock = new MemoryLock(store, { key: 'leader', ttlMs: 15_000, clock });
  const signals = new FakeSignals();
  const children: FakeChild[] = [];
  const lines: string[] = [];
  const run = supervise(baseArgs(), {
    lock,
    clock,
    signals,
    log: (l) => lines.push(l),
    spawn: (_c, _a, env) => {
      const c = new FakeChild(env, clock, 1, ['SIGTERM']);
      children.push(c);
      return c;
    },
  });
  return { run, signals, children, lines };
}
