/**
 * Real etcd for tests: single-node and 3-node clusters as child processes on free loopback ports,
 * data dirs on /dev/shm (etcd fsyncs; tmpfs keeps it fast), waits for health, and always cleans up —
 * `stop()` kills every member (also a SIGSTOPped one) and removes the data; a process 'exit' hook
 * kills whatever a crashed test left behind. Binary: $LEADERLOCK_ETCD_BIN or `etcd` on PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Etcd3 } from 'etcd3';

export const ETCD_BIN = process.env.LEADERLOCK_ETCD_BIN ?? 'etcd';
export const ETCDCTL_BIN = process.env.LEADERLOCK_ETCDCTL_BIN ?? 'etcdctl';

export interface EtcdClusterOptions {
  /** 1 (default) or 3. */
  size?: 1 | 3;
  /** Raft heartbeat interval, ms. Default 100 for one node, 25 for three. */
  heartbeatMs?: number;
  /** Raft election timeout, ms. Default 1000 for one node, 250 for three (etcd's minimum lease TTL is 1.5 × this). */
  electionMs?: number;
  /** Extra etcd flags for every member. */
  args?: string[];
}

export interface EtcdMemberProcess {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly running: boolean;
  readonly pid: number | undefined;
  /** SIGKILL (default) or another signal; waits for exit unless the signal only stops it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the member again on the same ports and data (after kill). */
  start(): Promise<void>;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdMemberProcess[];
  /** Kills every member and starts them all again (same data): a full etcd restart. */
  restart(): Promise<void>;
  /** Kills everything and removes the data. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startEtcd(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await tryStart(options);
    } catch (err) {
      // A port taken between freePort() and etcd's bind (other tests run concurrently): try new ports.
      if (attempt >= 2) throw err;
    }
  }
}

async function tryStart(options: EtcdClusterOptions): Promise<EtcdCluster> {
  const size = options.size ?? 1;
  const heartbeat = options.heartbeatMs ?? (size === 1 ? 100 : 25);
  const election = options.electionMs ?? (size === 1 ? 1000 : 250);
  const base = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'leaderlock-etcd-'));
  const specs: { name: string; client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) specs.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const token = `ll-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

  const members = specs.map((s) => {
    const clientUrl = `http://127.0.0.1:${s.client}`;
    const peerUrl = `http://127.0.0.1:${s.peer}`;
    const args = [
      `--name=${s.name}`,
      `--data-dir=${join(base, s.name)}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=new`,
      `--initial-cluster-token=${token}`,
      `--heartbeat-interval=${heartbeat}`,
      `--election-timeout=${election}`,
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=error',
      ...(options.args ?? []),
    ];
    let proc: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();
    let stderr = '';
    const member: EtcdMemberProcess = {
      name: s.name,
      clientUrl,
      peerUrl,
      get running() {
        return proc !== undefined;
      },
      get pid() {
        return proc?.pid;
      },
      async start() {
        if (proc) return;
        const p = spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
        proc = p;
        live.add(p);
        p.stderr!.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-4000);
        });
        exited = new Promise((resolve) =>
          p.once('exit', () => {
            live.delete(p);
            if (proc === p) proc = undefined;
            resolve();
          }),
        );
        p.once('error', (err) => {
          stderr += String(err);
        });
      },
      async kill(signal: NodeJS.Signals = 'SIGKILL') {
        const p = proc;
        if (!p) return;
        p.kill(signal);
        if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') await exited;
      },
    };
    return Object.assign(member, { stderrText: () => stderr });
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(members.map((m) => m.kill('SIGKILL')));
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await waitHealthy(members, 15_000);
  } catch (err) {
    const logs = members.map((m) => `${m.name}: ${m.stderrText()}`).join('\n');
    await stop();
    throw new Error(`etcd did not become healthy: ${String(err)}\n${logs}`);
  }
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    async restart() {
      await Promise.all(members.map((m) => m.kill('SIGKILL')));
      await Promise.all(members.map((m) => m.start()));
      await waitHealthy(members, 15_000);
    },
    stop,
  };
}

/** Polls /health of the running members until each says healthy (quorum reached), bounded. */
export async function waitHealthy(members: readonly EtcdMemberProcess[], timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (const m of members.filter((x) => x.running)) {
    for (;;) {
      if (!m.running) throw new Error(`etcd member ${m.name} exited`);
      try {
        const res = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') break;
      } catch {
        // not up yet
      }
      if (performance.now() > deadline) throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** One etcd for a whole test file, with a raw client next to it (see `etcdForFile`). */
export interface EtcdFileFixture {
  /** Set once the file's `before` hook has run. */
  readonly cluster: EtcdCluster;
  readonly raw: Etcd3;
  /** Run at teardown, the last added first, before the raw client closes and etcd stops; their failures are ignored. */
  readonly cleanups: Array<() => unknown>;
}

/**
 * Registers the `before`/`after` hooks of a test file that uses one etcd: started before the first
 * test, and after the last its cleanups run (locks closed, sessions ended), then the raw client closes
 * and every member is killed.
 */
export function etcdForFile(options: EtcdClusterOptions = {}): EtcdFileFixture {
  const fx = { cleanups: [] as Array<() => unknown> } as { cluster: EtcdCluster; raw: Etcd3; cleanups: Array<() => unknown> };
  before(async () => {
    fx.cluster = await startEtcd(options);
    fx.raw = new Etcd3({ hosts: fx.cluster.endpoints });
  });
  after(async () => {
    for (const c of fx.cleanups.reverse()) await Promise.resolve().then(c).catch(() => undefined);
    fx.raw?.close();
    await fx.cluster?.stop();
  });
  return fx;
}
