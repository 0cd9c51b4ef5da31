import { describe, it, after, before } from 'node:test';
import { lockConformance } from '../../../src/testing/index.js';
import { ConsulWorld } from './harness.js';

// One fake Consul on a VirtualClock; the fake invalidates sessions at the worst case Consul allows
// (2 × TTL after the last renew), so expiryMs = 2 × ttl (+ lock-delay, 0 here).
const TTL_MS = 10_000;
let world: ConsulWorld;
before(async () => {
  world = await ConsulWorld.start();
});
after(async () => {
  await world.close();
});

let n = 0;
const noUnknownRoutes = (): void => {
  if (world.fake.unknownRequests.length > 0) throw new Error(`unknown routes hit: ${world.fake.unknownRequests.map((r) => `${r.method} ${r.path}`).join(', ')}`);
};
lockConformance(
  {
    name: 'consul (FakeConsulServer, virtual clock)',
    metadata: true,
    ttlMs: TTL_MS,
    expiryMs: 2 * TTL_MS,
    // A fresh key per test keeps cases independent without restarting the fake.
    newLock: async () => world.lock({ key: `service/conf${n}/leader`, ttlMs: TTL_MS }),
    advance: (ms) => world.advance(ms),
    cleanup: async () => {
      n += 1;
      noUnknownRoutes();
    },
  },
  { describe, it },
);

// Consul's default lock-delay (15 s) and an invalidation halfway through Consul's range: the suite's
// bound becomes 2 × ttl + lock-delay, the documented crash-failover bound.
const LOCK_DELAY_MS = 15_000;
let world2: ConsulWorld;
before(async () => {
  world2 = await ConsulWorld.start({ sessionTtlFactor: 1.5 });
});
after(async () => {
  await world2.close();
});
let m = 0;
lockConformance(
  {
    name: 'consul, lock-delay 15 s, invalidation at 1.5 × TTL',
    ttlMs: TTL_MS,
    expiryMs: 2 * TTL_MS + LOCK_DELAY_MS,
    newLock: async () => world2.lock({ key: `service/delay${m}/leader`, ttlMs: TTL_MS, lockDelayMs: LOCK_DELAY_MS }),
    advance: (ms) => world2.advance(ms),
    cleanup: async () => {
      m += 1;
      if (world2.fake.unknownRequests.length > 0) throw new Error('unknown routes hit');
    },
  },
  { describe, it },
);
