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
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  // Coordinated leader election (beta, off by default): only with the gate does the server keep a
  // Lease's strategy/preferredHolder (item 7); its controller acts only on Leases with LeaseCandidates.
  cluster = await startKubeCluster({ apiServerFlags: ['--feature-gates=CoordinatedLeaderElection=true', '--runtime-config=coordination.k8s.io/v1beta1=true'] });
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
  preferredHolder?: string;
  strategy?: string;
  /** Our `leaderlock.io/successor` annotation, when present. */
  successor?: string;
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
            const o = ev.object as { metadata?: { annotations?: Record<string, string> }; spec?: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number; preferredHolder?: string; strategy?: string } };
            this.writes.push({
              at: Date.now(),
              type: ev.type,
              holder: o.spec?.holderIdentity,
              renew: o.spec?.renewTime ? Date.parse(o.spec.renewTime) : undefined,
              transitions: o.spec?.leaseTransitions,
              preferredHolder: o.spec?.preferredHolder,
              strategy: o.spec?.strategy,
              successor: o.metadata?.annotations?.['leaderlock.io/successor'],
            });
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

function goPeer(version: string, name: string, identity: string, extra: string[] = []): Peer {
  return clientGoPeer(version, ['-server', cluster.serviceUrl, '-ca-file', cluster.caFile, '-token-file', cluster.tokenFile, '-name', name, '-identity', identity, ...GO_TIMING, ...extra]);
}
const at = (e: PeerEvent): number => Date.parse(String(e.t));
const newLeader = (id: string) => (e: PeerEvent): boolean => e.event === 'new-leader' && e.identity === id;

/** leaderlock's CLI as a separate process (`leaderlock run … -- sleep`), so it can be SIGKILLed. */
function cliHolder(name: string, identity: string, command: string[] = ['sleep', '600']): Peer {
  const main = join(REPO, 'src/cli/main.ts');
  return new Peer('leaderlock run', process.execPath, ['--conditions=source', '--import', 'tsx', main, 'run', '--backend', 'kubernetes:lease', '--kubeconfig', cluster.kubeconfig, '--namespace', 'default', '--key', name, '--ttl', '4s', '--retry-period', '500ms', '--renew-deadline', '2500ms', '--identity', identity, '--once', '--quiet', '--', ...command]);
}

/** client-go v0.34+ releases with a fresh Get and retries on 409 (item 3); v0.33 updates its cached object. */
function releaseRereads(version: string): boolean {
  const m = /^v0\.(\d+)\./.exec(version);
  return m !== null && Number(m[1]) >= 34;
}

/** A bare lock (no elector) on the Lease, for steps the test drives itself. */
function bareLock(name: string): KubernetesLock {
  const l = new KubernetesLock({ client: client(), kind: 'Lease', name, ttlMs: TTL, requestTimeoutMs: 2000 });
  l.on('warning', () => undefined);
  return l;
}

/** acquire() every RETRY ms until it returns a term, within `boundMs`. */
async function acquireWithin(lock: KubernetesLock, holder: string, boundMs: number): Promise<Term> {
  const start = Date.now();
  for (;;) {
    const t = await lock.acquire(holder);
    if (t) return t;
    if (Date.now() - start > boundMs) throw new Error(`${holder}: no term within ${boundMs} ms`);
    await delay(RETRY / 2);
  }
}

interface LeaseBody {
  metadata: { annotations?: Record<string, string> };
  spec?: { holderIdentity?: string; leaseTransitions?: number; preferredHolder?: string; strategy?: string };
}
let reader: KubeClient | undefined;
async function readLease(name: string): Promise<LeaseBody> {
  reader ??= client();
  return (await reader.request<LeaseBody>({ method: 'GET', path: `${LEASES}/${name}` })).body;
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
        // The command starts under its watchdog (a separate process): on a loaded machine that took
        // longer than the 1.5 s below, and the pause then hit before any heartbeat (2 runs in ~10).
        await waitFor('the guarded command runs', 20_000, () => existsSync(beats), () => cli.stderr.slice(-10).join('\n'));
        go = goPeer(version, name, 'go-peer');
        await go.waitFor(newLeader('ll-cli'), 20_000, 'new-leader ll-cli');
        await delay(1500);
        cli.signal('SIGSTOP');
        const stoppedAt = Date.now();
        const took = at(await go.waitFor((e) => e.event === 'started-leading', TTL + SLACK * 3, 'started-leading after the SIGSTOP'));
        let beatLines: string;
        try {
          beatLines = readFileSync(beats, 'utf8');
        } catch (err) {
          throw new Error(`the guarded command never wrote a heartbeat (${String(err)}); leaderlock run stderr:\n${cli.stderr.slice(-20).join('\n')}\nLease writes: ${JSON.stringify(log.writes.map((w) => ({ at: w.at - stoppedAt, holder: w.holder })))}`);
        }
        const lastBeat = Number(beatLines.trim().split('\n').at(-1));
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
    /**
     * Item 3's set-up: client-go leads, then a network partition (the peer holds its requests: SIGUSR1)
     * makes its renew fail after RenewDeadline; its release (ReleaseOnCancel) is held too. node-a takes
     * over once client-go's record is expired for it; node-b, a second candidate of ours, waits. Then the
     * partition heals (SIGUSR2) while the release is still within its own RenewDeadline.
     */
    async function failedRenew(name: string, releaseOnCancel: boolean) {
      const log = new LeaseLog(name);
      const go = goPeer(version, name, 'go-peer', releaseOnCancel ? [] : ['-release-on-cancel=false']);
      const a = new Ours(name, 'node-a');
      const b = new Ours(name, 'node-b');
      const close = async (): Promise<void> => {
        go.kill();
        await a.close();
        await b.close();
        await log.close();
      };
      try {
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await a.elector.start();
        await delay(1000);
        go.signal('SIGUSR1');
        const partitionedAt = at(await go.waitFor((e) => e.event === 'partitioned', 2000, 'partitioned'));
        await waitFor('node-a elected', TTL + SLACK * 3, () => a.elected.length > 0);
        await b.elector.start();
        await delay(300);
        assert.equal(a.lost.length, 0, 'node-a leads, renewing');
        // klog: "failed to renew lease" (v0.33) / "Failed to renew lease" (v0.37); its release is now held.
        await waitFor("client-go's renew failed in the partition", 1000, () => go.stderr.some((l) => /failed to renew lease/i.test(l)), () => go.stderr.slice(-10).join('\n'), 50);
        const healedAt = Date.now();
        go.signal('SIGUSR2');
        const code = await Promise.race([go.exited, delay(10_000).then(() => 'timeout' as const)]);
        assert.equal(code, 0, `client-go exits after its failed renew; stderr:\n${go.stderr.slice(-10).join('\n')}`);
        // Our watch may deliver the release a little after the peer has exited: wait for it (bounded).
        const released = (): LeaseWrite | undefined => log.writes.find((w) => w.at >= healedAt && w.type === 'MODIFIED' && !w.holder);
        await waitFor('a released record', 2 * RETRY, () => released() !== undefined).catch(() => undefined);
        const wipe = released();
        const writes = (): string =>
          `${JSON.stringify(log.writes.filter((w) => w.at >= partitionedAt).map((w) => ({ at: w.at - healedAt, holder: w.holder, transitions: w.transitions })))}; ` +
          `partitioned ${healedAt - partitionedAt} ms, node-a elected ${a.elected[0]!.at - partitionedAt} ms after the partition; peer events ${JSON.stringify(go.events.map((e) => ({ ...e, t: at(e) - healedAt })))}; peer stderr:\n${go.stderr.slice(-12).join('\n')}`;
        return { log, go, a, b, term: a.elected[0]!.term, partitionedAt, healedAt, exitedAt: Date.now(), wipe, writes, close };
      } catch (err) {
        await close();
        throw err;
      }
    }

    it('(e) client-go releasing after a failed renew (item 3): v0.34+ releases over our newer term, which ends at once; v0.33 meets a 409', async () => {
      const s = await failedRenew(`cgo-wipe-${tag}-${++seq}`, true);
      try {
        const { a, b, term, wipe, writes, healedAt, partitionedAt } = s;
        if (!releaseRereads(version)) {
          // v0.33–v0.36: its release PUTs its cached object (the resourceVersion of its last renew): 409.
          await delay(2 * RETRY);
          console.log(`client-go ${version} (e) partitioned ${healedAt - partitionedAt} ms (renew failed, release held), healed: its release met a 409 (no released record), exited ${s.exitedAt - healedAt} ms later; node-a's term ${term.token} stays`);
          assert.equal(wipe, undefined, `no released record after the heal; writes (ms from the heal): ${writes()}`);
          assert.equal(a.lost.length, 0, 'our term stays');
          assert.equal((await readLease(s.log.name)).spec?.holderIdentity, 'node-a');
          return;
        }
        assert.ok(wipe, `client-go ${version} released over our term after the heal; writes (ms from the heal): ${writes()}`);
        assert.equal(wipe.transitions, Number(term.token), 'its released record carries our token (from its fresh Get)');
        await waitFor('node-a lost', RETRY + SLACK, () => a.lost.length > 0);
        const lost = a.lost[0]!;
        // Nothing else breaks: one of our candidates leads again, with a higher token, and stays.
        await waitFor('a new term', TTL + SLACK, () => a.elected.length > 1 || b.elected.length > 0);
        const next = [...a.elected.slice(1).map((e) => ({ ...e, who: 'node-a' })), ...b.elected.map((e) => ({ ...e, who: 'node-b' }))].sort((x, y) => x.at - y.at)[0]!;
        await delay(2000);
        const final = await readLease(s.log.name);
        const overlap = lost.at - next.at;
        console.log(
          `client-go ${version} (e) partitioned ${healedAt - partitionedAt} ms (renew failed, release held), healed: released over node-a's term ${wipe.at - healedAt} ms after the heal; node-a's term ended "${lost.reason}" ${lost.at - wipe.at} ms after the test's own watch received the released record; ` +
            `${next.who} led again ${next.at - wipe.at} ms after it, token ${next.term.token} (${overlap > 0 ? `${overlap} ms before node-a's term ended: overlap` : `${-overlap} ms after node-a's term ended`})`,
        );
        // `expired` when node-a's renew read the released record, `taken` when node-b's new record was already there.
        assert.ok(lost.reason === 'expired' || lost.reason === 'taken', `term ended ${lost.reason}`);
        // The lock ends the term on the watch event itself (our token, no holder): no round trip.
        assert.ok(lost.at - wipe.at <= RETRY / 2, `noticed ${lost.at - wipe.at} ms after the wipe: by the watch, not the next periodic renew (${RETRY} ms)`);
        assert.ok(a.warnings.some((w) => /another writer released our term/.test(w.message)), `a warning says what happened: ${JSON.stringify(a.warnings)}`);
        assert.equal(next.term.token, term.token + 1n, 'the next term is fenced above the wiped one');
        assert.ok(overlap <= RETRY, `node-a's term ended ${overlap} ms after the next term began: more than a retryPeriod`);
        assert.equal(final.spec?.holderIdentity, next.who, 'and it still holds the Lease 2 s later');
        assert.equal(a.lost.length + b.lost.length, 1, `no other term was lost: ${JSON.stringify([...a.lost, ...b.lost])}`);
      } finally {
        await s.close();
      }
    });

    if (releaseRereads(version)) {
      it('(e) the same failed renew with ReleaseOnCancel false (the README\'s advice): no release, our term stays', async () => {
        const s = await failedRenew(`cgo-norel-${tag}-${++seq}`, false);
        try {
          await delay(2 * RETRY);
          console.log(`client-go ${version} (e) ReleaseOnCancel false: partitioned ${s.healedAt - s.partitionedAt} ms, healed: exited ${s.exitedAt - s.healedAt} ms later without writing; node-a's term ${s.term.token} stays`);
          assert.equal(s.wipe, undefined, `no released record; writes (ms from the heal): ${s.writes()}`);
          assert.equal(s.a.lost.length, 0, 'our term stays');
          assert.equal((await readLease(s.log.name)).spec?.holderIdentity, 'node-a');
        } finally {
          await s.close();
        }
      });
    }

    it('(f) our renews faster than once a second (item 4): client-go never leads before our validUntil has passed', async () => {
      const name = `cgo-sec-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const lock = bareLock(name);
      let go: Peer | undefined;
      try {
        const term = (await lock.acquire('node-a'))!;
        assert.ok(term);
        let endedAt = 0;
        term.signal.addEventListener('abort', () => (endedAt = Date.now()), { once: true });
        go = goPeer(version, name, 'go-peer');
        await go.waitFor(newLeader('node-a'), 20_000, 'new-leader node-a');
        // Renew every 200 ms (five per wall-clock second), at least 2 s, and stop right after a renew sent
        // late in its second (≥ 700 ms into it): counted from that renew, our validity would run ≥ 0.7 s
        // past the last change client-go could see (the first write of that second).
        const sent: { wall: number; validUntil: number }[] = [];
        for (let i = 0; i < 60; i++) {
          await delay(200);
          const wall = Date.now();
          await lock.renew(term);
          sent.push({ wall, validUntil: term.validUntil });
          if (i >= 10 && wall % 1000 >= 700) break;
        }
        const last = sent.at(-1)!;
        assert.ok(last.wall % 1000 >= 700, 'stopped late in a second');
        // Our monotonic clock (performance.now) on the wall clock the peer stamps its events with.
        const toWall = (mono: number): number => mono + (Date.now() - performance.now());
        const validUntilWall = Math.round(toWall(term.validUntil));
        const naive = Math.round(last.wall + TTL * (1 - lock.drift));
        const took = at(await go.waitFor((e) => e.event === 'started-leading', TTL + SLACK * 3, 'started-leading after our renews stopped'));
        const first = log.firstOfLastSecond('node-a')!;
        const inLastSecond = log.writes.filter((w) => w.holder === 'node-a' && w.renew !== undefined && Math.floor(w.renew / 1000) === Math.floor(first.renew! / 1000)).length;
        console.log(
          `client-go ${version} (f) renews every 200 ms, ${inLastSecond} in the last second (last sent ${last.wall % 1000} ms into it): client-go led ${took - validUntilWall} ms after our validUntil, ` +
            `${took - first.renew!} ms after the first write of that second; our term ended ${took - endedAt} ms before; counted from our last renew validity would have run to ${naive - took} ms ${naive > took ? 'after' : 'before'} client-go led`,
        );
        assert.ok(endedAt > 0 && term.endReason === 'expired', `our term ended by itself: ${term.endReason}`);
        assert.ok(took >= validUntilWall, `client-go led ${validUntilWall - took} ms before our validUntil`);
        assert.ok(endedAt <= took, `our term ended ${endedAt - took} ms after client-go led`);
        assert.ok(took - first.renew! >= TTL, `client-go led ${took - first.renew!} ms after the last change it could see: earlier than its lease`);
        assert.ok(took - validUntilWall <= TTL * lock.drift + 4.4 * RETRY + SLACK, `and not much later: ${took - validUntilWall} ms`);
      } finally {
        go?.kill();
        await lock.close();
        await log.close();
      }
    });

    it('(g) tokens across client-go writes (item 5): +1 per holder change, none for a same-name restart, 0 again after a delete', async () => {
      const name = `cgo-tok-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const lock = bareLock(name);
      const peers: Peer[] = [];
      const spawn = (identity: string): Peer => {
        const p = goPeer(version, name, identity);
        peers.push(p);
        return p;
      };
      const transitions = async (): Promise<number | undefined> => (await readLease(name)).spec?.leaseTransitions;
      try {
        const t1 = (await lock.acquire('node-a'))!;
        assert.equal(t1.token, 1n, 'we create the Lease with token 1');
        assert.ok(await lock.release(t1));
        // client-go takes our released record: +1 (a holder change).
        const go1 = spawn('go-peer');
        await go1.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await delay(1500); // a few renewals
        assert.equal(await transitions(), 2, 'client-go: our token + 1 when it takes over');
        const go1Writes = log.writes.filter((w) => w.holder === 'go-peer');
        assert.ok(go1Writes.length >= 2 && go1Writes.every((w) => w.transitions === 2), `its renewals keep the count: ${JSON.stringify(go1Writes.map((w) => w.transitions))}`);
        // Crash and restart under the same name: the new process takes "its own" record at once, count kept.
        go1.kill();
        const killedAt = Date.now();
        const go2 = spawn('go-peer');
        const restarted = at(await go2.waitFor((e) => e.event === 'started-leading', TTL + SLACK, 'started-leading after the restart'));
        assert.equal(await transitions(), 2, 'a same-name restart is no holder change for client-go: same count');
        // client-go releases; we take it: +1 again.
        await go2.stop();
        const t2 = await acquireWithin(lock, 'node-a', TTL + SLACK * 2);
        assert.equal(t2.token, 3n, 'our next term: still above every earlier one while the Lease lives');
        assert.ok(await lock.release(t2));
        // kubectl delete lease: client-go creates it with 0, and our next term is 1 — below 3.
        const deletedAt = Date.now();
        await client().request({ method: 'DELETE', path: `${LEASES}/${name}` });
        const go3 = spawn('go-peer-3');
        await go3.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading on a deleted Lease');
        // Our watch may deliver the create a little after the peer reports it.
        await waitFor('the re-created Lease on our watch', SLACK, () => log.writes.some((w) => w.type === 'ADDED' && w.at >= deletedAt));
        const created = log.writes.find((w) => w.type === 'ADDED' && w.at >= deletedAt)!;
        assert.equal(created.holder, 'go-peer-3');
        assert.equal(created.transitions, 0, 'client-go creates the Lease with leaseTransitions 0');
        await go3.stop();
        const t3 = await acquireWithin(lock, 'node-a', TTL + SLACK * 2);
        console.log(
          `client-go ${version} (g) tokens: ours 1 → client-go 2 (renewals keep 2; a same-name restart ${restarted - killedAt} ms after SIGKILL keeps 2) → ours ${t2.token} → delete → client-go creates 0 → ours ${t3.token}`,
        );
        assert.equal(t3.token, 1n, 'after a delete our token starts again: a fenced resource holding 3 refuses it');
      } finally {
        for (const p of peers) p.kill();
        await lock.close();
        await log.close();
      }
    });

    it('(h) our successor nomination after client-go held and released the Lease (item 6): it holds nobody back', async () => {
      const name = `cgo-nom-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const lock = bareLock(name);
      const b = new Ours(name, 'node-b');
      let go: Peer | undefined;
      try {
        // Handover to node-c, which never comes: client-go takes the released record (it ignores our nomination).
        const t = (await lock.acquire('node-a'))!;
        assert.ok(await lock.release(t, { successor: 'node-c' }));
        assert.equal((await lock.get()).successor, 'node-c');
        go = goPeer(version, name, 'go-peer');
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        await b.elector.start();
        await delay(1500);
        assert.equal(b.elected.length, 0, 'client-go leads: node-b waits');
        assert.equal(log.last('go-peer')?.successor, 'node-c', 'client-go\'s writes keep our annotation');
        // client-go releases: node-b takes over at once, not one ttl later.
        const stopAt = Date.now();
        await go.stop();
        await waitFor('node-b elected', TTL + SLACK * 2, () => b.elected.length > 0);
        const elected = b.elected[0]!.at;
        const isRelease = (w: LeaseWrite): boolean => w.at >= stopAt && w.type === 'MODIFIED' && !w.holder;
        // The test's own watch may deliver client-go's release a little after node-b's did.
        await waitFor("client-go's release on our watch", 2 * RETRY, () => log.writes.some(isRelease)).catch(() => undefined);
        const released = log.writes.find(isRelease);
        console.log(
          `client-go ${version} (h) nomination of node-c left on the Lease through client-go's term: ${released ? `node-b led ${elected - released.at} ms after our watch received client-go's released record (annotation still on it: ${released.successor ?? 'no'})` : 'client-go\'s release failed (409)'}, ${elected - stopAt} ms after the peer was told to stop (ttl ${TTL} ms)`,
        );
        assert.equal(b.elected[0]!.term.holder, 'node-b');
        if (released) {
          assert.equal(released.successor, 'node-c', 'client-go\'s release keeps the annotation too');
          assert.ok(elected - released.at < RETRY + SLACK, `node-b led ${elected - released.at} ms after client-go's release: held back by the old nomination (ttl ${TTL} ms)`);
        } else {
          const lastGo = log.last('go-peer')!;
          assert.ok(elected - lastGo.renew! <= TTL + RETRY + SLACK, `client-go's release did not land; node-b led ${elected - lastGo.renew!} ms after its last renewTime: one lease, not more`);
        }
      } finally {
        go?.kill();
        await b.close();
        await lock.close();
        await log.close();
      }
    });

    it('(i) coordinated election (item 7): a stale preferredHolder/strategy is dropped by client-go\'s and our writes; we do not yield to it', async () => {
      const name = `cgo-cle-${tag}-${++seq}`;
      const log = new LeaseLog(name);
      const admin = cluster.admin();
      const go = goPeer(version, name, 'go-peer');
      const ours = new Ours(name, 'node-a');
      // What the coordinated-election controller leaves behind when its preferred candidate is gone.
      const stale = async (): Promise<number> => {
        const res = await admin.request<LeaseBody>({
          method: 'PATCH',
          path: `${LEASES}/${name}`,
          contentType: 'application/merge-patch+json',
          body: { spec: { strategy: 'OldestEmulationVersion', preferredHolder: 'gone-9' } },
        });
        assert.equal(res.body.spec?.preferredHolder, 'gone-9', 'the API server keeps it (CoordinatedLeaderElection on)');
        return Date.now();
      };
      const droppedAfter = async (since: number, holder: string): Promise<number> => {
        const dropped = (w: LeaseWrite): boolean => w.at >= since && w.holder === holder && w.preferredHolder === undefined && w.strategy === undefined;
        await waitFor(`${holder} drops preferredHolder`, RETRY * 3 + SLACK, () => log.writes.some(dropped));
        return log.writes.find(dropped)!.at - since;
      };
      try {
        await go.waitFor((e) => e.event === 'started-leading', 20_000, 'started-leading');
        // 1. client-go's non-coordinated elector: its next renew drops both fields (it does not step down).
        const goDrop = await droppedAfter(await stale(), 'go-peer');
        // 2. A released Lease naming a gone preferredHolder: our candidate does not yield to it, and drops it.
        await go.stop();
        const releasedRecord = !(await readLease(name)).spec?.holderIdentity;
        const patchedAt = await stale();
        await ours.elector.start();
        await waitFor('our elected', TTL + SLACK * 2, () => ours.elected.length > 0);
        const afterTake = await readLease(name);
        const tookMs = ours.elected[0]!.at - patchedAt;
        // 3. While we lead: a preferredHolder naming someone else is dropped by our next renew; our term stays.
        const ourDrop = await droppedAfter(await stale(), 'node-a');
        await delay(RETRY);
        console.log(
          `client-go ${version} (i) preferredHolder "gone-9" + strategy: client-go's renew dropped them after ${goDrop} ms; on the ${releasedRecord ? 'released' : 'unreleased (its release met a 409)'} Lease we led ${tookMs} ms after the patch, dropping them; on our live Lease our renew dropped them after ${ourDrop} ms, term kept`,
        );
        assert.equal(afterTake.spec?.holderIdentity, 'node-a');
        assert.equal(afterTake.spec?.preferredHolder, undefined, 'our acquire dropped preferredHolder');
        assert.equal(afterTake.spec?.strategy, undefined, 'and strategy');
        if (releasedRecord) assert.ok(tookMs < RETRY + SLACK, `we took the released Lease ${tookMs} ms after the patch: we do not yield to a preferredHolder`);
        assert.equal(ours.lost.length, 0, 'we do not yield our term to a preferredHolder');
        assert.equal(ours.elected.length, 1);
        assert.ok(ourDrop <= RETRY + SLACK, `dropped by our next renew, not later: ${ourDrop} ms`);
      } finally {
        go.kill();
        await ours.close();
        await log.close();
        await admin.close();
      }
    });
  });
}
