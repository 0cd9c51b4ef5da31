/**
 * One randomized fault schedule on real processes and a real 3-member etcd (issue 13, item 5).
 *
 * Four slots compete for one key: two plain elector processes (elector-proc.ts: EtcdLock +
 * runWhileLeader acting on the fenced resource) and two `leaderlock run` supervisors whose command
 * writes and POSTs every 20 ms. One slot, picked by the seed, reaches etcd only through a freezable
 * TCP forwarder to one member. A seeded PRNG picks, every 0.4–1.6 s, a fault: SIGKILL or SIGSTOP
 * (then SIGCONT) of the leader, a follower or the leader's command; SIGKILL (then restart) or
 * SIGSTOP of an etcd member (one at a time); a hung path for the forwarded slot. A dead process is
 * replaced by a new one in its slot (new identity) at the next step. The seed fixes the choices and
 * durations; the processes' own timing is real, so a replay is close, not identical.
 *
 * At the end everything is thawed and killed, and the checker (fault-check.ts) reads the line file
 * and the resource's records.
 */
import type { EtcdCluster } from '../helpers/etcd-cluster.js';
import { waitHealthy } from '../helpers/etcd-cluster.js';
import { fencedResource, type ResourceRecord } from './fenced-resource.js';
import { termSpans, violations } from './fault-check.js';
import { Harness, monotonicMs, sleep, type Line, type ProcEvent, type Supervisor } from './harness.js';
import { prng } from '../safety/schedule.js';

export interface ScheduleResult {
  seed: number;
  faults: string[];
  terms: number;
  actions: number;
  refused: number;
  violations: string[];
  /** Faults, elected/lost lines and each term's first/last action, relative to the start, in order. */
  timeline: string;
}

type Kind = 'elector' | 'supervisor';
interface Slot {
  name: string;
  kind: Kind;
  forwarded: boolean;
  gen: number;
  proc: Supervisor;
  stopped: boolean;
}

const TTL_MS = 3000;

export async function runSchedule(etcd: EtcdCluster, seed: number, durationMs: number): Promise<ScheduleResult> {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const between = (lo: number, hi: number): number => Math.round(lo + rnd() * (hi - lo));
  const h = new Harness();
  const resource = await fencedResource();
  const hosts = etcd.endpoints.map((e) => new URL(e).host);
  const fwdMember = Math.floor(rnd() * hosts.length);
  const fwd = await h.forwarder(hosts[fwdMember]!);
  const key = `/faults/random/${seed}`;
  const t0 = monotonicMs();
  const faults: Array<{ at: number; text: string }> = [];
  const note = (text: string): void => void faults.push({ at: monotonicMs(), text });
  const allProcs: Supervisor[] = [];

  const spawnSlot = (s: Pick<Slot, 'name' | 'kind' | 'forwarded' | 'gen'>): Supervisor => {
    const identity = `${s.name}.${s.gen}`;
    const via = s.forwarded ? [fwd.address] : hosts;
    const p =
      s.kind === 'elector'
        ? h.elector(identity, { endpoints: via.map((x) => `http://${x}`), key, ttlMs: TTL_MS, resource: resource.url })
        : h.supervisor(identity, ['--backend', `etcd://${via.join(',')}`, '--key', key, '--ttl', `${TTL_MS}ms`, '--grace', '1s'], { LEADERLOCK_FENCED_URL: resource.url });
    allProcs.push(p);
    return p;
  };
  const forwardedSlot = Math.floor(rnd() * 4);
  const slots: Slot[] = (['e0', 'e1', 's0', 's1'] as const).map((name, i) => {
    const base = { name, kind: (name.startsWith('e') ? 'elector' : 'supervisor') as Kind, forwarded: i === forwardedSlot, gen: 0 };
    return { ...base, proc: spawnSlot(base), stopped: false };
  });
  note(`start: slots e0 e1 (electors) s0 s1 (leaderlock run); ${slots[forwardedSlot]!.name} reaches etcd member m${fwdMember} through the forwarder`);

  // Faults start once a first term acts (process start-up takes seconds on a busy host), bounded.
  await h.waitLines((ls) => ls.length > 0, 'a first term acting', 30_000).catch(() => note('no term acted within 30 s'));
  const t1 = monotonicMs();
  note('first action: faults start');

  const alive = (s: Slot): boolean => s.proc.child.exitCode === null && s.proc.child.signalCode === null;
  const pending = new Set<{ timer: NodeJS.Timeout; undo: () => Promise<void> | void }>();
  const later = (ms: number, undo: () => Promise<void> | void): void => {
    const entry = {
      timer: setTimeout(() => {
        pending.delete(entry);
        void Promise.resolve(undo()).catch(() => undefined);
      }, ms),
      undo,
    };
    pending.add(entry);
  };
  let memberBusy = false;
  let pathBusy = false;
  const counts: Record<string, number> = {};

  const stopFor = (pid: number, what: string, ms: number, onCont?: () => void): void => {
    try {
      process.kill(pid, 'SIGSTOP');
    } catch {
      return;
    }
    note(`SIGSTOP ${what} (pid ${pid}) for ${ms} ms`);
    later(ms, () => {
      onCont?.();
      try {
        process.kill(pid, 'SIGCONT');
        note(`SIGCONT ${what} (pid ${pid})`);
      } catch {
        // gone meanwhile
      }
    });
  };

  // Weighted: the leader and its command are the targets that matter most; a follower kill costs a
  // process start-up (seconds of CPU), so it is rarer.
  const faultKinds = [
    'kill-leader', 'kill-leader', 'stop-leader', 'stop-leader', 'stop-leader', 'kill-follower', 'stop-follower',
    'kill-command', 'stop-command', 'stop-command', 'kill-member', 'stop-member', 'stop-member', 'hang-path', 'hang-path',
  ] as const;
  try {
    while (monotonicMs() - t1 < durationMs) {
      await sleep(between(400, 2000));
      for (const s of slots) {
        if (alive(s)) continue;
        s.gen++;
        s.stopped = false;
        s.proc = spawnSlot(s);
        note(`respawn ${s.name} as ${s.name}.${s.gen}`);
      }
      const leader = slots.find((s) => alive(s) && s.proc.leading !== undefined && !s.stopped);
      const followers = slots.filter((s) => alive(s) && s !== leader && !s.stopped);
      const kind = pick(faultKinds);
      const target = kind.endsWith('leader') ? leader : kind.endsWith('follower') ? (followers.length ? pick(followers) : undefined) : undefined;
      let done = true;
      switch (kind) {
        case 'kill-leader':
        case 'kill-follower':
          if (!target) done = false;
          else {
            note(`SIGKILL ${kind.slice(5)} ${target.proc.identity} (pid ${target.proc.pid}${target.proc.leading ? `, token ${target.proc.leading}` : ''})`);
            target.proc.signal('SIGKILL');
          }
          break;
        case 'stop-leader':
        case 'stop-follower':
          if (!target) done = false;
          else {
            const t = target;
            t.stopped = true;
            stopFor(t.proc.pid, `${kind.slice(5)} ${t.proc.identity}`, between(300, 6000), () => (t.stopped = false));
          }
          break;
        case 'kill-command':
        case 'stop-command': {
          const sup = slots.find((s) => s.kind === 'supervisor' && alive(s) && s.proc.leading !== undefined);
          const pid = sup && h.commandOf(sup.proc.identity);
          if (!sup || !pid) done = false;
          else if (kind === 'kill-command') {
            note(`SIGKILL command of ${sup.proc.identity} (pid ${pid})`);
            process.kill(pid, 'SIGKILL');
          } else stopFor(pid, `command of ${sup.proc.identity}`, between(300, 6000));
          break;
        }
        case 'kill-member':
        case 'stop-member': {
          if (memberBusy) {
            done = false;
            break;
          }
          const m = pick(etcd.members);
          const ms = between(500, 4000);
          memberBusy = true;
          if (kind === 'kill-member') {
            await m.kill('SIGKILL');
            note(`SIGKILL etcd ${m.name}; restart in ${ms} ms`);
            later(ms, async () => {
              await m.start();
              memberBusy = false;
              note(`restarted etcd ${m.name}`);
            });
          } else {
            await m.kill('SIGSTOP');
            note(`SIGSTOP etcd ${m.name} for ${ms} ms`);
            later(ms, async () => {
              await m.kill('SIGCONT');
              memberBusy = false;
              note(`SIGCONT etcd ${m.name}`);
            });
          }
          break;
        }
        case 'hang-path': {
          if (pathBusy) {
            done = false;
            break;
          }
          const ms = between(500, 6000);
          pathBusy = true;
          fwd.freeze();
          note(`hang the path of ${slots[forwardedSlot]!.proc.identity} to etcd for ${ms} ms`);
          later(ms, () => {
            fwd.thaw();
            pathBusy = false;
            note('path thawed');
          });
          break;
        }
      }
      if (done) counts[kind] = (counts[kind] ?? 0) + 1;
    }
  } finally {
    // Undo what is pending (thaw, restart members), then kill everything this schedule started.
    for (const p of [...pending]) {
      clearTimeout(p.timer);
      pending.delete(p);
      await Promise.resolve(p.undo()).catch(() => undefined);
    }
    await h.killAll();
    await resource.close();
    await waitHealthy(etcd.members, 20_000);
  }

  const lines: Line[] = h.linesSnapshot;
  const records: readonly ResourceRecord[] = resource.records;
  const spans = termSpans(lines);
  const events: ProcEvent[] = allProcs.flatMap((p) => p.events);
  const rel = (at: number): string => `${((at - t0) / 1000).toFixed(3).padStart(7)} s`;
  const timeline = [
    ...faults.map((f) => ({ at: f.at, text: `FAULT ${f.text}` })),
    ...events.map((e) => ({ at: e.at, text: `${e.identity}: ${e.text}` })),
    ...spans.flatMap((s) => [
      { at: s.start, text: `ACT ${s.identity}/${s.token} first action (${s.writes} in the term)` },
      { at: s.end, text: `ACT ${s.identity}/${s.token} last action` },
    ]),
  ]
    .sort((a, b) => a.at - b.at)
    .map((e) => `${rel(e.at)}  ${e.text}`)
    .join('\n');
  return {
    seed,
    faults: Object.entries(counts).map(([k, n]) => `${k}×${n}`),
    terms: spans.length,
    actions: lines.length,
    refused: records.filter((r) => !r.accepted).length,
    violations: violations(lines, records),
    timeline,
  };
}
