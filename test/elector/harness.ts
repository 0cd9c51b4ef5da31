import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { LeaderElector, type LeaderElectorOptions } from '../../src/index.js';
import type { LostReason, Term } from '../../src/index.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';

export interface Node {
  name: string;
  lock: MemoryLock;
  elector: LeaderElector;
  elected: Term[];
  lost: Array<{ term: Term; reason: LostReason }>;
  leaders: Array<string | undefined>;
  warnings: Error[];
  /** Event names in order, for ordering assertions. */
  events: string[];
}

export interface Cluster {
  clock: VirtualClock;
  store: MemoryStore;
  nodes: Node[];
  node(name: string): Node;
  leaders(): Node[];
  stopAll(): Promise<void>;
}

/** n electors named a, b, c… on one MemoryStore and one VirtualClock, ttl 15 s unless given. */
export function cluster(n: number, opts: { ttlMs?: number; elector?: Partial<LeaderElectorOptions>; key?: string } = {}): Cluster {
  const clock = new VirtualClock();
  const store = new MemoryStore({ clock });
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) nodes.push(makeNode(store, clock, String.fromCharCode(97 + i), opts));
  return {
    clock,
    store,
    nodes,
    node: (name) => nodes.find((x) => x.name === name)!,
    leaders: () => nodes.filter((x) => x.elector.isLeader),
    stopAll: async () => {
      await settle(clock, Promise.all(nodes.map((x) => x.elector.stop())));
      await settle(clock, Promise.all(nodes.map((x) => x.lock.close())));
    },
  };
}

export function makeNode(
  store: MemoryStore,
  clock: VirtualClock,
  name: string,
  opts: { ttlMs?: number; elector?: Partial<LeaderElectorOptions>; key?: string } = {},
): Node {
  const lock = new MemoryLock(store, { key: opts.key ?? 'leader', ttlMs: opts.ttlMs ?? 15_000, clock, name });
  const elector = new LeaderElector(lock, { identity: name, ...opts.elector });
  const node: Node = { name, lock, elector, elected: [], lost: [], leaders: [], warnings: [], events: [] };
  elector.on('elected', (t) => {
    node.elected.push(t);
    node.events.push(`elected:${t.token}`);
  });
  elector.on('lost', (term, reason) => {
    node.lost.push({ term, reason });
    node.events.push(`lost:${term.token}:${reason}`);
  });
  elector.on('leader', (h) => node.leaders.push(h));
  elector.on('warning', (e) => node.warnings.push(e));
  return node;
}

/**
 * Awaits `p` while moving the virtual clock in `stepMs` steps (operations in flight may need virtual
 * time to finish: a request deadline, latency). Fails after `maxSteps` instead of hanging.
 */
export async function settle<T>(clock: VirtualClock, p: Promise<T>, stepMs = 100, maxSteps = 2_000): Promise<T> {
  let done = false;
  const watched = p.finally(() => (done = true));
  for (let i = 0; i < maxSteps && !done; i++) await clock.advance(stepMs);
  if (!done) throw new Error(`settle: still pending after ${maxSteps * stepMs} ms of virtual time`);
  return watched;
}
