/**
 * The shared LeaderLock conformance suite against a real single-node etcd. `advance` sleeps for real;
 * every case gets a fresh key. etcd deletes an expired lease's keys on its 500 ms expiry tick, so the
 * worst case from the last renew until another can acquire is ttl + 0.5 s + a round trip (expiryMs).
 */
import { after, before, describe, it } from 'node:test';
import { EtcdLock } from '../../../src/backends/etcd/index.js';
import { lockConformance } from '../../../src/testing/conformance.js';
import { startEtcd, type EtcdCluster } from '../../helpers/etcd-cluster.js';

const TTL = 2000;
let cluster: EtcdCluster;
let n = 0;

before(async () => {
  cluster = await startEtcd();
});
after(() => cluster?.stop());

lockConformance(
  {
    name: 'etcd',
    metadata: true,
    ttlMs: TTL,
    expiryMs: TTL + 1000,
    newLock: async () => new EtcdLock({ endpoints: cluster.endpoints, key: `/conformance/${n}/leader`, ttlMs: TTL, requestTimeoutMs: 1500 }),
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    cleanup: async () => {
      n++;
    },
  },
  { describe, it },
);
