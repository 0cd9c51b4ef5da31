import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulLock, ConsulServiceRegistration } from '../../src/backends/consul/index.js';
import { EtcdLock, EtcdSession } from '../../src/backends/etcd/index.js';
import { KubeClient } from '../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../src/backends/kubernetes/lock.js';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { MAX_TIMER_MS } from '../../src/core/clock.js';
import { ConfigError } from '../../src/core/errors.js';
import { LeaderElector, explainTimings } from '../../src/elector/index.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { StubKubeApi } from '../backends/kubernetes/stub-api.js';

/**
 * Issue 13: Node fires a timer longer than 2^31−1 ms (~24.8 days) after 1 ms. Our own duration
 * options that large are a `ConfigError` naming the limit, on every backend and the elector.
 */
const HUGE = MAX_TIMER_MS + 1;

function assertLimit(make: () => unknown, option: string): void {
  assert.throws(make, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `${option}: ${String(err)}`);
    const hit = err.problems.filter((p) => p.startsWith(`${option} `) && p.includes(String(MAX_TIMER_MS)) && /24\.8 days/.test(p));
    assert.equal(hit.length, 1, `${option}: one problem naming the limit, got ${JSON.stringify(err.problems)}`);
    return true;
  });
}

describe('durations above 2^31−1 ms are a ConfigError naming the limit', () => {
  it('ttlMs on memory, etcd and Kubernetes (Consul has its own lower session limit)', () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    assertLimit(() => new MemoryLock(store, { ttlMs: HUGE }), 'ttlMs');
    assertLimit(() => new EtcdSession({ endpoints: ['http://127.0.0.1:2379'], ttlMs: HUGE }), 'ttlMs');
    assertLimit(() => new EtcdLock({ endpoints: ['http://127.0.0.1:2379'], key: '/x', ttlMs: HUGE }), 'ttlMs');
    assertLimit(() => new KubernetesLock({ client: new StubKubeApi(), kind: 'Lease', name: 'x', ttlMs: HUGE, env: {} }), 'ttlMs');
    assert.throws(() => new ConsulLock({ address: '127.0.0.1:8500', ttlMs: HUGE, env: {} }), ConfigError);
  });

  it('requestTimeoutMs and other *Ms options on every backend', () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    assertLimit(() => new MemoryLock(store, { ttlMs: 3000, requestTimeoutMs: HUGE }), 'requestTimeoutMs');
    assertLimit(() => new EtcdSession({ endpoints: ['http://127.0.0.1:2379'], ttlMs: 3000, requestTimeoutMs: HUGE }), 'requestTimeoutMs');
    assertLimit(() => new ConsulLock({ address: '127.0.0.1:8500', ttlMs: 10_000, requestTimeoutMs: HUGE, env: {} }), 'requestTimeoutMs');
    assertLimit(() => new KubernetesLock({ client: new StubKubeApi(), kind: 'Lease', name: 'x', ttlMs: 3000, requestTimeoutMs: HUGE, env: {} }), 'requestTimeoutMs');
    assertLimit(() => new KubernetesLock({ client: new StubKubeApi(), kind: 'Lease', name: 'x', ttlMs: 3000, watchIdleTimeoutMs: HUGE, env: {} }), 'watchIdleTimeoutMs');
    assertLimit(() => new KubeClient({ server: 'https://127.0.0.1:6443', token: 't', requestTimeoutMs: HUGE }), 'requestTimeoutMs');
    assertLimit(() => new ConsulServiceRegistration({ service: 'db', identity: 'a', checkTtlMs: HUGE, address: '127.0.0.1:8500', env: {} } as never), 'checkTtlMs');
  });

  it('the elector’s renewDeadlineMs / retryPeriodMs, and explainTimings', () => {
    const store = new MemoryStore({ clock: new VirtualClock() });
    const lock = new MemoryLock(store, { ttlMs: 3000, clock: store.clock });
    assertLimit(() => new LeaderElector(lock, { identity: 'a', retryPeriodMs: HUGE }), 'retryPeriodMs');
    assertLimit(() => new LeaderElector(lock, { identity: 'a', renewDeadlineMs: HUGE }), 'renewDeadlineMs');
    const e = explainTimings({ ttlMs: HUGE * 2 });
    assert.ok(!e.ok && e.problems.some((p) => p.startsWith('ttlMs ') && p.includes(String(MAX_TIMER_MS))), JSON.stringify(e.problems));
    // The limit itself is fine.
    assert.doesNotThrow(() => new MemoryLock(store, { ttlMs: MAX_TIMER_MS, clock: store.clock }).close());
  });
});
