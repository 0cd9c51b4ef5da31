/**
 * ConsulLock's conformance suite on a real Consul agent (-dev, loopback, no update check). Real
 * time: Consul's shortest session TTL is 10 s and it invalidates a session up to 2 × TTL after the
 * last renew, so the expiry cases take tens of seconds each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConsulLock } from '../../src/backends/consul/index.js';
import { lockConformance } from '../../src/testing/conformance.js';
import { realBin, realUnavailable } from './harness/bins.js';
import { startConsul, type ConsulAgent } from './harness/consul.js';
import { assertPatroniTakesHoldsReleases, patroniPeer } from './harness/peers.js';

const TTL_MS = 10_000;
let agent: ConsulAgent;
let n = 0;

const unavailable = realUnavailable('consul');
if (unavailable) {
  // Loud, not silent: node:test prints the reason next to SKIP and counts it in "# skipped".
  it('ConsulLock conformance and Patroni 4 on a real Consul agent', { skip: unavailable }, () => undefined);
} else {
  // A server the build could not make fails here with the build script's message (never a silent skip).
  it('the servers this file needs were built (scripts/real/build.sh)', () => {
    realBin('consul');
  });

  before(async () => {
    agent = await startConsul();
    const self = (await (await fetch(`${agent.url}/v1/agent/self`)).json()) as { Config: { Version: string } };
    console.log(`real server: consul ${self.Config.Version} (pinned ${agent.version})`);
    assert.equal(`v${self.Config.Version}`, agent.version);
  });
  after(() => agent?.stop());

  lockConformance(
    {
      name: 'consul (real agent)',
      ttlMs: TTL_MS,
      expiryMs: 2 * TTL_MS + 1000,
      newLock: async () => new ConsulLock({ address: agent.url, key: `service/real${n}/leader`, ttlMs: TTL_MS, env: {} }),
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      cleanup: async () => {
        n++;
      },
    },
    { describe, it },
  );

  describe('Patroni 4 on real Consul', () => {
    it('Patroni 4 (Consul DCS) takes, holds and releases its leader key', async () => {
      const scope = 'patroni-real';
      // ttl 20: Patroni's session TTL is ttl / 2, and Consul's minimum is 10 s.
      const peer = patroniPeer({ scope, name: 'patroni-a', ttl: 20, loop_wait: 1, retry_timeout: 5, consul: { host: `${agent.host}:${agent.port}` } }, 4, { ...process.env, CHECKPOINT_DISABLE: '1' });
      const ours = new ConsulLock({ address: agent.url, key: `service/${scope}/leader`, ttlMs: TTL_MS, env: {} });
      await assertPatroniTakesHoldsReleases(peer, ours, { tryAcquire: true });
    });
  });
}
