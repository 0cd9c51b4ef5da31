/**
 * One elector in its own process, as users deploy it, for bench/handover-process.ts. Argument: a
 * JSON config ({ backend, identity, key, ttlMs, … connection }). Reports on stdout, one JSON object
 * per line, every `at` in high-resolution wall time (performance.timeOrigin + performance.now(), so
 * it compares across processes):
 *
 *   {ev:'started'}          after elector.start() resolved and the watch delivered its first state
 *   {ev:'elected', at}      the moment 'elected' is emitted (written at once, before anything else)
 *   {ev:'trace', marks}     after the handover: [step, at] pairs — signal received, stop() entered,
 *                           release sent/acked, watch states seen, acquire sent/acked, elected, stop() done
 *
 * SIGTERM → elector.stop() → lock.close() → exit 0, as a service's shutdown hook would do.
 * The marks are kept in memory and printed after the timed part, so tracing costs no pipe writes
 * on the critical path.
 */
import { LeaderElector, type LeaderLock, type LockState } from '../src/index.js';
import { EtcdLock } from '../src/backends/etcd/index.js';
import { ConsulClient, ConsulLock } from '../src/backends/consul/index.js';
import { KubeClient, KubernetesLock, endpointsResolver, type KubeClientOptions } from '../src/backends/kubernetes/index.js';

interface Config {
  backend: 'etcd' | 'consul' | 'kubernetes';
  identity: string;
  key: string;
  ttlMs: number;
  endpoints?: string[];
  address?: string;
  /** FakeKubeApiServer.clientOptions(), or a real cluster's (bench/handover-kube-real.ts). */
  kube?: KubeClientOptions;
  /** 'endpoints': talk to one API server from default/kubernetes directly (endpointsResolver), not via the service address. */
  kubeResolver?: 'endpoints';
  /** LeaderElector timings; default: derived from ttlMs. */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}
const cfg = JSON.parse(process.argv[2]!) as Config;
process.setSourceMapsEnabled(false);
const wall = (): number => performance.timeOrigin + performance.now();
const marks: [string, number][] = [];
const mark = (step: string): void => void marks.push([step, wall()]);
const say = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

function openLock(): LeaderLock {
  if (cfg.backend === 'etcd') return new EtcdLock({ endpoints: cfg.endpoints!, key: cfg.key, ttlMs: cfg.ttlMs });
  if (cfg.backend === 'consul') return new ConsulLock({ client: new ConsulClient({ address: cfg.address!, env: {} }), key: cfg.key, ttlMs: cfg.ttlMs });
  const resolver = cfg.kubeResolver === 'endpoints' ? { resolver: endpointsResolver() } : {};
  const client = new KubeClient({ ...cfg.kube!, ...resolver });
  if (cfg.kubeResolver === 'endpoints') {
    // Each request of the lock (not the watch stream) as its own step: which of GET and PUT the time goes to.
    const request = client.request.bind(client);
    client.request = (async (opts) => {
      mark(`  ${opts.method} sent`);
      try {
        return await request(opts);
      } finally {
        mark(`  ${opts.method} answered`);
      }
    }) as typeof client.request;
  }
  return new KubernetesLock({ client, name: cfg.key, ttlMs: cfg.ttlMs });
}

const lock = openLock();
// Trace hooks: instance methods shadow the prototype's; the elector only sees the lock interface.
const { acquire, release, watch } = { acquire: lock.acquire.bind(lock), release: lock.release.bind(lock), watch: lock.watch.bind(lock) };
lock.acquire = async (...args) => {
  mark('acquire sent');
  const t = await acquire(...args);
  mark(t ? 'acquire acked (won)' : 'acquire acked (held)');
  return t;
};
lock.release = async (...args) => {
  mark('release sent');
  const ok = await release(...args);
  mark('release acked');
  return ok;
};
let firstState!: () => void;
const watching = new Promise<void>((resolve) => (firstState = resolve));
lock.watch = (opts) => {
  const feed = watch(opts);
  return {
    [Symbol.asyncIterator]() {
      const it = feed[Symbol.asyncIterator]();
      return {
        async next() {
          const r = await it.next();
          if (!r.done) {
            const s: LockState = r.value;
            mark(`watch: ${!s.leader ? 'free' : s.leader.holder === cfg.identity ? 'held by us' : 'held by another'}`);
            firstState();
          }
          return r;
        },
        async return(v?: unknown) {
          return (await it.return?.(v)) ?? { done: true as const, value: undefined };
        },
      };
    },
  };
};

const elector = new LeaderElector(lock, { identity: cfg.identity, renewDeadlineMs: cfg.renewDeadlineMs, retryPeriodMs: cfg.retryPeriodMs });
elector.on('warning', () => undefined);
elector.on('elected', (t) => {
  const at = wall();
  say({ ev: 'elected', at, token: t.token.toString() });
  marks.push(['elected emitted', at]);
  say({ ev: 'trace', marks: marks.splice(0) });
});

let stopping = false;
process.on('SIGTERM', () => {
  mark('SIGTERM received');
  if (stopping) return;
  stopping = true;
  mark('stop() entered');
  void elector
    .stop()
    .then(() => mark('stop() resolved'))
    .then(() => lock.close())
    .then(() => {
      mark('lock closed');
      say({ ev: 'trace', marks: marks.splice(0) });
      process.exit(0);
    });
});

await elector.start();
await watching;
marks.splice(0); // start-up marks are not part of a handover
say({ ev: 'started', leader: elector.isLeader });
