/**
 * Option checks that used to be missing (issue 13, item 4): each is a `ConfigError` at construction
 * that names the problem, listing every problem at once; never a TypeError, a hang or a silent default.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdLock, EtcdSession } from '../../src/backends/etcd/index.js';
import { ConsulLock } from '../../src/backends/consul/index.js';
import { explicitConfig } from '../../src/backends/kubernetes/config.js';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { LeaderElector } from '../../src/index.js';

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('no ConfigError thrown');
}

const etcd = (o: Record<string, unknown>): unknown => new EtcdSession(o as ConstructorParameters<typeof EtcdSession>[0]);

describe('etcd option checks', () => {
  it('endpoints of the wrong type: a number, null, an array with a number', () => {
    assert.match(problems(() => etcd({ endpoints: 2379 })).join('\n'), /endpoints must be a URL string or an array of URL strings.*number 2379/);
    assert.match(problems(() => etcd({ endpoints: null })).join('\n'), /endpoints must be .* got null/);
    assert.match(problems(() => etcd({ endpoints: ['http://127.0.0.1:2379', 2380] })).join('\n'), /endpoints must be/);
  });

  it('port 0 and a query string or fragment in an endpoint; every problem at once', () => {
    const p = problems(() => etcd({ endpoints: ['http://127.0.0.1:0', 'http://127.0.0.1:2379?x=1', 'http://127.0.0.1:2379#f'] }));
    assert.equal(p.length, 3, p.join('\n'));
    assert.match(p[0]!, /port must be 1–65535, got 0/);
    assert.match(p[1]!, /must not have a query string/);
    assert.match(p[2]!, /must not have a query string or fragment/);
  });

  it('a 1 MB key (also through scope) is refused with the limit; 1536 bytes is accepted', () => {
    const big = `/k/${'x'.repeat(1024 * 1024)}`;
    const p = problems(() => new EtcdLock({ endpoints: 'http://127.0.0.1:2379', key: big }));
    assert.equal(p.length, 1);
    assert.match(p[0]!, /key must be at most 1536 bytes \(UTF-8\), got 1048579/);
    assert.ok(p[0]!.length < 200, 'the message does not quote the key');
    assert.match(problems(() => new EtcdLock({ endpoints: 'http://127.0.0.1:2379', scope: 'x'.repeat(2000) })).join('\n'), /at most 1536 bytes/);
    // Multi-byte characters count as bytes: 600 × 'é' (2 bytes) + prefix is over the limit.
    assert.match(problems(() => new EtcdLock({ endpoints: 'http://127.0.0.1:2379', key: `/${'é'.repeat(800)}` })).join('\n'), /got 1601/);
    const ok = new EtcdLock({ endpoints: 'http://127.0.0.1:2379', key: `/${'x'.repeat(1535)}` });
    void ok.close();
  });
});

describe('consul option checks', () => {
  it('a 1 MB key is refused with the limit', () => {
    const p = problems(() => new ConsulLock({ key: `k/${'x'.repeat(1024 * 1024)}`, env: {} }));
    assert.match(p.join('\n'), /key must be at most 1536 bytes \(UTF-8\), got 1048578/);
  });
});

describe('kubernetes option checks', () => {
  it('a token with a newline (or another control character) is refused without quoting it', () => {
    for (const token of ['secret-token\n', 'sec\r\nret', 'a\u2028b']) {
      const p = problems(() => explicitConfig({ server: 'https://127.0.0.1:6443', token }));
      assert.match(p.join('\n'), /token must not contain a newline/);
      assert.doesNotMatch(p.join('\n'), /sec/);
    }
    assert.ok(explicitConfig({ server: 'https://127.0.0.1:6443', token: 'abc.def-ghi' }));
  });
});

describe('identities with bidi or line-separator characters (core check, every backend)', () => {
  const bad = ['node\u202eevil', 'a\u2066b', 'a\u200fb', 'a\u2028b', 'a\u2029b', 'a\u0085b', 'a\u061cb'];
  it('holder of acquire is refused on memory, etcd and consul before any I/O', async () => {
    const store = new MemoryStore();
    const mem = new MemoryLock(store, { key: 'k' });
    const et = new EtcdLock({ endpoints: 'http://127.0.0.1:1', key: '/k' });
    const co = new ConsulLock({ key: 'k', env: {}, address: '127.0.0.1:1' });
    try {
      for (const holder of bad) {
        for (const l of [mem, et, co]) {
          await assert.rejects(() => l.acquire(holder), (err: unknown) => err instanceof ConfigError && /bidirectional-control or line-separator/.test(err.message), `${l.backend} ${JSON.stringify(holder)}`);
        }
      }
      for (const identity of bad) {
        const p = problems(() => new LeaderElector(mem, { identity }));
        assert.match(p.join('\n'), /identity must not contain bidirectional-control or line-separator characters/);
      }
      // Ordinary non-ASCII names stay allowed.
      assert.ok(await mem.acquire('nœud-é-東京'));
    } finally {
      await Promise.allSettled([mem.close(), et.close(), co.close()]);
    }
  });
});
