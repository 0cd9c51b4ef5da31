/**
 * EtcdLock against a real single-node etcd: the CAS conditions, tokens, foreign writers, handover,
 * sharing one lease, fencing and typed errors. Each test uses its own key, so the real-time ones
 * (lease expiry, ≥ 2 s each) run concurrently.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EtcdLock, EtcdSession, fencedWrite } from '../../../src/backends/etcd/index.js';
import { BackendUnavailableError, DeadlineExceededError, ForbiddenError, LockLostError } from '../../../src/core/errors.js';
import type { LockState } from '../../../src/core/lock.js';
import { ETCDCTL_BIN, etcdForFile, freePort, startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';

const TTL = 2000;
/** Generous per-call deadline: a fresh connection on a shared, loaded 2-core box can take a while. */
const RT = 1500;
const fx = etcdForFile();
const locks: EtcdLock[] = [];
fx.cleanups.push(() => Promise.allSettled(locks.map((l) => l.close())));
let n = 0;
const key = (): string => `/test/lock-${++n}/leader-key`;
const lock = (k: string, extra: Partial<ConstructorParameters<typeof EtcdLock>[0]> = {}): EtcdLock => {
  const l = new EtcdLock({ endpoints: fx.cluster.endpoints, key: k, ttlMs: TTL, requestTimeoutMs: RT, ...extra } as ConstructorParameters<typeof EtcdLock>[0]);
  locks.push(l);
  return l;
};


/** Waits (bounded) until `pred` holds for a state from `l.watch`. */
async function until(l: EtcdLock, pred: (s: LockState) => boolean, ms: number): Promise<LockState> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    for await (const s of l.watch({ signal: ac.signal })) if (pred(s)) return s;
    throw new Error(`state not reached within ${ms} ms`);
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

describe('EtcdLock on real etcd', { concurrency: true }, () => {
  it('acquire creates the key with the bare holder name; token = create-revision; others get undefined', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const before = performance.now();
    const term = await a.acquire('node-a');
    const afterAcquire = performance.now();
    assert.ok(term);
    assert.equal(typeof term.token, 'bigint');
    const stored = await fx.raw.get(k).exec();
    assert.equal(stored.kvs[0]!.value.toString(), 'node-a');
    assert.equal(term.token, BigInt(stored.kvs[0]!.create_revision));
    assert.equal(stored.kvs[0]!.lease, a.session.leaseId);
    // validUntil = keep-alive send time + ttl·(1 − drift): between the call's start and end.
    assert.ok(term.validUntil >= before + TTL * 0.99 && term.validUntil <= afterAcquire + TTL * 0.99, `validUntil ${term.validUntil - before}`);
    assert.equal(await b.acquire('node-b'), undefined);
    assert.equal(await b.acquire('node-a'), undefined, 'same identity, other incarnation: no shortcut');
    assert.deepEqual((await b.get()).leader, { holder: 'node-a', token: term.token, ttlMs: TTL, live: true });
  });

  it('renew extends validUntil; a plain put by another writer (lease detached) is loss: taken', async () => {
    const k = key();
    const a = lock(k);
    const term = (await a.acquire('a'))!;
    const v0 = term.validUntil;
    await new Promise((r) => setTimeout(r, 20));
    await a.renew(term);
    assert.ok(term.validUntil > v0);
    await fx.raw.put(k).value('intruder'); // keeps create_revision, drops our lease
    await assert.rejects(a.renew(term), (e: unknown) => e instanceof LockLostError && e.reason === 'taken');
    assert.equal(term.endReason, 'taken');
    assert.equal(term.isValid(), false);
  });

  it('a keep-alive answering TTL 0 (lease revoked behind our back) is loss: expired', async () => {
    const k = key();
    const a = lock(k);
    const term = (await a.acquire('a'))!;
    await fx.raw.leaseClient.leaseRevoke({ ID: a.session.leaseId! });
    await assert.rejects(a.renew(term), (e: unknown) => e instanceof LockLostError && e.reason === 'expired');
    // The next acquire grants a new lease.
    const t2 = await a.acquire('a');
    assert.ok(t2 && t2.token > term.token);
  });

  it('acquire decides on the create txn alone while the lease was refreshed within half a ttl; with an older refresh it refreshes the lease and waits (issue 15)', async () => {
    const k = key();
    const a = lock(k);
    await a.release((await a.acquire('a'))!);
    const lease = a.session.leaseId!;
    const last = a.session.lastRefresh(lease)!;
    const pending: Array<(r: { sentAt: number; ttlMs: number }) => void> = [];
    const keepAlive = a.session.keepAlive.bind(a.session);
    a.session.keepAlive = () => new Promise((resolve) => pending.push(resolve)); // answered by the test
    const stillPending = <T>(p: Promise<T>) => Promise.race([p.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 300))]);
    try {
      const t2 = (await a.acquire('a'))!;
      assert.equal(pending.length, 0, 'no keep-alive sent');
      assert.equal(t2.validUntil, last.sentAt + Math.min(TTL, last.ttlMs) * (1 - a.drift), 'bounded by the last confirmed refresh');
      await a.release(t2);
      // A refresh older than half a ttl: the acquire waits for its own keep-alive.
      a.session.lastRefresh = () => ({ sentAt: performance.now() - TTL, ttlMs: TTL });
      await fx.raw.delete().key(k);
      const t4p = a.acquire('a');
      assert.equal(await stillPending(t4p), true, 'waits for the keep-alive');
      const sent = performance.now();
      pending.shift()!({ sentAt: sent, ttlMs: TTL });
      const t4 = (await t4p)!;
      assert.ok(t4.validUntil <= sent + TTL * (1 - a.drift) && t4.validUntil > sent - 1000 + TTL * (1 - a.drift));
    } finally {
      a.session.keepAlive = keepAlive;
    }
  });

  it('a create applied but unanswered whose re-read fails too leaves no key behind on a lease other locks keep alive (issue 15: bench/scale found 70 of 1,000 keys stuck)', async () => {
    const k = key();
    const a = lock(k);
    await a.release((await a.acquire('a'))!);
    const call = a.session.call.bind(a.session);
    let failures = 0;
    a.session.call = (async (what: string, fn: never, opts?: never) => {
      if (what === 'etcd acquire' && failures === 0) {
        failures++;
        await call(what, fn, opts); // applied by etcd …
        throw new DeadlineExceededError('etcd acquire: no answer in time (test)', { backend: 'etcd' }); // … answer lost
      }
      if (what === 'etcd read' && failures < 3) {
        failures++; // the acquire's re-read, and the first re-read after it
        throw new DeadlineExceededError('etcd read: no answer in time (test)', { backend: 'etcd' });
      }
      return call(what, fn, opts);
    }) as typeof a.session.call;
    await assert.rejects(a.acquire('a'), BackendUnavailableError);
    assert.equal((await fx.raw.get(k).exec()).kvs[0]?.lease, a.session.leaseId, 'the create was applied, on our lease');
    const end = performance.now() + 2 * RT + 1000;
    while ((await fx.raw.get(k).exec()).kvs.length > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await fx.raw.get(k).exec()).kvs.length, 0, 'the undecided key was found and deleted');
    const t = await a.acquire('a');
    assert.ok(t, 'free again for the next acquire');
  });

  it('a release that fails is retried in the background until the key is gone (issue 15: after a loss the elector releases once)', async () => {
    const k = key();
    const a = lock(k);
    const term = (await a.acquire('a'))!;
    const call = a.session.call.bind(a.session);
    let failed = 0;
    a.session.call = (async (what: string, fn: never, opts?: never) => {
      if ((what === 'etcd release' && failed === 0) || (what === 'etcd read' && failed === 1)) {
        failed++;
        throw new DeadlineExceededError(`${what}: no answer in time (test)`, { backend: 'etcd' });
      }
      return call(what, fn, opts);
    }) as typeof a.session.call;
    term.end('deadline');
    await assert.rejects(a.release(term), BackendUnavailableError);
    assert.equal((await fx.raw.get(k).exec()).kvs.length, 1, 'still there right after the failed release');
    const end = performance.now() + 2 * RT + 1000;
    while ((await fx.raw.get(k).exec()).kvs.length > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await fx.raw.get(k).exec()).kvs.length, 0, 'deleted in the background');
    assert.ok(await a.acquire('a'), 'free again');
  });

  it('release is compare-and-delete on the token: an old term never deletes a successor', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const t1 = (await a.acquire('a'))!;
    assert.equal(await a.release(t1), true);
    assert.equal(t1.endReason, 'released');
    const t2 = (await b.acquire('b'))!;
    assert.ok(t2.token > t1.token, 'tokens increase across terms');
    assert.equal(await a.release(t1), false);
    assert.equal((await a.get()).leader?.holder, 'b');
  });

  it('a key without a lease (etcdctl put) is held forever: warning, never stolen', async () => {
    const k = key();
    await promisify(execFile)(ETCDCTL_BIN, ['--endpoints', fx.cluster.endpoints[0]!, 'put', k, 'operator'], { env: { ...process.env, ETCDCTL_API: '3' } });
    const a = lock(k);
    const warnings: Error[] = [];
    a.on('warning', (w) => warnings.push(w));
    assert.equal(await a.acquire('a'), undefined);
    assert.match(warnings[0]?.message ?? '', /without a lease/);
    const s = await a.get();
    assert.equal(s.leader?.holder, 'operator');
    assert.equal(s.leader?.ttlMs, Number.POSITIVE_INFINITY);
    assert.equal((await fx.raw.get(k).string()), 'operator');
  });

  it('a 1 MB holder written by another tool: the warning quotes 256 characters and the size, the record keeps it whole (issue 13)', async () => {
    const k = key();
    const huge = 'h'.repeat(1_000_000);
    await fx.raw.put(k).value(huge);
    const a = lock(k);
    const warnings: Error[] = [];
    a.on('warning', (w) => warnings.push(w));
    assert.equal(await a.acquire('a'), undefined);
    const w = warnings.find((x) => /without a lease/.test(x.message));
    assert.ok(w, warnings.map((x) => x.message.slice(0, 200)).join('; '));
    assert.ok(w.message.length < 600, `a ${w.message.length}-character warning`);
    assert.ok(w.message.includes(`"${'h'.repeat(256)}"…(1000000 bytes)`), w.message);
    assert.equal((await a.get()).leader?.holder.length, 1_000_000, 'LeaderRecord.holder is the full value');
  });

  it('handover: nominee acquires at once, others hold back, nomination removed; Patroni failover record written', async () => {
    const scope = `/service/ho-${++n}`;
    const k = `${scope}/leader`;
    const a = lock(k);
    const b = lock(k);
    const c = lock(k);
    const t1 = (await a.acquire('a'))!;
    assert.equal(await a.release(t1, { successor: 'c' }), true);
    assert.equal(t1.endReason, 'handover');
    assert.deepEqual(await b.get(), { successor: 'c' });
    assert.equal(JSON.parse((await fx.raw.get(`${scope}/failover`).string())!).member, 'c');
    assert.equal(await b.acquire('b'), undefined);
    const t3 = await c.acquire('c');
    assert.ok(t3 && t3.token > t1.token);
    assert.deepEqual(await b.get(), { leader: { holder: 'c', token: t3.token, ttlMs: TTL, live: true } });
    assert.equal(await fx.raw.get(`${scope}/failover`).string(), null, 'the nominee completes Patroni failover');
  });

  it('handover to a nominee that never comes: another candidate leads after the nomination expires (real time)', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const t1 = (await a.acquire('a'))!;
    const released = performance.now();
    await a.release(t1, { successor: 'ghost' });
    assert.equal(await b.acquire('b'), undefined);
    await until(b, (s) => s.successor === undefined && !s.leader, TTL + 2000);
    const waited = performance.now() - released;
    assert.ok(waited >= TTL - 100, `nomination lived ${waited} ms`);
    assert.ok(await b.acquire('b'));
  });

  it('a crashed holder (lease abandoned) is replaced after ttl + etcd expiry tick (real time)', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const t1 = (await a.acquire('a'))!;
    // The lease's last confirmed refresh (its grant, or a keep-alive) — on a recently refreshed lease
    // the acquire sends none of its own.
    const lastRefresh = a.session.lastRefresh(a.session.leaseId!)!.sentAt;
    a.session.abandon();
    await until(b, (s) => !s.leader, TTL + 2000);
    const gap = performance.now() - lastRefresh;
    assert.ok(gap >= TTL - 100 && gap < TTL + 1500, `key vanished ${gap} ms after the last refresh`);
    const t2 = await b.acquire('b');
    assert.ok(t2 && t2.token > t1.token);
  });

  it('watch: current state first, then every holder change in order', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const ac = new AbortController();
    const seen: string[] = [];
    let firstSeen!: () => void;
    const first = new Promise<void>((resolve) => (firstSeen = resolve));
    const done = (async () => {
      for await (const s of b.watch({ signal: ac.signal })) {
        seen.push(s.leader ? `${s.leader.holder}@${s.leader.token}` : '-');
        if (seen.length === 1) firstSeen();
        if (seen.length === 4) ac.abort();
      }
    })();
    // Act only once the watch has delivered its current state (a fixed sleep raced it under load).
    await Promise.race([first, new Promise((_, rej) => setTimeout(() => rej(new Error('watch delivered no initial state in 3 s')), 3000))]);
    const t1 = (await a.acquire('a'))!;
    await a.release(t1);
    const t2 = (await a.acquire('a2'))!;
    await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error(`saw ${seen.join(',')}`)), 3000))]);
    assert.deepEqual(seen, ['-', `a@${t1.token}`, '-', `a2@${t2.token}`]);
  });

  it('one shared session = one lease for every lock; the last close revokes it', async () => {
    const session = new EtcdSession({ endpoints: fx.cluster.endpoints, ttlMs: TTL, requestTimeoutMs: RT });
    try {
      const l1 = new EtcdLock({ session, key: key() });
      const l2 = new EtcdLock({ session, key: key() });
      const t1 = (await l1.acquire('x'))!;
      const t2 = (await l2.acquire('x'))!;
      assert.equal(l1.leaseOf(t1), l2.leaseOf(t2));
      const lease = session.leaseId!;
      await l1.close();
      assert.equal(Number((await fx.raw.leaseClient.leaseTimeToLive({ ID: lease })).TTL) > 0, true, 'still used by l2');
      await l2.close();
      assert.equal(Number((await fx.raw.leaseClient.leaseTimeToLive({ ID: lease })).TTL), -1, 'revoked by the last close');
      assert.throws(() => new EtcdLock({ session, key: '/k', endpoints: fx.cluster.endpoints, ttlMs: 5000 }), /endpoints belongs to the shared session[\s\S]*ttlMs \(5000\) differs/);
    } finally {
      await session.close();
    }
  });

  it('renews of 100 locks on one session, called together: one keep-alive and two ownership txns; a key taken by another writer fails only its own renew (issue 15)', async () => {
    const session = new EtcdSession({ endpoints: fx.cluster.endpoints, ttlMs: TTL, requestTimeoutMs: RT });
    try {
      const ls = Array.from({ length: 100 }, () => new EtcdLock({ session, key: key() }));
      const terms = await Promise.all(ls.map((l) => l.acquire('x').then((t) => t!)));
      await new Promise((r) => setTimeout(r, 50)); // past the batch window of the acquires' traffic
      const calls: string[] = [];
      const call = session.call.bind(session);
      session.call = ((what: string, ...rest: [never, never]) => (calls.push(what), call(what, ...rest))) as typeof session.call;
      await fx.raw.put(ls[7]!.key).value('intruder'); // drops our lease from key 7: that one is taken
      const before = terms.map((t) => t.validUntil);
      const results = await Promise.allSettled(ls.map((l, i) => l.renew(terms[i]!)));
      assert.deepEqual(calls.filter((c) => c === 'etcd renew').length, 2, '100 keys, 64 per txn');
      assert.deepEqual(calls.filter((c) => c === 'etcd lease keep-alive').length, 1, 'one keep-alive for the shared lease');
      results.forEach((r, i) => {
        if (i === 7) assert.ok(r.status === 'rejected' && r.reason instanceof LockLostError && r.reason.reason === 'taken');
        else assert.ok(r.status === 'fulfilled' && terms[i]!.validUntil > before[i]!, `renew ${i} confirmed and extended`);
      });
      await Promise.all(ls.map((l) => l.close()));
    } finally {
      await session.close();
    }
  });

  it('fenced writes: applied while holding, refused by etcd once a successor holds the key', async () => {
    const k = key();
    const a = lock(k);
    const b = lock(k);
    const t1 = (await a.acquire('a'))!;
    assert.equal((await a.fencedWrite(t1, [{ put: `${k}/data`, value: 'from-a' }])).ok, true);
    await fx.raw.delete().key(k); // a's key vanishes behind its back (as after a pause past its lease)
    const t2 = (await b.acquire('b'))!;
    const stale = { token: t1.token, isValid: () => true }; // a paused leader whose clock did not notice
    assert.deepEqual((await fencedWrite(fx.raw.kv, k, stale, [{ put: `${k}/data`, value: 'stale' }])).refusedBy, 'etcd');
    assert.equal((await b.fencedWrite(t2, [{ put: `${k}/data`, value: 'from-b' }])).ok, true);
    assert.equal(await fx.raw.get(`${k}/data`).string(), 'from-b');
    await a.release(t1);
    assert.deepEqual(await a.fencedWrite(t1, [{ put: `${k}/data`, value: 'late' }]), { ok: false, refusedBy: 'term' });
  });

  it('etcd unreachable → BackendUnavailableError within the request timeout', async () => {
    const port = await freePort();
    const l = new EtcdLock({ endpoints: [`http://127.0.0.1:${port}`], key: key(), ttlMs: TTL, requestTimeoutMs: 500 });
    locks.push(l);
    const t0 = performance.now();
    await assert.rejects(l.acquire('a'), BackendUnavailableError);
    await assert.rejects(l.get(), BackendUnavailableError);
    assert.ok(performance.now() - t0 < 2500);
  });
});

describe('EtcdLock with etcd authentication', () => {
  let authCluster: EtcdCluster;
  before(async () => {
    authCluster = await startEtcd();
    const ctl = (...args: string[]) => promisify(execFile)(ETCDCTL_BIN, ['--endpoints', authCluster.endpoints[0]!, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    await ctl('user', 'add', 'root', '--new-user-password', 'rootpw');
    await ctl('user', 'add', 'app', '--new-user-password', 'apppw');
    await ctl('role', 'add', 'app');
    await ctl('role', 'grant-permission', 'app', '--prefix=true', 'readwrite', '/app/');
    await ctl('user', 'grant-role', 'app', 'app');
    await ctl('auth', 'enable');
  });
  after(() => authCluster?.stop());

  it('a wrong password and a key outside the granted prefix are ForbiddenError; the right ones work', async () => {
    // A generous request timeout: authentication adds a round trip, and this box is shared.
    const opts = { endpoints: authCluster.endpoints, ttlMs: 5000, requestTimeoutMs: 3000 };
    const bad = new EtcdLock({ ...opts, key: '/app/leader', username: 'app', password: 'nope' });
    const denied = new EtcdLock({ ...opts, key: '/other/leader', username: 'app', password: 'apppw' });
    const good = new EtcdLock({ ...opts, key: '/app/leader', username: 'app', password: 'apppw' });
    try {
      await assert.rejects(bad.acquire('a'), (e: unknown) => e instanceof ForbiddenError && !/nope/.test((e as Error).message));
      await assert.rejects(denied.acquire('a'), ForbiddenError);
      const t = await good.acquire('a');
      assert.ok(t);
      await good.renew(t);
      assert.equal(await good.release(t), true);
    } finally {
      await Promise.allSettled([bad.close(), denied.close(), good.close()]);
    }
  });
});

// Its own suite, after the concurrent one: three more connections at the start of that one made its
// first lease grants miss their deadline on a loaded machine.
describe('EtcdLock watch reports the holder lease TTL', () => {
  it('issue 12: watch() reports the holder lease TTL, as get() does, not the watcher ttl', async () => {
    const k = key();
    const holder = lock(k, { ttlMs: 3000 });
    const watcher = lock(k, { ttlMs: 15000 });
    const term = await holder.acquire('node-a');
    assert.ok(term);
    // A fresh watcher: the first state comes from the read.
    const first = await until(watcher, (s) => s.leader?.token === term.token, 5000);
    assert.equal(first.leader?.ttlMs, 3000);
    assert.equal((await watcher.get()).leader?.ttlMs, 3000);
    // A holder change seen as a watch event (new lease the watcher has never asked about).
    const other = lock(k, { ttlMs: 4000 });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 8000);
    try {
      const it = watcher.watch({ signal: ac.signal })[Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.leader?.holder, 'node-a');
      assert.equal(await holder.release(term), true);
      let next = (await it.next()).value as LockState | undefined;
      assert.equal(next?.leader, undefined);
      const t2 = await other.acquire('node-b');
      assert.ok(t2);
      next = (await it.next()).value as LockState | undefined;
      assert.deepEqual(next?.leader, { holder: 'node-b', token: t2.token, ttlMs: 4000, live: true });
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  });
});
