import { MemoryLock, MemoryStore } from '../../src/backends/memory/index.js';
import { LeaderElector, type Term } from '../../src/index.js';
import { VirtualClock, type DriftingClock } from '../../src/testing/virtual-clock.js';

/** Small, fast, seedable PRNG (mulberry32): the same seed gives the same schedule. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TermInterval {
  node: string;
  token: bigint;
  /** True (store) time when the holder learned it leads. */
  start: number;
  /** True time after which the holder can no longer act: min(end seen, validUntil on its own clock). */
  end: number;
  /** True time of the term's last validUntil (it only moves forward, on confirmed renewals). */
  validUntil: number;
  /** The term's guarded work (a runWhileLeader fn): true time it started, and settled (Infinity: never). */
  work?: { start: number; end: number };
}

export interface ScheduleResult {
  seed: number;
  intervals: TermInterval[];
  faults: string[];
  violations: string[];
}

const TTL = 3_000;
const DRIFT = 0.01;

/**
 * One randomized run: `nodes` electors on one MemoryStore, each on its own drifting clock (rate within
 * ±drift, slow clocks at most 1 − drift so the configured tolerance holds), under a random schedule of
 * partitions, pauses (some longer than the ttl), lost requests and responses, latency, stop/start and
 * handovers. Records every term as an interval of true time during which `isValid()` was true.
 */
export async function runSchedule(seed: number, opts: { nodes?: number; durationMs?: number; slowestRate?: number } = {}): Promise<ScheduleResult> {
  const rnd = prng(seed);
  const n = opts.nodes ?? 3;
  const duration = opts.durationMs ?? 20_000;
  const base = new VirtualClock();
  const store = new MemoryStore({ clock: base });
  const faults: string[] = [];
  const intervals: TermInterval[] = [];
  const violations: string[] = [];

  interface Member {
    name: string;
    clock: DriftingClock;
    lock: MemoryLock;
    elector: LeaderElector;
    running: boolean;
    /** Registers this node's guarded work (again after every start: runWhileLeader ends with stop()). */
    work(): void;
  }
  const members: Member[] = [];
  for (let i = 0; i < n; i++) {
    const name = `n${i}`;
    // [1 − drift, 1 + drift) by default; `slowestRate` below 1 − drift breaks the tolerance on purpose.
    const slowest = opts.slowestRate ?? 1 - DRIFT;
    const rate = slowest + rnd() * (1 + DRIFT - slowest);
    const clock = base.child({ rate });
    const lock = new MemoryLock(store, { key: 'leader', ttlMs: TTL, clock, drift: DRIFT, name, random: rnd });
    const elector = new LeaderElector(lock, { identity: name, renewDeadlineMs: 2_000, retryPeriodMs: 400, drift: DRIFT });
    const m: Member = { name, clock, lock, elector, running: false, work: () => undefined };
    // True time at which a validUntil on this node's clock is reached (children are created at t = 0).
    const trueTime = (local: number): number => local / rate;
    let current: { term: Term; iv: TermInterval } | undefined;
    elector.on('elected', (term: Term) => {
      const iv: TermInterval = { node: name, token: term.token, start: base.now(), end: trueTime(term.validUntil), validUntil: trueTime(term.validUntil) };
      intervals.push(iv);
      current = { term, iv };
      term.signal.addEventListener('abort', () => (iv.end = Math.min(base.now(), trueTime(term.validUntil))), { once: true });
    });
    // validUntil only moves forward, on confirmed renewals: keep the interval's end in step.
    elector.on('renew', () => {
      if (current && !current.term.ended) current.iv.end = current.iv.validUntil = trueTime(current.term.validUntil);
    });
    // Guarded work that does not always stop when told: after the term's signal aborts it goes on for
    // 0, up to 1.5 ttl, or for ever (ignores the signal), on the node's own clock (a pause holds it).
    m.work = () =>
      void elector.runWhileLeader(async (term) => {
        const iv = intervals.find((x) => x.node === name && x.token === term.token);
        const w = { start: base.now(), end: Infinity };
        if (iv) iv.work = w;
        if (!term.signal.aborted) await new Promise((resolve) => term.signal.addEventListener('abort', resolve, { once: true }));
        const r = rnd();
        if (r < 0.15) await new Promise(() => undefined);
        if (r < 0.6) await clock.sleep(Math.floor(rnd() * 1.5 * TTL));
        w.end = base.now();
      });
    members.push(m);
  }

  // Cross-check by sampling: never two nodes with isValid() at the same instant.
  const sample = (): void => {
    const valid = members.filter((m) => m.elector.term?.isValid());
    if (valid.length > 1) violations.push(`t=${base.now()}: ${valid.map((m) => m.name).join(' and ')} both valid`);
  };

  for (const m of members) {
    m.running = true;
    m.work();
    void m.elector.start();
  }

  let t = 0;
  while (t < duration) {
    const step = 50 + Math.floor(rnd() * 700);
    t += step;
    const m = members[Math.floor(rnd() * n)]!;
    const r = rnd();
    if (r < 0.12) {
      const ms = Math.floor(rnd() * 2.5 * TTL);
      m.lock.faults.partition(ms);
      faults.push(`${base.now()} partition ${m.name} ${ms}`);
    } else if (r < 0.24 && !m.clock.paused) {
      const ms = Math.floor(rnd() * 2.5 * TTL);
      m.clock.pause();
      faults.push(`${base.now()} pause ${m.name} ${ms}`);
      base.setTimer(() => m.clock.resume(), ms);
    } else if (r < 0.32) {
      m.lock.faults.dropRequests(1 + Math.floor(rnd() * 3));
      faults.push(`${base.now()} drop-requests ${m.name}`);
    } else if (r < 0.4) {
      m.lock.faults.dropResponses(1 + Math.floor(rnd() * 3));
      faults.push(`${base.now()} drop-responses ${m.name}`);
    } else if (r < 0.48) {
      const ms = Math.floor(rnd() * 300);
      m.lock.faults.set({ latencyMs: ms, jitterMs: Math.floor(rnd() * 100) });
      faults.push(`${base.now()} latency ${m.name} ${ms}`);
    } else if (r < 0.54 && !m.clock.paused) {
      if (m.running) {
        m.running = false;
        void m.elector.stop();
        faults.push(`${base.now()} stop ${m.name}`);
      } else {
        m.running = true;
        m.work();
        void m.elector.start();
        faults.push(`${base.now()} start ${m.name}`);
      }
    } else if (r < 0.6 && m.elector.isLeader && !m.clock.paused) {
      const target = members[Math.floor(rnd() * n)]!;
      if (target !== m) {
        void m.elector.handover(target.name);
        faults.push(`${base.now()} handover ${m.name} -> ${target.name}`);
      }
    }
    // Move in small steps so the sampling check sees short overlaps too.
    for (let moved = 0; moved < step; moved += 25) {
      await base.advance(Math.min(25, step - moved));
      sample();
    }
  }

  for (const m of members) {
    if (m.clock.paused) m.clock.resume();
    m.lock.faults.reset();
  }
  const stopping = Promise.all(members.map((m) => m.elector.stop()));
  let done = false;
  void stopping.finally(() => (done = true));
  for (let i = 0; i < 400 && !done; i++) await base.advance(50);
  await Promise.all(members.map((m) => m.lock.close()));

  // Intervals ordered by start must not overlap, and tokens must strictly increase in that order.
  const sorted = [...intervals].sort((a, b) => a.start - b.start || Number(a.token - b.token));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.token <= prev.token) violations.push(`token did not increase: ${prev.node}#${prev.token} then ${cur.node}#${cur.token}`);
    if (cur.start < prev.end) violations.push(`overlap: ${prev.node}#${prev.token} valid until ${prev.end}, ${cur.node}#${cur.token} from ${cur.start}`);
  }
  // Release only when nothing of the term can still act: no term starts while an earlier term's
  // work still runs and that term's validUntil has not passed (after it, only fencing protects).
  for (let i = 0; i < sorted.length; i++) {
    const prev = sorted[i]!;
    if (!prev.work) continue;
    // 1e-6: validUntil converted to true time (local / rate) may land one float ulp off the store's time.
    const busyUntil = Math.min(prev.work.end, prev.validUntil) - 1e-6;
    for (let j = i + 1; j < sorted.length && sorted[j]!.start < busyUntil; j++) {
      const cur = sorted[j]!;
      violations.push(`work overlap: ${prev.node}#${prev.token}'s work ran until ${prev.work.end} (validUntil ${prev.validUntil}), ${cur.node}#${cur.token} started at ${cur.start}`);
    }
  }
  return { seed, intervals, faults, violations };
}
