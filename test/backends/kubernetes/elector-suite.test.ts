/**
 * The shared elector suite (test/elector/suite.ts) on FakeKubeApiServer, configured as its run on the
 * three real kube-apiservers in `npm run test:real` (test/real/kube.test.ts): a Lease, each elector
 * with its own KubeClient through endpointsResolver, real time, a crash = that client closed without
 * a release. The same assertions hold on the fake and on the real servers.
 */
import { after, before, describe, it } from 'node:test';
import { KubeClient } from '../../../src/backends/kubernetes/client.js';
import { KubernetesLock } from '../../../src/backends/kubernetes/lock.js';
import { endpointsResolver } from '../../../src/backends/kubernetes/resolver.js';
import { systemClock } from '../../../src/core/clock.js';
import type { LeaderLock } from '../../../src/core/lock.js';
import { FakeKubeApiServer } from '../../../src/testing/fake-kube/index.js';
import { electorSuite } from '../../elector/suite.js';

// Whole seconds (a Lease's duration), and renews well apart within them.
const TTL = 3000;
let fake: FakeKubeApiServer;
let name = 'elector-0';
let seq = 0;
const clients = new Map<LeaderLock, KubeClient>();

before(async () => {
  fake = await FakeKubeApiServer.start({ nodes: 3 });
});
after(async () => {
  await fake?.close();
});

electorSuite(
  {
    name: 'kubernetes Lease, FakeKubeApiServer via endpointsResolver, real time',
    ttlMs: TTL,
    expiryMs: TTL + 1000,
    newLock: async () => {
      const c = new KubeClient({ ...fake.clientOptions(), resolver: endpointsResolver(), requestTimeoutMs: 1000 });
      c.on('warning', () => undefined);
      const lock = new KubernetesLock({ client: c, kind: 'Lease', name, ttlMs: TTL, requestTimeoutMs: 1000 });
      clients.set(lock, c);
      return lock;
    },
    crash: async (lock) => {
      await clients.get(lock)!.close();
    },
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => systemClock.now(),
    cleanup: async () => {
      await Promise.allSettled([...clients.values()].map((c) => c.close()));
      clients.clear();
      name = `elector-${++seq}`;
    },
  },
  { describe, it },
);
