/**
 * A Kubernetes controller that leads through a `coordination.k8s.io/v1` Lease — the client-go
 * leader-election pattern, with a fencing token and local-clock step-down.
 *
 *   node --conditions=source --import tsx examples/k8s-controller.ts --seconds 5
 *
 * Without a cluster (no in-cluster service account, no kubeconfig) — or with `--fake` — it starts a
 * FakeKubeApiServer and runs two replicas of the controller against it; the leader is stopped half
 * way so the timeline shows a graceful handover. With a cluster it runs one replica with the
 * in-cluster service account or your kubeconfig (`$KUBECONFIG`, `~/.kube/config`); start it in
 * several pods (or terminals) to see them take turns. It stops after `--seconds` (default 5 on the
 * fake, until SIGINT/SIGTERM on a cluster) and releases the Lease on the way out.
 *
 * On a real cluster the service account needs (namespace-scoped Role):
 *   - apiGroups: ["coordination.k8s.io"]  resources: ["leases"]  verbs: ["get", "create", "update", "watch", "list"]
 *   - with `endpointsResolver()` also: apiGroups: ["discovery.k8s.io"] resources: ["endpointslices"] verbs: ["list"]
 *     in namespace `default` (else it falls back to the service address and says so once)
 * and the pod's identity is best taken from the downward API:
 *   env: [{ name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }]
 *
 * Options: --seconds N, --name LEASE (default leaderlock-example), --namespace NS, --identity ID,
 * --ttl MS (default 15000 on a cluster, 3000 on the fake), --fake.
 */
import { existsSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LeaderElector, systemClock, type Term } from 'leaderlock';
import { KubeClient, KubernetesLock, endpointsResolver, isInCluster } from 'leaderlock/kubernetes';
import { FakeKubeApiServer } from 'leaderlock/testing';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string' },
    name: { type: 'string', default: 'leaderlock-example' },
    namespace: { type: 'string' },
    identity: { type: 'string' },
    ttl: { type: 'string' },
    fake: { type: 'boolean', default: false },
  },
});

const clock = systemClock;
const t0 = clock.now();
const say = (who: string, text: string): void => console.log(`[${((clock.now() - t0) / 1000).toFixed(3).padStart(7)} s] ${who.padEnd(12)} ${text}`);

function clusterConfigured(): boolean {
  if (isInCluster()) return true;
  const paths = (process.env.KUBECONFIG ?? join(homedir(), '.kube', 'config')).split(':').filter(Boolean);
  return paths.some((p) => existsSync(p));
}

let stoppingAt: number | undefined;

/** One replica: a lock, an elector, and the work it does only while leading. */
function replica(client: KubeClient, identity: string, ttlMs: number): { elector: LeaderElector; lock: KubernetesLock; done: Promise<void> } {
  const lock = new KubernetesLock({ client, kind: 'Lease', name: args.name!, namespace: args.namespace, ttlMs });
  const elector = new LeaderElector(lock, { identity });
  elector.on('elected', (term: Term) => {
    const took = stoppingAt === undefined ? '' : ` — handover took ${(clock.now() - stoppingAt).toFixed(1)} ms`;
    stoppingAt = undefined;
    say(identity, `LEADS   token ${term.token} (leaseTransitions)${took}`);
  });
  elector.on('lost', (term: Term, reason) => say(identity, `steps down (token ${term.token}: ${reason})`));
  elector.on('leader', (holder) => say(identity, `sees leader ${holder ?? '(none)'}`));
  elector.on('warning', (err) => say(identity, `warning: ${err.message}`));
  const done = elector.runWhileLeader(async (term) => {
    // The "reconcile loop": act only while the term is valid, and pass the token to what you write.
    let n = 0;
    while (term.isValid()) {
      say(identity, `reconcile #${++n} with fencing token ${term.token}`);
      await clock.sleep(1000, term.signal).catch(() => undefined);
    }
  });
  return { elector, lock, done };
}

async function main(): Promise<void> {
  const useFake = args.fake || !clusterConfigured();
  const seconds = args.seconds !== undefined ? Number(args.seconds) : useFake ? 5 : Infinity;
  if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, got ${args.seconds}`);
  const ttlMs = args.ttl !== undefined ? Number(args.ttl) : useFake ? 3000 : 15000;

  let fake: FakeKubeApiServer | undefined;
  const clients: KubeClient[] = [];
  const newClient = (): KubeClient => {
    const c = fake ? new KubeClient({ ...fake.clientOptions(), resolver: endpointsResolver() }) : new KubeClient({ resolver: endpointsResolver() });
    c.on('warning', (err: Error) => say('client', `warning: ${err.message}`));
    clients.push(c);
    return c;
  };
  if (useFake) {
    fake = await FakeKubeApiServer.start({ nodes: 3 });
    console.log(`no cluster configured (or --fake): FakeKubeApiServer at ${fake.serviceUrl.href}, API nodes ${fake.nodes.map((n) => n.ip).join(', ')}`);
  }
  const identities = useFake ? ['replica-a', 'replica-b'] : [args.identity ?? process.env.POD_NAME ?? `${hostname()}-${process.pid}`];
  const replicas = identities.map((id) => replica(newClient(), id, ttlMs));
  console.log(`Lease ${args.namespace ?? clients[0]!.namespace}/${args.name}, ttl ${ttlMs} ms, ${Number.isFinite(seconds) ? `${seconds} s` : 'until SIGINT'}\n`);

  const stopped = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stopped.abort());
  for (const r of replicas) await r.elector.start();

  if (useFake && replicas.length > 1) {
    // Half way, stop the leader gracefully: it releases, the other replica's watch wakes it at once.
    await clock.sleep((seconds * 1000) / 2, stopped.signal).catch(() => undefined);
    const leader = replicas.find((r) => r.elector.isLeader);
    if (leader && !stopped.signal.aborted) {
      say(leader.elector.identity, 'stopping (graceful: release the Lease)');
      stoppingAt = clock.now();
      await leader.elector.stop();
    }
    await clock.sleep((seconds * 1000) / 2, stopped.signal).catch(() => undefined);
  } else {
    await clock.sleep(Number.isFinite(seconds) ? seconds * 1000 : 2 ** 31 - 1, stopped.signal).catch(() => undefined);
  }

  for (const r of replicas) await r.elector.stop();
  await Promise.all(replicas.map((r) => r.done));
  await Promise.all(replicas.map((r) => r.lock.close()));
  await Promise.all(clients.map((c) => c.close()));
  await fake?.close();
  console.log('\nstopped; the Lease was released on the way out');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
