/**
 * `npm run demo`: three candidates on the in-memory backend, in real time, for about 15 s. The leader
 * is stopped gracefully, crashed (cut off, never releasing), and asked to hand over to a named
 * candidate; the timeline shows who leads, the fencing token, and how long each handover took.
 *
 * ttl is 2 s here so a crash failover fits in the demo; production ttls are usually 10–30 s.
 */
import { MemoryLock, MemoryStore } from 'leaderlock/memory';
import { LeaderElector, systemClock, type Term } from 'leaderlock';

const TTL_MS = 2_000;
const clock = systemClock;
const t0 = clock.now();
const store = new MemoryStore({ clock });
const stamp = (): string => `[${((clock.now() - t0) / 1000).toFixed(3).padStart(6)} s]`;
const say = (text: string): void => console.log(`${stamp()} ${text}`);

interface Candidate {
  name: string;
  lock: MemoryLock;
  elector: LeaderElector;
}

let pending: { what: string; since: number } | undefined;
const handovers: Array<{ what: string; ms: number }> = [];

function candidate(name: string): Candidate {
  const lock = new MemoryLock(store, { key: 'demo/leader', ttlMs: TTL_MS, name });
  const elector = new LeaderElector(lock, { identity: name });
  elector.on('elected', (term: Term) => {
    let took = '';
    if (pending) {
      const ms = clock.now() - pending.since;
      handovers.push({ what: pending.what, ms });
      took = ` — ${pending.what} took ${ms.toFixed(1)} ms`;
      pending = undefined;
    }
    say(`${name} LEADS    token ${term.token}${took}`);
  });
  elector.on('lost', (term, reason) => say(`${name} steps down (token ${term.token}, ${reason})`));
  return { name, lock, elector };
}

const sleep = (ms: number): Promise<void> => clock.sleep(ms);
const leader = (cs: Candidate[]): Candidate | undefined => cs.find((c) => c.elector.isLeader);

async function main(): Promise<void> {
  const cs = ['alpha', 'bravo', 'charlie'].map(candidate);
  const timing = cs[0]!.elector.explain();
  console.log(`leaderlock demo — memory backend, ${timing.text.split('\n')[0]}\n`);
  for (const c of cs) await c.elector.start();
  await sleep(1_500);

  for (let round = 0; round < 2; round++) {
    const l = leader(cs)!;
    say(`stopping ${l.name} gracefully (release → watch wakes the others)`);
    pending = { what: 'graceful handover', since: clock.now() };
    await l.elector.stop();
    await sleep(1_000);
    say(`${l.name} rejoins as a candidate`);
    await l.elector.start();
    await sleep(1_000);
  }

  const crashed = leader(cs)!;
  say(`crashing ${crashed.name}: cut off from the store, it never releases (failover waits for the ttl)`);
  pending = { what: 'crash failover', since: clock.now() };
  crashed.lock.faults.partition();
  await sleep(TTL_MS + 1_500);
  crashed.lock.faults.heal();
  say(`${crashed.name} is back and campaigns again`);
  await sleep(1_000);

  const l = leader(cs)!;
  const target = cs.find((c) => c !== l && c !== crashed) ?? cs.find((c) => c !== l)!;
  say(`${l.name} hands over to ${target.name} (named successor; the third candidate holds back)`);
  pending = { what: `handover to ${target.name}`, since: clock.now() };
  await l.elector.handover(target.name);
  await sleep(1_500);

  say('stopping everyone');
  await Promise.all(cs.map((c) => c.elector.stop()));
  await Promise.all(cs.map((c) => c.lock.close()));

  console.log('\nhandover times (memory backend, real clock):');
  for (const h of handovers) console.log(`  ${h.what.padEnd(28)} ${h.ms.toFixed(1).padStart(8)} ms`);
  console.log(`\ntotal ${((clock.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
