/**
 * The shared elector suite (suite.ts) on the in-memory fake with a virtual clock. The same cases run
 * on real etcd 3.6 and real kube-apiservers in `npm run test:real` (test/real/etcd.test.ts, kube.test.ts).
 */
import { describe, it } from 'node:test';
import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { electorSuite } from './suite.js';

const TTL = 15_000;
let clock = new VirtualClock();
let store = new MemoryStore({ clock });
let n = 0;

electorSuite(
  {
    name: 'memory fake, virtual clock',
    ttlMs: TTL,
    expiryMs: TTL,
    newLock: async () => new MemoryLock(store, { key: 'leader', ttlMs: TTL, clock, name: `lock-${n++}` }),
    crash: (lock) => (lock as MemoryLock).faults.partition(),
    advance: (ms) => clock.advance(ms),
    now: () => clock.now(),
    cleanup: async () => {
      clock = new VirtualClock();
      store = new MemoryStore({ clock });
    },
  },
  { describe, it },
);
