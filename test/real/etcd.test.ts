/**
 * EtcdLock's conformance suite on etcd 3.6, built by scripts/real/build.sh (the default tier runs it
 * on the Debian etcd, 3.4). The runner points LEADERLOCK_ETCD_BIN at the built binary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdLock } from '../../src/backends/etcd/index.js';
import { lockConformance } from '../../src/testing/conformance.js';
import { systemClock } from '../../src/core/clock.js';
import { electorSuite } from '../elector/suite.js';
import { ETCD_BIN, startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { realBin, realVersion } from './harness/bins.js';
import { assertPatroniTakesHoldsReleases, patroniPeer } from './harness/peers.js';
import { sh } from './harness/procs.js';

const TTL = 2000;
let cluster: EtcdCluster;
let n = 0;

// A server the build could not make fails here with the build script's message (never a silent skip).
it('the servers this file needs were built (scripts/real/build.sh)', () => {
  realBin('etcd');
});

before(async () => {
  assert.equal(ETCD_BIN, realBin('etcd'), 'the runner sets LEADERLOCK_ETCD_BIN to the built etcd');
  const version = sh(ETCD_BIN, ['--version']).split('\n')[0];
  console.log(`real server: ${version} (pinned ${realVersion('etcd')})`);
  assert.match(version ?? '', /etcd Version: 3\.6\./);
  cluster = await startEtcd();
});
after(() => cluster?.stop());

lockConformance(
  {
    name: `etcd ${realVersion('etcd')}`,
    ttlMs: TTL,
    expiryMs: TTL + 1000,
    newLock: async () => new EtcdLock({ endpoints: cluster.endpoints, key: `/real-conformance/${n}/leader`, ttlMs: TTL, requestTimeoutMs: 1500 }),
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    cleanup: async () => {
      n++;
    },
  },
  { describe, it },
);

// The shared elector suite (test/elector/suite.ts, also run on the memory fake by `npm test`), in
// real time: each elector has its own EtcdLock and session, as separate processes would. A crash
// abandons the session (connections closed, the lease left to expire), as a killed process does.
let electorKey = 0;
electorSuite(
  {
    name: `etcd ${realVersion('etcd')}, real time`,
    ttlMs: 3000,
    expiryMs: 3000 + 1000,
    newLock: async () => new EtcdLock({ endpoints: cluster.endpoints, key: `/real-elector/${electorKey}/leader`, ttlMs: 3000, requestTimeoutMs: 1000 }),
    crash: (lock) => (lock as EtcdLock).session.abandon(),
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => systemClock.now(),
    cleanup: async () => {
      electorKey++;
    },
  },
  { describe, it },
);

describe('Patroni 4 on etcd 3.6', () => {
  it('Patroni 4 (etcd3 DCS) takes, holds and releases its leader key', async () => {
    const scope = 'patroni-real';
    const host = new URL(cluster.endpoints[0]!).host;
    const peer = patroniPeer({ scope, name: 'patroni-a', ttl: 10, loop_wait: 1, retry_timeout: 5, etcd3: { hosts: [host] } }, 4);
    const ours = new EtcdLock({ endpoints: cluster.endpoints, key: `/service/${scope}/leader`, ttlMs: 10_000, requestTimeoutMs: 2000 });
    await assertPatroniTakesHoldsReleases(peer, ours, { tryAcquire: true });
  });
});
