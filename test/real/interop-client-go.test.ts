/**
 * Issue 16, client-go items, with the REAL peer: client-go's own `leaderelection` (test/peers/client-go,
 * built against each client-go release in scripts/real/build.sh) and leaderlock on one Lease of real
 * kube-apiservers (harness/kube.ts). The same items are proven exactly, on a virtual clock, against a
 * model of client-go in test/backends/kubernetes/interop.test.ts; here the figures are real time.
 *
 * Both sides run with a 4 s lease: client-go LeaseDuration 4s, RenewDeadline 3s, RetryPeriod 500ms;
 * our LeaderElector ttlMs 4000, renewDeadlineMs 2500, retryPeriodMs 500. A watch of the Lease (LeaseLog)
 * records every write with the time we received it and its `renewTime` (written by the holder from the
 * clock of this host). Whoever takes over observed the last change no earlier than that write was sent,
 * so "taker − renewTime of the last write it could see as a change ≥ lease duration" is what must hold
 * from outside; figures are printed for every run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Term, LostReason } from '../../src/core/lock.js';
import { KubeClient } from '../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../src/backends/kubernetes/lock.js';
import { LeaderElector } from '../../src/elector/index.js';
import { REPO, realBin } from './harness/bins.js';
import { startKubeCluster, type KubeCluster } from './harness/kube.js';
import { Peer, clientGoPeer, clientGoPeerVersions, type PeerEvent } from './harness/peers.js';
import { delay, sh, waitFor } from './harness/procs.js';

const TTL = 4000;
const RETRY = 500;
const GO_TIMING = ['-lease-duration', '4s', '-renew-deadline', '3s', '-retry-period', '500ms'];
/** Slack for a loaded 2-core box (other tests may run beside this file): bounds, never figures. */
const SLACK = 2500;
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

let cluster: KubeCluster;
const clients = new Set<KubeClient>();
function client(): KubeClient {
  const c = new KubeClient({ ...cluster.clientOptions(), requestTimeoutMs: 5000 });
  c.on('warning', () => undefined);
  clients.add(c);
  return c;
}

it('the servers and peers this file needs were built (scripts/real/build.sh)', () => {
  realBin('kube-apiserver');
  for (const v of clientGoPeerVersions()) realBin(`clientgo-peer-${v}`);
});

before(async () => {
  const started = Date.now();
  cluster = await startKubeCluster();
  console.log(`real server: kube-apiserver ${sh(realBin('kube-apiserver'), ['--version']).trim()} ×3, up in ${Date.now() - started} ms`);
});
after(async () => {
  await Promise.allSettled([...clients].map((c) => c.close()));
  await cluster?.stop();
});

interface LeaseWrite {
  at: number;
  type: string;
  holder?: string;
  /** renewTime as written by the holder (ms since the epoch; this host's clock). */
  renew?: number;
  transitions?: number;
}

/** Every event of one Lease as a watch delivers it (restarted if it breaks), with the time received. */
class LeaseLog {
  readonly writes: LeaseWrite[] = [];
  readonly #ac = new AbortController();
  readonly #done: Promise<void>;
  constructor(readonly name: string) {
    const api = client();
    this.#done = (async () => {
      for (let i = 0; i < 50 && !this.#ac.signal.aborted; i++) {
        try {
          for await (const ev of api.watch({ path: LEASES, query: { fieldSelector: `metadata.name=${name}` }, signal: this.#ac.signal })) {
            const o = ev.object as { spec?: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number } };
            this.writes.push({ at: Date.now(), type: ev.type, holder: o.spec?.holderIdentity, renew: o.spec?.renewTime ? Date.parse(o.spec.renewTime) : undefined, transitions: o.spec?.leaseTransitions });
          }
        } catch {
          await delay(100);
        }
      }
    })();
  }
  last(holder: string): LeaseWrite | undefined {
    return this.writes.filter((w) => w.holder === holder && w.type !== 'DELETED').at(-1);
  }
  /**
   * The first write by `holder` whose renewTime falls in the same wall-clock second as its last one:
   * client-go compares records with renewTime at second precision, so that is the last change it
   * could observe (issue 16 item 4).
   */
  firstOfLastSecond(holder: string): LeaseWrite | undefined {
    const last = this.last(holder);
    if (last?.renew === undefined) return undefined;
    const sec = Math.floor(last.renew / 1000);
    return this.writes.find((w) => w.holder === holder && w.renew !== undefined && Math.floor(w.renew / 1000) === sec);
  }
  async close(): Promise<void> {
    this.#ac.abort();
    await this.#done;
  }
}

/** Our side in this process: a LeaderElector on the Lease, with every event timed. */
class Ours {
  readonly lock: KubernetesLock;
  readonly elector: LeaderElector;
  readonly elected: { at: number; term: Term }[] = [];
  readonly lost: { at: number; reason: LostReason }[] = [];
  readonly warnings: { at: number; message: string }[] = [];
  constructor(name: string, identity: string) {
    this.lock = new KubernetesLock({ client: client(), kind: 'Lease', name, ttlMs: TTL, requestTimeoutMs: 2000 });
    this.elector = new LeaderElector(this.lock, { identity, retryPeriodMs: RETRY, renewDeadlineMs: 2500 });
    this.elector.on('elected', (term: Term) => this.elected.push({ at: Date.now(), term }));
    this.elector.on('lost', (_term: Term, reason: LostReason) => this.lost.push({ at: Date.now(), reason }));
    this.elector.on('warning', (err: Error) => this.warnings.push({ at: Date.now(), message: err.message }));
  }
  async close(): Promise<void> {
    await this.elector.stop().catch(() => undefined);
    await this.lock.close().catch(() => undefined);
  }
}

function goPeer(version: string, name: string, identity: string): Peer {
  return clientGoPeer(version, ['-server', cluster.serviceUrl, '-ca-file', cluster.caFile, '-token-file', cluster.tokenFile, '-name', name, '-identity', identity, ...GO_TIMING]);
}
const at = (e: PeerEvent): number => Date.parse(String(e.t));
const newLeader = (id: string) => (e: PeerEvent): boolean => e.event === 'new-leader' && e.identity === id;

/** leaderlock's CLI as a separate process (`leaderlock run … -- sleep`), so it can be SIGKILLed. */
function cliHolder(name: string, identity: string, command: string[] = ['sleep', '600']): Peer {
  const main = join(REPO, 'src/cli/main.ts');
  return new Peer('leaderlock run', process.execPath, ['--conditions=source', '--import', 'tsx', main, 'run', '--backend', 'kubernetes:lease', '--kubeconfig', cluster.kubeconfig, '--namespace', 'default', '--key', name, '--ttl', '4s', '--retry-period', '500ms', '--renew-deadline', '2500ms', '--identity', identity, '--once', '--quiet', '--', ...command]);
}

let seq = 0;
for (const version of clientGoPeerVersions()) {
  const tag = version.replace(/\./g, '-');
  describe(`issue 16 with the real client-go ${version} leaderelection peer`, () => {
    it('(a) take-over after a release, both ways: at once, not after the lease', async () => {
      const name = `cgo-rel-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const go = goPeer(version, name, 'go-peer');
      const ours = new Ours(name, 'node-a');
      let go2: Peer | undefined;
      try {
        const v = await go.waitFor((e) => e.event === 'version', 10_000, 'version line');
        assert.equal(v.clientGo, version);
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await ours.elector.start();
        assert.equal(ours.elected.length, 0, 'client-go leads: we wait');
        await delay(1000);
        // client-go → us: ReleaseOnCancel writes a released record; our watch takes it.
        const stopAt = Date.now();
        assert.equal(await go.stop(), 0);
        await waitFor('our elected', TTL + SLACK * 2, () => ours.elected.length > 0);
        const stopped = at(await go.waitFor((e) => e.event === 'stopped-leading', 1000, 'stopped-leading'));
        const goToUs = ours.elected[0]!.at - stopAt;
        // us → client-go: our release; client-go polls every RetryPeriod (jitter 1.2), so up to ~1.1 s.
        go2 = goPeer(version, name, 'go-peer-2');
        await go2.waitFor(newLeader('node-a'), 20_000, 'new-leader node-a');
        const releaseAt = Date.now();
        await ours.elector.stop();
        const took = at(await go2.waitFor((e) => e.event === 'started-leading', TTL + SLACK * 2, 'started-leading after our release'));
        const usToGo = took - releaseAt;
        console.log(`client-go ${version} (a) release take-over: client-go → leaderlock ${goToUs} ms from the peer's stop (${ours.elected[0]!.at - stopped} ms after its stopped-leading); leaderlock → client-go ${usToGo} ms from our stop()`);
        // client-go's release is a PUT with the resourceVersion it last saw: when SIGTERM cancels a renew
        // whose write the server applied, that PUT meets a 409 and nothing is released (client-go logs
        // it and exits). Then taking over after its lease is the right behaviour, not a slow one.
        const released = log.writes.some((w) => w.type === 'MODIFIED' && !w.holder && w.at <= ours.elected[0]!.at);
        const writes = (): string => JSON.stringify(log.writes.map((w) => ({ at: w.at - stopAt, type: w.type, holder: w.holder, renew: w.renew === undefined ? undefined : w.renew - stopAt })));
        if (released) assert.ok(goToUs < TTL, `client-go → us after its release: ${goToUs} ms, not a lease (${TTL} ms); Lease writes (ms from the stop): ${writes()}`);
        else {
          const lastGo = log.last('go-peer')!;
          console.log(`client-go ${version} (a): its release did not land (cancelled renew, 409); we took over ${ours.elected[0]!.at - lastGo.renew!} ms after its last renewTime`);
          assert.ok(ours.elected[0]!.at - lastGo.renew! >= TTL, 'an unreleased client-go record is waited out for its lease');
        }
        assert.ok(usToGo < TTL, `us → client-go after our release: ${usToGo} ms, not a lease (${TTL} ms)`);
      } finally {
        go.kill();
        go2?.kill();
        await ours.close();
        await log.close();
      }
    });

    it('(b) take-over after SIGKILL of the holder, both ways: never before the lease duration after the last change the taker could observe', async () => {
      const name = `cgo-kill-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const go = goPeer(version, name, 'go-peer');
      const ours = new Ours(name, 'node-a');
      let cli: Peer | undefined;
      let go2: Peer | undefined;
      try {
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await ours.elector.start();
        await delay(1500);
        // client-go killed → we take over.
        go.kill();
        const killedAt = Date.now();
        await waitFor('our elected', TTL + SLACK * 3, () => ours.elected.length > 0);
        const took = ours.elected[0]!.at;
        const lastGo = log.last('go-peer')!;
        const fromWrite = took - lastGo.renew!;
        const fromSeen = took - lastGo.at;
        console.log(`client-go ${version} (b) SIGKILL client-go → leaderlock: elected ${fromWrite} ms after client-go's last renewTime, ${fromSeen} ms after our watch received it, ${took - killedAt} ms after the kill (lease ${TTL} ms)`);
        assert.ok(fromWrite >= TTL, `we took over ${fromWrite} ms after client-go's last write: earlier than its lease`);
        assert.ok(fromWrite <= TTL + RETRY + SLACK, `and not much later: ${fromWrite} ms`);
        await ours.close();

        // leaderlock (a separate `leaderlock run` process) killed → client-go takes over.
        const name2 = `${name}-r`;
        const log2 = new LeaseLog(name2);
        try {
          cli = cliHolder(name2, 'll-cli');
          await waitFor('leaderlock run leads', 30_000, () => log2.last('ll-cli') !== undefined, () => cli!.stderr.slice(-10).join('\n'));
          go2 = goPeer(version, name2, 'go-peer-2');
          await go2.waitFor(newLeader('ll-cli'), 20_000, 'new-leader ll-cli');
          await delay(1500);
          cli.kill();
          const killed2 = Date.now();
          const took2 = at(await go2.waitFor((e) => e.event === 'started-leading', TTL + SLACK * 3, 'started-leading after the kill'));
          const first = log2.firstOfLastSecond('ll-cli')!;
          const last = log2.last('ll-cli')!;
          const fromChange = took2 - first.renew!;
          console.log(`client-go ${version} (b) SIGKILL leaderlock → client-go: started leading ${fromChange} ms after our first write in the last renewTime second (the last change client-go can see), ${took2 - last.renew!} ms after our last write, ${took2 - killed2} ms after the kill (lease ${TTL} ms)`);
          assert.ok(fromChange >= TTL, `client-go took over ${fromChange} ms after the last change it could observe: earlier than the lease`);
          assert.ok(fromChange <= TTL + 2.2 * RETRY + SLACK, `and not much later: ${fromChange} ms`);
        } finally {
          await log2.close();
        }
      } finally {
        go.kill();
        go2?.kill();
        cli?.kill();
        await ours.close();
        await log.close();
      }
    });

    it('(b) SIGSTOP of `leaderlock run` longer than the lease: its command is dead before client-go leads', async () => {
      const name = `cgo-stop-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const dir = mkdtempSync(join(tmpdir(), 'cgo-stop-'));
      const beats = join(dir, 'beats');
      // The guarded command writes a heartbeat (ms since the epoch) every 20 ms while it lives.
      const cli = cliHolder(name, 'll-cli', ['sh', '-c', `while :; do date +%s%3N >> ${beats}; sleep 0.02; done`]);
      let go: Peer | undefined;
      try {
        await waitFor('leaderlock run leads', 30_000, () => log.last('ll-cli') !== undefined, () => cli.stderr.slice(-10).join('\n'));
        go = goPeer(version, name, 'go-peer');
        await go.waitFor(newLeader('ll-cli'), 20_000, 'new-leader ll-cli');
        await delay(1500);
        cli.signal('SIGSTOP');
        const stoppedAt = Date.now();
        const took = at(await go.waitFor((e) => e.event === 'started-leading', TTL + SLACK * 3, 'started-leading after the SIGSTOP'));
        const lastBeat = Number(readFileSync(beats, 'utf8').trim().split('\n').at(-1));
        const first = log.firstOfLastSecond('ll-cli')!;
        console.log(`client-go ${version} (b) SIGSTOP leaderlock run → client-go: command's last heartbeat ${took - lastBeat} ms before client-go started leading (${lastBeat - stoppedAt} ms after the SIGSTOP); client-go led ${took - first.renew!} ms after the last change it could see`);
        assert.ok(lastBeat < took, `the guarded command was still alive ${lastBeat - took} ms after client-go started leading`);
        assert.ok(took - first.renew! >= TTL, `client-go took over ${took - first.renew!} ms after the last change it could observe`);
      } finally {
        cli.signal('SIGCONT');
        cli.kill();
        go?.kill();
        await log.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('(c) same identity on both sides (item 2): our term ends `taken`, with a warning, within a retryPeriod of client-go’s renewal', async () => {
      const name = `cgo-same-${tag}-${++seq}`;
      const ours = new Ours(name, 'pod-0');
      let go: Peer | undefined;
      try {
        await ours.elector.start();
        assert.equal(ours.elected.length, 1, 'we lead first');
        await delay(1000);
        go = goPeer(version, name, 'pod-0');
        const started = at(await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading (client-go takes our record for its own)'));
        await waitFor('our term lost', RETRY + SLACK * 2, () => ours.lost.length > 0);
        const lost = ours.lost[0]!;
        const figure = lost.at - started;
        const warn = ours.warnings.find((w) => /under our identity "pod-0"/.test(w.message));
        console.log(`client-go ${version} (c) same identity: our term ended "${lost.reason}" ${figure} ms after client-go's started-leading (${lost.at - go.spawnedAt} ms after the peer was spawned); retryPeriod ${RETRY} ms; warning: ${warn?.message ?? 'none'}`);
        assert.equal(lost.reason, 'taken');
        assert.ok(warn, `a warning names the clash; got ${JSON.stringify(ours.warnings)}`);
        assert.ok(figure <= RETRY + SLACK, `term ended ${figure} ms after client-go's renewal: more than a retryPeriod (${RETRY} ms) + slack`);
        // And we do not take it back while client-go renews it.
        await delay(2 * RETRY);
        assert.equal(ours.elected.length, 1, 'no second term beside the live client-go holder');
      } finally {
        go?.kill();
        await ours.close();
      }
    });

    it('(d) Lease deleted while client-go leads (item 1): we do not re-create it before the last holder’s countdown ends', async () => {
      const name = `cgo-del-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const admin = cluster.admin();
      const go = goPeer(version, name, 'go-peer');
      const ours = new Ours(name, 'node-a');
      try {
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await ours.elector.start();
        await delay(1500);
        assert.equal(ours.elected.length, 0);
        // 1. client-go running: it re-creates the Lease itself at its next retry; we stay back.
        const deletedAt = Date.now();
        await admin.request({ method: 'DELETE', path: `${LEASES}/${name}` });
        await waitFor('the Lease re-created', TTL + SLACK, () => log.writes.some((w) => w.type === 'ADDED' && w.at >= deletedAt));
        const added = log.writes.find((w) => w.type === 'ADDED' && w.at >= deletedAt)!;
        console.log(`client-go ${version} (d) delete with client-go live: re-created by "${added.holder}" (leaseTransitions ${added.transitions}) ${added.at - deletedAt} ms after the delete`);
        assert.equal(added.holder, 'go-peer', 'client-go re-creates it, not our candidate');
        assert.equal(ours.elected.length, 0);

        // 2. client-go paused (SIGSTOP) and the Lease deleted: nobody re-creates it at once; we create
        // it only when the countdown from client-go's last write has ended.
        await delay(1000);
        go.signal('SIGSTOP');
        await delay(200); // a renew in flight lands
        const lastGo = log.last('go-peer')!;
        const deleted2 = Date.now();
        await admin.request({ method: 'DELETE', path: `${LEASES}/${name}` });
        await waitFor('our elected', TTL + SLACK * 3, () => ours.elected.length > 0);
        const took = ours.elected[0]!.at;
        const created = log.writes.find((w) => w.type === 'ADDED' && w.at >= deleted2);
        const fromWrite = took - lastGo.renew!;
        console.log(`client-go ${version} (d) delete with client-go paused: we re-created the Lease ${fromWrite} ms after client-go's last renewTime (${took - lastGo.at} ms after our watch received it), ${took - deleted2} ms after the delete (lease ${TTL} ms); token ${ours.elected[0]!.term.token}`);
        assert.equal(created?.holder, 'node-a');
        assert.ok(fromWrite >= TTL, `we re-created the Lease ${fromWrite} ms after client-go's last write: before its countdown ended`);
        assert.ok(fromWrite <= TTL + RETRY + SLACK, `and not much later: ${fromWrite} ms`);
        // The paused client-go, resumed, finds the Lease taken and steps down.
        go.signal('SIGCONT');
        await go.waitFor((e) => e.event === 'stopped-leading', 3000 + SLACK * 2, 'stopped-leading after SIGCONT');
      } finally {
        go.signal('SIGCONT');
        go.kill();
        await ours.close();
        await log.close();
        await admin.close();
      }
    });
  });
}
