import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulLock, type ConsulApi, type KvPair, type KvRead } from '../../../src/backends/consul/index.js';
import { pickEntries, toLockState } from '../../../src/backends/consul/records.js';
import { BackendUnavailableError, ConfigError, DeadlineExceededError, ForbiddenError, LockLostError } from '../../../src/core/errors.js';
import type { Term } from '../../../src/core/lock.js';
import { VirtualClock } from '../../../src/testing/index.js';
import { ConsulWorld } from './harness.js';

const TTL = 10_000;
const reasonOf = (t: Term): string | undefined => (t.signal.reason as LockLostError | undefined)?.reason;

describe('ConsulLock against FakeConsulServer', () => {
  let w: ConsulWorld;
  beforeEach(async () => {
    w = await ConsulWorld.start();
  });
  afterEach(async () => {
    await w.close();
  });

  it('creates its session with TTL ceil(ttl/1000) s, behavior=delete, no checks and an explicit lock-delay string', async () => {
    const a = w.lock({ ttlMs: 10_500 });
    const term = await a.acquire('node-a');
    assert.ok(term);
    const create = w.fake.requests.find((r) => r.path === '/v1/session/create');
    assert.ok(create);
    const body = JSON.parse(create.body) as Record<string, unknown>;
    assert.equal(body.TTL, '11s');
    assert.equal(body.Behavior, 'delete');
    assert.deepEqual(body.Checks, []);
    // The consul client drops a falsy lockdelay (Consul would then apply 15 s): we always send a string.
    assert.equal(body.LockDelay, '0s');
    assert.equal(w.fake.session(a.sessionId!)?.lockDelayMs, 0);
    assert.deepEqual(w.fake.session(a.sessionId!)?.nodeChecks, []);
    // The key holds the bare holder name (Patroni reads it as is) and the token is its CreateIndex.
    const kv = w.fake.kv('service/demo/leader');
    assert.equal(kv?.value.toString(), 'node-a');
    assert.equal(BigInt(kv!.createIndex), term.token);
    await a.close();
  });

  it('session expiry hands the lock over within 2 × TTL, never before the old term’s validUntil (Consul’s earliest and latest invalidation)', async () => {
    for (const factor of [1, 2]) {
      w.fake.sessionTtlFactor = factor;
      const a = w.lock({ key: `service/f${factor}/leader` });
      const b = w.lock({ key: `service/f${factor}/leader` });
      const t0 = w.clock.now();
      const old = await a.acquire('node-a');
      assert.ok(old);
      // A crashes: no more renewals. B campaigns every second.
      let next: Term | undefined;
      while (!next && w.clock.now() - t0 <= 2 * TTL + 1000) {
        next = await b.acquire('node-b');
        if (next) break;
        assert.ok(old.isValid() || true);
        await w.advance(1000);
      }
      assert.ok(next, `factor ${factor}: B should hold the key within 2 × TTL + 1 s`);
      const at = w.clock.now() - t0;
      assert.ok(at >= factor * TTL, `factor ${factor}: not before Consul invalidates the session (${at} ms)`);
      assert.ok(w.clock.now() >= old.validUntil, 'no overlap: the old term had expired before B acquired');
      assert.equal(old.isValid(), false);
      assert.ok(next.token > old.token);
      await a.close();
      await b.close();
    }
  });

  it('honours lock-delay: after the holder’s session is invalidated nobody acquires for lockDelayMs', async () => {
    const a = w.lock({ lockDelayMs: 15_000 });
    const b = w.lock();
    const old = await a.acquire('node-a');
    assert.ok(old);
    assert.equal(JSON.parse(w.fake.requests.find((r) => r.path === '/v1/session/create')!.body).LockDelay, '15s');
    const invalidated = new Promise<void>((resolve) => w.fake.once('session-ended', () => resolve()));
    await w.advance(2 * TTL);
    await invalidated;
    assert.equal(w.fake.kv('service/demo/leader'), undefined, 'behavior=delete removed the key');
    const t1 = w.clock.now();
    await w.advance(14_000);
    assert.equal(await b.acquire('node-b'), undefined, 'still inside the lock-delay');
    await w.advance(1_000);
    const next = await b.acquire('node-b');
    assert.ok(next, 'acquired once the lock-delay has passed');
    assert.ok(w.clock.now() - t1 >= 15_000);
    await a.close();
    await b.close();
  });

  it('a renew whose response is lost does not extend validUntil, so the terms never overlap', async () => {
    w.fake.sessionTtlFactor = 1; // Consul's earliest invalidation: the tightest case for us
    const a = w.lock();
    const b = w.lock();
    const term = await a.acquire('node-a');
    assert.ok(term);
    await w.advance(3000);
    await a.renew(term);
    const confirmed = term.validUntil;
    await w.advance(3000);
    // Consul applies this renew (its TTL restarts now) but A never hears back.
    w.fake.addFault({ kind: 'drop-response', match: { path: '/v1/session/renew/' }, times: 1 });
    await assert.rejects(a.renew(term), BackendUnavailableError);
    assert.equal(term.validUntil, confirmed, 'an unconfirmed renew never moves validUntil');
    // A stops renewing (partitioned). B campaigns; at no instant are both valid holders.
    let next: Term | undefined;
    for (let i = 0; i < 40 && !next; i++) {
      next = await b.acquire('node-b');
      if (next) assert.equal(term.isValid(), false, `overlap at ${w.clock.now()}: A still valid while B acquired`);
      else await w.advance(500);
    }
    assert.ok(next);
    assert.ok(w.clock.now() >= confirmed);
    await a.close();
    await b.close();
  });

  it('renew proves the key, not only the session: a deleted key ends the term as taken', async () => {
    const a = w.lock();
    const term = await a.acquire('node-a');
    assert.ok(term);
    // An operator deletes the key; the session is still alive and renews fine.
    const res = await fetch(`${w.fake.url}/v1/kv/service/demo/leader`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    await assert.rejects(a.renew(term), (err) => err instanceof LockLostError && err.reason === 'taken');
    assert.equal(reasonOf(term), 'taken');
    await a.close();
  });

  it('a stale key without a session is deleted with cas and recreated, so the token is fresh', async () => {
    const put = await fetch(`${w.fake.url}/v1/kv/service/demo/leader`, { method: 'PUT', body: 'someone' });
    assert.equal(await put.json(), true);
    const stale = w.fake.kv('service/demo/leader')!.createIndex;
    const a = w.lock();
    assert.equal((await a.get()).leader, undefined, 'a key no session holds is free');
    const term = await a.acquire('node-a');
    assert.ok(term);
    assert.ok(term.token > BigInt(stale));
    assert.ok(w.fake.requests.some((r) => r.method === 'DELETE' && r.query.cas === String(stale)));
    await a.close();
  });

  it('locks on one client share one session; the last close() destroys it', async () => {
    const client = w.client();
    const mk = (key: string): ConsulLock => new ConsulLock({ client, key, ttlMs: TTL, clock: w.clock });
    const one = mk('service/one/leader');
    const two = mk('service/two/leader');
    const twin = mk('service/one/leader');
    const t1 = await one.acquire('node-a');
    const t2 = await two.acquire('node-a');
    assert.ok(t1 && t2);
    assert.equal(one.sessionId, two.sessionId);
    assert.equal(w.fake.requests.filter((r) => r.path === '/v1/session/create').length, 1);
    // Consul would let the shared session "acquire" a key it already holds; the lock must not.
    assert.equal(await twin.acquire('node-b'), undefined);
    await one.close();
    await twin.close();
    assert.equal(w.fake.sessions().length, 1, 'still used by the second lock');
    await two.close();
    assert.equal(w.fake.sessions().length, 0);
    assert.ok(w.fake.requests.some((r) => r.path.startsWith('/v1/session/destroy/')));
    client.close();
  });

  it('handover on a Patroni layout also writes Patroni’s failover record', async () => {
    const a = w.lock({ key: 'service/pg/leader' });
    const b = w.lock({ key: 'service/pg/leader' });
    const term = await a.acquire('pg-0');
    assert.ok(term);
    assert.equal(await a.release(term, { successor: 'pg-1' }), true);
    assert.deepEqual(JSON.parse(w.fake.kv('service/pg/failover')!.value.toString()), { leader: 'pg-0', member: 'pg-1' });
    const nom = w.fake.kv('service/pg/leader-successor');
    assert.equal(nom?.value.toString(), 'pg-1');
    const nomSession = w.fake.session(nom!.session!);
    assert.equal(nomSession?.behavior, 'delete');
    assert.ok(nomSession!.ttlMs >= 10_000);
    assert.equal((await b.get()).successor, 'pg-1');
    assert.ok(await b.acquire('pg-1'));
    assert.equal(w.fake.kv('service/pg/leader-successor'), undefined);
    await a.close();
    await b.close();
  });

  it('ACL 403 → ForbiddenError (no token, and a read-only token writing)', async () => {
    w.fake.setAcl({ tokens: { 'rw-token': 'write', 'ro-token': 'read' } });
    const anon = w.lock();
    await assert.rejects(anon.acquire('node-a'), (err) => err instanceof ForbiddenError && err.status === 403);
    const ro = w.lock({ token: 'ro-token' });
    await assert.rejects(ro.acquire('node-a'), ForbiddenError);
    assert.deepEqual(await ro.get(), {});
    const rw = w.lock({ token: 'rw-token' });
    assert.ok(await rw.acquire('node-a'));
    assert.ok(w.fake.requests.every((r) => !r.path.includes('rw-token')), 'the token travels in a header, not the URL');
    const err = await ro.acquire('x').catch((e: unknown) => e);
    assert.ok(err instanceof ForbiddenError && !String(err.message).includes('ro-token'), 'messages never contain the token');
    await Promise.all([anon.close(), ro.close(), rw.close()]);
  });

  it('server down → BackendUnavailableError; the term stays until validUntil and then ends as expired', async () => {
    const a = w.lock();
    const term = await a.acquire('node-a');
    assert.ok(term);
    await w.fake.down();
    await assert.rejects(a.renew(term), (err) => err instanceof BackendUnavailableError && !(err instanceof DeadlineExceededError));
    assert.ok(term.isValid(), 'one failed renew does not end the term');
    await assert.rejects(a.get(), BackendUnavailableError);
    await w.clock.advanceTo(term.validUntil - 1);
    assert.ok(term.isValid());
    await w.clock.advance(1);
    assert.equal(term.isValid(), false);
    assert.equal(reasonOf(term), 'expired');
    await w.fake.up();
    await a.close();
  });

  it('get() retries one failed read at once; two failures in a row are BackendUnavailableError', async () => {
    const a = w.lock({ ttlMs: TTL });
    const term = await a.acquire('node-a');
    assert.ok(term);
    w.fake.addFault({ kind: 'error', match: { method: 'GET', path: '/v1/kv/' }, times: 1 });
    assert.equal((await a.get()).leader?.holder, 'node-a');
    w.fake.addFault({ kind: 'error', match: { method: 'GET', path: '/v1/kv/' }, times: 2 });
    await assert.rejects(a.get(), BackendUnavailableError);
    w.fake.clearFaults();
    await a.close();
  });

  it('a blackholed agent → DeadlineExceededError within requestTimeoutMs', async () => {
    const a = new ConsulLock({ client: w.client({ requestTimeoutMs: 300 }), ttlMs: TTL, clock: w.clock });
    const term = await a.acquire('node-a');
    assert.ok(term);
    w.fake.addFault({ kind: 'blackhole', match: { path: '/v1/kv/' } });
    const started = performance.now();
    await assert.rejects(a.renew(term), DeadlineExceededError);
    assert.ok(performance.now() - started < 3000);
    assert.ok(term.isValid());
    w.fake.clearFaults();
    await a.close();
  });

  it('an ambiguous acquire (applied, response lost) is decided by a re-read', async () => {
    const a = w.lock();
    w.fake.addFault({ kind: 'drop-response', match: { method: 'PUT', path: '/v1/kv/' }, times: 1 });
    const term = await a.acquire('node-a');
    assert.ok(term, 'the re-read shows the key is ours');
    assert.equal((await a.get()).leader?.token, term.token);
    await a.close();
  });

  it('an invalidated session is replaced on the next acquire', async () => {
    const a = w.lock();
    const t1 = await a.acquire('node-a');
    assert.ok(t1);
    const sid = a.sessionId!;
    w.fake.invalidateSession(sid);
    await assert.rejects(a.renew(t1), LockLostError);
    const t2 = await a.acquire('node-a');
    assert.ok(t2);
    assert.notEqual(a.sessionId, sid);
    assert.ok(t2.token > t1.token);
    await a.close();
  });
});

describe('ConsulLock options', () => {
  const problems = (fn: () => unknown): readonly string[] => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    assert.fail('expected a ConfigError');
  };

  it('rejects a session TTL outside Consul’s 10 s – 86400 s, listing every broken rule at once', () => {
    const p = problems(() => new ConsulLock({ ttlMs: 5000, lockDelayMs: 90_000, key: '', env: {} }));
    assert.equal(p.length, 3, p.join('\n'));
    assert.match(p.join('\n'), /10–86400 s, got 5 s/);
    assert.match(p.join('\n'), /lockDelayMs/);
    assert.match(p.join('\n'), /key must not be empty/);
    assert.equal(problems(() => new ConsulLock({ ttlMs: 86_400_001, env: {} })).length, 1);
    assert.doesNotThrow(() => new ConsulLock({ ttlMs: 9_001, env: {} }).close()); // ceil → 10 s
  });

  it('session checks require lock-delay ≥ ttl', () => {
    assert.match(problems(() => new ConsulLock({ sessionChecks: ['serfHealth'], env: {} }))[0]!, /lockDelayMs must be ≥ ttlMs/);
    assert.doesNotThrow(() => new ConsulLock({ sessionChecks: ['serfHealth'], lockDelayMs: 15_000, env: {} }).close());
  });

  it('reads CONSUL_HTTP_ADDR / CONSUL_HTTP_SSL / CONSUL_HTTP_TOKEN, refuses to skip TLS verification', async () => {
    const { ConsulClient } = await import('../../../src/backends/consul/index.js');
    assert.equal(new ConsulClient({ env: { CONSUL_HTTP_ADDR: 'https://consul.example:8501' } }).address, 'https://consul.example:8501');
    assert.equal(new ConsulClient({ env: { CONSUL_HTTP_ADDR: 'consul.example:8500', CONSUL_HTTP_SSL: 'true' } }).address, 'https://consul.example:8500');
    assert.equal(new ConsulClient({ env: {} }).address, 'http://127.0.0.1:8500');
    assert.equal(new ConsulClient({ host: '::1', port: 8600, env: {} }).address, 'http://[::1]:8600');
    assert.match(problems(() => new ConsulClient({ env: { CONSUL_HTTP_SSL_VERIFY: 'false' } })).join(), /always verifies TLS/);
    assert.match(problems(() => new ConsulClient({ env: { CONSUL_HTTP_ADDR: 'unix:///tmp/consul.sock' } })).join(), /unix sockets/);
    assert.match(problems(() => new ConsulClient({ env: { CONSUL_CACERT: '/nonexistent/ca.pem' } })).join(), /CONSUL_CACERT/);
    // The token from the environment is sent as X-Consul-Token.
    const w = await ConsulWorld.start();
    try {
      const c = new ConsulClient({ env: { CONSUL_HTTP_ADDR: w.fake.address, CONSUL_HTTP_TOKEN: 'env-token' } });
      await c.kvGet('x');
      assert.equal(w.fake.requests.at(-1)?.token, 'env-token');
      c.close();
    } finally {
      await w.close();
    }
  });
});

describe('ConsulLock watch', () => {
  it('resets the blocking index to 0 when Consul’s index goes backwards', async () => {
    const indexes: bigint[] = [];
    const replies: KvRead[] = [
      { index: 100n, entries: [] },
      { index: 120n, entries: [] },
      { index: 7n, entries: [] }, // a restored snapshot / new cluster
      { index: 9n, entries: [] },
    ];
    const ac = new AbortController();
    const stub = {
      address: 'stub',
      kvGet: async (_key: string, o?: { index?: bigint }) => {
        indexes.push(o?.index ?? 0n);
        const r = replies.shift();
        if (!r) {
          ac.abort();
          throw new Error('done');
        }
        return r;
      },
    } as unknown as ConsulApi;
    const lock = new ConsulLock({ client: stub, ttlMs: TTL, clock: new VirtualClock() });
    for await (const _ of lock.watch({ signal: ac.signal })) void _;
    assert.deepEqual(indexes, [0n, 100n, 120n, 0n, 9n]);
  });

  it('clamps an X-Consul-Index of 0 to 1 and backs off instead of reading in a loop (issue 13)', async () => {
    const indexes: bigint[] = [];
    const ac = new AbortController();
    const clock = new VirtualClock();
    const stub = {
      address: 'stub',
      // A server whose reads never carry an index (header 0 or missing): each answers at once.
      kvGet: (_key: string, o?: { index?: bigint; signal?: AbortSignal }) => {
        indexes.push(o?.index ?? 0n);
        // Bound for the unfixed code, which would read for ever: stop answering after 2,000 reads.
        if (indexes.length > 2000) return new Promise<KvRead>((_r, reject) => o?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
        return new Promise<KvRead>((resolve) => setImmediate(() => resolve({ index: 0n, entries: [] })));
      },
    } as unknown as ConsulApi;
    const lock = new ConsulLock({ client: stub, ttlMs: TTL, clock });
    const warnings: unknown[] = [];
    lock.on('warning', (e) => warnings.push(e));
    const done = (async () => {
      for await (const _ of lock.watch({ signal: ac.signal })) void _;
    })();
    // Small steps, so each read's continuation has run (a real macrotask) before time moves on.
    for (let i = 0; i < 200; i++) await clock.advance(50);
    ac.abort();
    await done;
    // Back-off 100, 200, 400, ... 5000 ms: at most ~10 reads in 10 s (the unfixed loop read 2,000+).
    assert.ok(indexes.length <= 12, `${indexes.length} reads in 10 s`);
    assert.deepEqual(indexes.slice(0, 3), [0n, 1n, 1n], 'after an index of 0 the next query blocks on index 1');
    assert.equal(warnings.length, 1, 'one warning, not one per read');
  });
});

describe('ConsulLock over HTTPS', () => {
  it('verifies the agent with CONSUL_CACERT; without the CA the handshake fails as BackendUnavailableError', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { FakeConsulServer } = await import('../../../src/testing/index.js');
    const fake = await FakeConsulServer.start({ tls: true });
    const dir = mkdtempSync(join(tmpdir(), 'leaderlock-consul-'));
    try {
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, fake.ca!);
      const env = { CONSUL_HTTP_ADDR: fake.address, CONSUL_HTTP_SSL: 'true', CONSUL_CACERT: caFile };
      const ok = new ConsulLock({ env, ttlMs: TTL });
      const term = await ok.acquire('node-a');
      assert.ok(term);
      await ok.close();
      const untrusted = new ConsulLock({ env: { CONSUL_HTTP_ADDR: fake.url }, ttlMs: TTL });
      await assert.rejects(untrusted.acquire('node-b'), (err) => err instanceof BackendUnavailableError && /certificate/i.test(err.message));
      await untrusted.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await fake.close();
    }
  });
});

describe('ConsulLock leader metadata (issue 12)', () => {
  const pair = (key: string, value: string, createIndex: bigint, session: string | undefined, flags = 0): KvPair => ({ key, value, createIndex, modifyIndex: createIndex, lockIndex: 1n, flags, session });
  it('shows <key>-meta only when the holder session wrote it for this term (Flags = token)', () => {
    const leader = pair('service/x/leader', 'node-a', 40n, 's1');
    const state = (meta: KvPair) => toLockState(pickEntries([leader, meta], 'service/x/leader', 'service/x/leader-successor'), 15_000);
    assert.equal(state(pair('service/x/leader-meta', 'addr', 41n, 's1', 40)).leader?.metadata, 'addr');
    assert.equal(state(pair('service/x/leader-meta', 'old', 30n, 's1', 29)).leader?.metadata, undefined, 'an earlier term of the same session');
    assert.equal(state(pair('service/x/leader-meta', 'other', 41n, 's2', 40)).leader?.metadata, undefined, 'another session');
    assert.equal(state(pair('service/x/leader-meta', 'x', 41n, undefined, 40)).leader?.metadata, undefined, 'not held by a session');
  });
});
