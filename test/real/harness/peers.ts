/**
 * The peers of the real-server tier as child processes that speak JSON lines on stdout: the
 * client-go leaderelection program (test/peers/client-go) and Patroni 4's DCS code
 * (test/peers/patroni/dcs_peer.py). stdin stays open: closing it (or SIGTERM) makes a peer release
 * and exit. Every wait is bounded; a peer left running is killed at exit (procs.ts).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { LeaderLock } from '../../../src/core/lock.js';
import { REPO, patroniPython, realBin } from './bins.js';
import { atExit, delay } from './procs.js';

export type PeerEvent = Record<string, unknown> & { event: string };

export class Peer {
  readonly events: PeerEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;
  readonly #waiters = new Set<() => void>();

  constructor(readonly name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.#child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const drop = atExit(() => this.#child.kill('SIGKILL'));
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', (code) => {
        drop();
        this.#notify();
        resolve(code);
      });
      this.#child.once('error', (err) => {
        this.stderr.push(String(err));
        drop();
        resolve(null);
      });
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as PeerEvent);
      } catch {
        this.stderr.push(`stdout: ${line}`);
      }
      this.#notify();
    });
    createInterface({ input: this.#child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 200) this.stderr.shift();
    });
  }

  #notify(): void {
    for (const w of this.#waiters) w();
  }

  /** The first event matching `pred` (already seen or still to come), within `boundMs`. */
  async waitFor(pred: (e: PeerEvent) => boolean, boundMs: number, what: string): Promise<PeerEvent> {
    let wake: () => void = () => undefined;
    const changed = (): Promise<void> => new Promise((r) => (wake = r));
    const start = Date.now();
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      if (this.#child.exitCode !== null || Date.now() - start > boundMs) {
        throw new Error(`${this.name}: no ${what} within ${boundMs} ms (exit ${this.#child.exitCode}); events ${JSON.stringify(this.events)}; stderr:\n${this.stderr.slice(-20).join('\n')}`);
      }
      const next = changed();
      this.#waiters.add(wake);
      await Promise.race([next, delay(250)]);
      this.#waiters.delete(wake);
    }
  }

  /** Close stdin: the peer releases and exits; SIGTERM after half of `boundMs`, SIGKILL after `boundMs`. */
  async stop(boundMs = 15_000): Promise<number | null> {
    this.#child.stdin?.end();
    const timeout = (ms: number): Promise<'timeout'> => delay(ms).then(() => 'timeout' as const);
    let code = await Promise.race([this.exited, timeout(boundMs / 2)]);
    if (code === 'timeout') {
      this.#child.kill('SIGTERM');
      code = await Promise.race([this.exited, timeout(boundMs / 2)]);
    }
    if (code === 'timeout') {
      this.#child.kill('SIGKILL');
      await Promise.race([this.exited, delay(5000)]);
      throw new Error(`${this.name} did not exit within ${boundMs} ms after SIGTERM`);
    }
    return code;
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }

  /** SIGSTOP / SIGCONT (a paused peer), or any other signal. */
  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }

  /** When the peer was spawned (Date.now()). */
  readonly spawnedAt = Date.now();
}

/** The client-go releases the build script built the peer against. */
export function clientGoPeerVersions(): string[] {
  const script = join(REPO, 'scripts/real/build.sh');
  const m = /CLIENTGO_VERSIONS="([^"]+)"/.exec(readFileSync(script, 'utf8'));
  return (m?.[1] ?? '').split(/\s+/).filter(Boolean);
}

export function clientGoPeer(version: string, args: string[]): Peer {
  return new Peer(`client-go ${version} peer`, realBin(`clientgo-peer-${version}`), args);
}

export function patroniPeer(config: Record<string, unknown>, holdS: number, env: NodeJS.ProcessEnv = process.env): Peer {
  return new Peer('patroni', patroniPython(), [join(REPO, 'test/peers/patroni/dcs_peer.py'), JSON.stringify(config), String(holdS)], env);
}

/**
 * The Patroni smoke every backend's real tier runs: Patroni 4 (a `patroniPeer` named `patroni-a`)
 * takes the free leader key, renews it, `ours` reads it as the leader (and, with `tryAcquire`, is
 * refused it), then Patroni releases it, exits 0, and `ours` reads no leader.
 */
export async function assertPatroniTakesHoldsReleases(peer: Peer, ours: LeaderLock, o: { tryAcquire?: boolean } = {}): Promise<void> {
  try {
    const v = await peer.waitFor((e) => e.event === 'version', 30_000, 'version line');
    console.log(`peer: Patroni ${String(v.patroni)} (Python ${String(v.python)}, ${String(v.dcs)} DCS)`);
    assert.match(String(v.patroni), /^4\./);
    assert.equal((await peer.waitFor((e) => e.event === 'acquire', 30_000, 'acquire')).ok, true, 'Patroni takes the free leader key');
    const renew = await peer.waitFor((e) => e.event === 'renew', 10_000, 'first renew');
    assert.equal(renew.ok, true);
    assert.equal(renew.leader, 'patroni-a');
    assert.equal((await ours.get()).leader?.holder, 'patroni-a', 'leaderlock reads Patroni 4’s leader key');
    if (o.tryAcquire) assert.equal(await ours.acquire('node-a'), undefined, 'held by Patroni');
    assert.equal((await peer.waitFor((e) => e.event === 'release', 20_000, 'release')).ok, true);
    assert.equal(await peer.stop(), 0);
    assert.equal((await ours.get()).leader, undefined, 'released: no leader');
  } finally {
    peer.kill();
    await ours.close();
  }
}
