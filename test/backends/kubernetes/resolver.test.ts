import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KubeClient, endpointsResolver, staticResolver, addressesFromEndpoints, addressesFromSlices, type EndpointsResolverOptions, type KubeSwitchEvent } from '../../../src/backends/kubernetes/index.js';
import { FakeKubeApiServer } from '../../../src/testing/index.js';
import { LeaderLockError } from '../../../src/core/errors.js';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';

describe('kubernetes API endpoint resolvers', () => {
  let fake: FakeKubeApiServer;
  const clients: KubeClient[] = [];

  before(async () => {
    fake = await FakeKubeApiServer.start({ nodes: 3, endpointsUpdateDelayMs: 60_000 });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await fake.close();
  });

  /** A client through endpointsResolver whose first sticky node is node 0. */
  function client(opts: EndpointsResolverOptions = {}, timeoutMs = 3000) {
    const resolver = endpointsResolver({ pick: () => 0, ...opts });
    const c = new KubeClient({ ...fake.clientOptions(), resolver, requestTimeoutMs: timeoutMs });
    const switches: KubeSwitchEvent[] = [];
    const warnings: LeaderLockError[] = [];
    c.on('switch', (e: KubeSwitchEvent) => switches.push(e));
    c.on('warning', (e: LeaderLockError) => warnings.push(e));
    clients.push(c);
    return { c, resolver, switches, warnings };
  }

  const leaseHits = (since: number) => fake.requests.slice(since).filter((r) => r.path.startsWith(LEASES));
  const healAll = async () => {
    fake.allowAll();
    for (const n of fake.nodes) {
      n.heal();
      await n.up();
    }
  };

  it('sends every request to one API server IP while it is healthy', async () => {
    const { c, resolver } = client();
    const mark = fake.requests.length;
    for (let i = 0; i < 10; i++) await c.request({ method: 'GET', path: LEASES });
    const nodes = new Set(leaseHits(mark).map((r) => r.node));
    assert.deepEqual([...nodes], [fake.node(0).ip]);
    assert.equal(resolver.stats.source, 'EndpointSlice');
    assert.equal(resolver.stats.addresses.length, 3);
    assert.equal(c.stats.endpoint, fake.node(0).url.href);
  });

  it('issue 12: a healthy client reports no switch at start-up (its endpoint reads via the service are not its endpoint)', async () => {
    const { c, switches } = client();
    for (let i = 0; i < 5; i++) await c.request({ method: 'GET', path: LEASES });
    assert.equal(c.stats.switches, 0);
    assert.equal(switches.length, 1, switches.map((e) => `${e.from?.host ?? '-'} → ${e.to.host}: ${e.reason}`).join('\n'));
    assert.equal(switches[0]!.from, undefined);
    assert.equal(switches[0]!.to.href, fake.node(0).url.href);
    assert.equal(switches[0]!.reason, 'first connection');
  });

  it('rotates to the next IP when the sticky one refuses, and the same call succeeds', async () => {
    const { c, resolver, switches } = client();
    await c.request({ method: 'GET', path: LEASES });
    const switchesBefore = c.stats.switches;
    await fake.node(0).down();
    try {
      const res = await c.request({ method: 'GET', path: LEASES });
      assert.equal(res.status, 200);
      assert.equal(resolver.stats.rotations, 1);
      assert.equal(c.stats.endpoint, fake.node(1).url.href);
      const last = switches.at(-1)!;
      assert.equal(last.from?.href, fake.node(0).url.href);
      assert.equal(last.to.href, fake.node(1).url.href);
      assert.match(last.reason, /127\.0\.0\.2/);
      assert.equal(c.stats.switches, switchesBefore + 1);
    } finally {
      await healAll();
    }
  });

  it('gives a blackholed IP only its share of the deadline, then succeeds on the next', async () => {
    const { c } = client({}, 2000);
    await c.request({ method: 'GET', path: LEASES });
    fake.node(0).blackhole();
    try {
      const t0 = performance.now();
      const res = await c.request({ method: 'GET', path: LEASES });
      const took = performance.now() - t0;
      assert.equal(res.status, 200);
      // 3 IPs + the service address share 2000 ms: the blackholed try gets 500 ms.
      assert.ok(took >= 450 && took < 1200, `took ${took} ms`);
      assert.equal(c.stats.endpoint, fake.node(1).url.href);
    } finally {
      await healAll();
    }
  });

  it('switches at the next refresh when the sticky IP leaves the list (still up)', async () => {
    const { c, resolver, switches } = client();
    await c.request({ method: 'GET', path: LEASES });
    const sliceBefore = await c.request<Record<string, unknown>>({ method: 'GET', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes' });
    const slice = sliceBefore.body as { endpoints: { addresses: string[] }[] };
    const others = slice.endpoints.filter((e) => e.addresses[0] !== fake.node(0).ip);
    await c.request({ method: 'PUT', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes', body: { ...sliceBefore.body, endpoints: others } });
    await resolver.refresh();
    const mark = fake.requests.length;
    for (let i = 0; i < 5; i++) await c.request({ method: 'GET', path: LEASES });
    const nodes = new Set(leaseHits(mark).map((r) => r.node));
    assert.equal(nodes.size, 1);
    assert.ok(!nodes.has(fake.node(0).ip), 'node 0 is no longer listed');
    assert.equal(resolver.stats.rotations, 1);
    assert.equal(switches.at(-1)?.from?.href, fake.node(0).url.href);
    // Put the slice back for the next tests.
    const now = await c.request<{ metadata: { resourceVersion: string } }>({ method: 'GET', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes' });
    await c.request({ method: 'PUT', path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes', body: { ...sliceBefore.body, metadata: { ...(sliceBefore.body.metadata as object), resourceVersion: now.body.metadata.resourceVersion } } });
  });

  it('uses the service address for good, with one warning, when both endpoint reads are forbidden', async () => {
    fake.deny({ resource: ['endpointslices', 'endpoints'], namespace: 'default' });
    try {
      const { c, resolver, warnings } = client({ refreshMs: 0 });
      const before = fake.serviceConnections;
      for (let i = 0; i < 3; i++) assert.equal((await c.request({ method: 'GET', path: LEASES })).status, 200);
      assert.equal(resolver.stats.fallback, true);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!.message, /forbidden.*service address/);
      assert.ok(fake.serviceConnections > before, 'went through the service address');
      assert.equal(c.stats.endpoint, fake.serviceUrl.href);
      fake.allowAll();
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(resolver.stats.fallback, true, 'pinned for the life of the process');
      assert.equal(warnings.length, 1);
    } finally {
      fake.allowAll();
    }
  });

  it('uses the service address for good when the default/kubernetes Endpoints object does not exist', async () => {
    const lift = fake.deny({ resource: 'endpointslices' });
    const admin = new KubeClient({ ...fake.clientOptions(), resolver: staticResolver([fake.node(1).url]) });
    clients.push(admin);
    await admin.request({ method: 'DELETE', path: '/api/v1/namespaces/default/endpoints/kubernetes' });
    try {
      const { c, resolver, warnings } = client();
      assert.equal((await c.request({ method: 'GET', path: LEASES })).status, 200);
      assert.equal(resolver.stats.fallback, true);
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.status, 404);
      assert.match(warnings[0]!.message, /does not exist/);
    } finally {
      lift();
      // A node coming up makes the fake write default/kubernetes again.
      await fake.node(2).down();
      await fake.node(2).up();
    }
  });

  it('reads v1 Endpoints when EndpointSlices are not served (404)', async () => {
    const enable = fake.disableResource('endpointslices');
    try {
      const { c, resolver } = client();
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(resolver.stats.source, 'Endpoints');
      assert.equal(resolver.stats.fallback, false);
      assert.equal(c.stats.endpoint, fake.node(0).url.href);
    } finally {
      enable();
    }
  });

  it('never pins the fallback because of 5xx on the list read; the bypass resumes once healed', async () => {
    for (const n of fake.nodes) n.faults.serverError = 500;
    try {
      const { c, resolver, warnings } = client({ refreshMs: 0, refreshTimeoutMs: 500 });
      await assert.rejects(c.request({ method: 'GET', path: LEASES, timeoutMs: 1000 }));
      assert.equal(resolver.stats.fallback, false);
      assert.ok(resolver.stats.refreshFailures >= 1);
      for (const n of fake.nodes) n.heal();
      await resolver.refresh();
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(resolver.stats.addresses.length, 3);
      assert.equal(c.stats.endpoint, fake.node(0).url.href);
      assert.equal(warnings.length, 0);
    } finally {
      await healAll();
    }
  });

  it('tries the service address last when every IP fails', async () => {
    const { c } = client({}, 3000);
    await c.request({ method: 'GET', path: LEASES });
    // Every node answers 500 except through... the service forwards to the same nodes, so make
    // the nodes refuse and check the order of tries instead.
    for (const n of fake.nodes) n.faults.serverError = 503;
    const mark = fake.requests.length;
    try {
      await assert.rejects(c.request({ method: 'GET', path: LEASES, timeoutMs: 1500 }), (err: LeaderLockError) => err.status === 503);
      const order = fake.requests.slice(mark).map((r) => r.node);
      assert.deepEqual(order.slice(0, 4).slice(0, 3), [fake.node(0).ip, fake.node(1).ip, fake.node(2).ip]);
      assert.ok(order.length >= 4, 'the fourth try went through the service address to some node');
    } finally {
      await healAll();
    }
  });

  it('staticResolver sticks to the first URL that works and rotates on failure', async () => {
    const resolver = staticResolver([fake.node(1).url, fake.node(2).url]);
    const c = new KubeClient({ ...fake.clientOptions(), resolver });
    clients.push(c);
    await c.request({ method: 'GET', path: LEASES });
    assert.equal(c.stats.endpoint, fake.node(1).url.href);
    await fake.node(1).down();
    try {
      await c.request({ method: 'GET', path: LEASES });
      assert.equal(c.stats.endpoint, fake.node(2).url.href);
    } finally {
      await healAll();
    }
  });
});

describe('endpoint address parsing', () => {
  it('takes ready addresses and the https port from EndpointSlices (unset ready = ready)', () => {
    const urls = addressesFromSlices({
      items: [
        {
          ports: [{ name: 'https', port: 6443 }],
          endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }, { addresses: ['10.0.0.2'], conditions: { ready: false } }, { addresses: ['fd00::3'] }],
        },
      ],
    });
    assert.deepEqual(urls.map((u) => u.href), ['https://10.0.0.1:6443/', 'https://[fd00::3]:6443/']);
  });

  it('takes addresses (not notReadyAddresses) and the https port from v1 Endpoints', () => {
    const urls = addressesFromEndpoints({
      subsets: [{ addresses: [{ ip: '10.0.0.1' }], notReadyAddresses: [{ ip: '10.0.0.9' }], ports: [{ name: 'metrics', port: 1 }, { name: 'https', port: 443 }] }],
    });
    assert.deepEqual(urls.map((u) => u.href), ['https://10.0.0.1/']);
  });
});
