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
lockConformance(
  {
    name: 'consul (FakeConsulServer, virtual clock)',
    ttlMs: TTL_MS,
    expiryMs: 2 * TTL_MS,
    // A fresh key per test keeps cases independent without restarting the fake.
    newLock: async () => world.lock({ key: `service/conf${n}/leader`, ttlMs: TTL_MS }),
    advance: (ms) => world.advance(ms),
    cleanup: async () => {
      n += 1;
      if (world.fake.unknownRequests.length > 0) throw new Error(`unknown routes hit: ${world.fake.unknownRequests.map((r) => `${r.method} ${r.path}`).join(', ')}`);
    },
  },
  { describe, it },
);
