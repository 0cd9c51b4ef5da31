/**
 * Real processes on real etcd: the leader runs in a child process that we SIGKILL or SIGSTOP; the
 * successor is a LeaderElector in this process. The two cases use separate keys and run concurrently.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Etcd3 } from 'etcd3';
import { LeaderElector, type Term } from '../../../src/index.js';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';
import { ChildElector } from './child-elector.js';

const TTL = 2000;
/** etcd checks lease expiry every 500 ms; add a round trip and scheduling slack on a loaded 2-core box. */
const EXPIRY_BOUND = TTL + 500 + 1000;
let cluster: EtcdCluster;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  cluster = await startEtcd();
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await cluster?.stop();
});

function elector(key: string, identity: string): { lock: EtcdLock; elector: LeaderElector; elected: Promise<Term> } {
  const lock = new EtcdLock({ endpoints: cluster.endpoints, key, ttlMs: TTL, requestTimeoutMs: 1200 });
  const e = new LeaderElector(lock, { identity });
  cleanups.push(() => e.stop().then(() => lock.close()));
  const elected = new Promise<Term>((resolve) => e.once('elected', resolve));
  return { lock, elector: e, elected };
}

describe('etcd leader in a child process', { concurrency: true }, () => {
  it('SIGKILL of the leader: a successor is elected within ttl + etcd expiry tick + bound', async () => {
    const key = '/proc/kill/leader';
    const child = new ChildElector({ endpoints: cluster.endpoints, key, identity: 'child', ttlMs: TTL, requestTimeoutMs: 1200 });
    cleanups.push(() => child.kill());
    await child.waitFor((r) => r.ev === 'elected', 15_000);
    const b = elector(key, 'parent');
    await b.elector.start();
    assert.equal(b.elector.isLeader, false);
    for (let i = 0; i < 100 && b.elector.leader !== 'child'; i++) await new Promise((r) => setTimeout(r, 20)); // the watch's first read
    assert.equal(b.elector.leader, 'child');
    const killedAt = performance.now();
    child.signal('SIGKILL');
    const term = await b.elected;
    const failover = performance.now() - killedAt;
    assert.ok(failover < EXPIRY_BOUND, `failover took ${failover.toFixed(0)} ms (bound ${EXPIRY_BOUND})`);
    assert.ok(term.isValid());
  });

  it('SIGSTOP past the ttl, then SIGCONT: every action of the old leader is refused by isValid() or by the fence (#issue9-8)', async () => {
    const key = '/proc/stop/leader';
    // The protected resource: accepts a write only with a token >= the highest it has seen.
    const accepted: { writer: string; token: bigint }[] = [];
    let highest = 0n;
    const accept = (writer: string, token: bigint): boolean => {
      if (token < highest) return false;
      highest = token;
      accepted.push({ writer, token });
      return true;
    };
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const { writer, token } = JSON.parse(body) as { writer: string; token: string };
        res.statusCode = accept(writer, BigInt(token)) ? 200 : 409;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const resourceUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

    const child = new ChildElector({ endpoints: cluster.endpoints, key, identity: 'old', ttlMs: TTL, requestTimeoutMs: 1200, resourceUrl, gapMs: 300, actEveryMs: 20 });
    cleanups.push(() => child.kill());
    const elected = await child.waitFor((r) => r.ev === 'elected', 15_000);
    await child.waitFor((r) => r.ev === 'write' && r.ok === true, 5000); // it really writes while leading
    // Freeze it right after an isValid() check, inside its "work" gap.
    const mark = child.reports.length;
    await child.waitFor((r) => r.ev === 'acting', 5000, mark);
    child.signal('SIGSTOP');
    const stoppedAt = performance.now();

    const b = elector(key, 'new');
    void b.elector.runWhileLeader(async (term) => {
      while (!term.signal.aborted) {
        if (term.isValid()) accept('new', term.token);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await b.elector.start();
    const newTerm = await b.elected;
    assert.ok(performance.now() - stoppedAt < EXPIRY_BOUND + 500, 'successor elected while the old leader is frozen');
    assert.ok(newTerm.token > BigInt(elected.token!));
    while (!accepted.some((w) => w.writer === 'new')) await new Promise((r) => setTimeout(r, 20));

    const resumeMark = child.reports.length;
    child.signal('SIGCONT');
    await child.waitFor((r) => r.ev === 'lost', 5000, resumeMark);
    const fenced = await child.waitFor((r) => r.ev === 'write', 5000, resumeMark);
    const after = child.reports.slice(resumeMark).filter((r) => r.ev === 'write');
    for (const r of after) {
      assert.equal(r.ok, false, `a write of the stale leader went through: ${JSON.stringify(r)}`);
      if (r.by === 'fence') assert.equal(r.etcdOk, false, 'the etcd fenced write must be refused too');
    }
    // The write that was in flight across the pause reached the resources and was refused there.
    assert.equal(fenced.by, 'fence');
    // No interleaving: once the new leader wrote, the old one never did again.
    const firstNew = accepted.findIndex((w) => w.writer === 'new');
    assert.ok(accepted.slice(firstNew).every((w) => w.writer === 'new'), accepted.map((w) => `${w.writer}@${w.token}`).join(' '));
    const raw = new Etcd3({ hosts: cluster.endpoints });
    try {
      assert.equal(await raw.get(`${key}-protected`).string(), `old@${elected.token}`, 'the etcd fence kept the stale write out');
    } finally {
      raw.close();
    }
  });
});
