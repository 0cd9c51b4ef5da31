/**
 * A Patroni-like HA daemon: one loop iteration every `loopWaitMs`, the `LeaderLock` used directly
 * (acquire when free, renew when held — Patroni's `run_cycle`), health endpoints for load balancers
 * and Kubernetes probes, and a role that switches between `primary` and `replica`.
 *
 * The rule that makes it safe: the daemon acts as primary only while `term.isValid()`, and demotes
 * the moment `term.signal` aborts — which the lock guarantees happens at `validUntil` at the latest,
 * before any other member can win the key. A daemon that cannot renew (network partition) therefore
 * steps down on its own, even though it never hears from the DCS again.
 *
 * Run it: `node --conditions=source --import tsx examples/ha-daemon.ts [--run-ms 6000]`
 * Two members share an in-memory DCS; after a second the leader is cut off from it, steps down at
 * its validUntil, and the other member takes over. Each member serves /primary, /replica,
 * /readiness, /liveness, /health and /metrics on 127.0.0.1; the script prints what they answer.
 * Swap `MemoryLock` for `EtcdLock`/`ConsulLock`/`KubernetesLock` for a real deployment.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { LockLostError, systemClock, type LeaderLock, type Term } from 'leaderlock';
import { createHealthHandler, type HealthStatus } from 'leaderlock/http';
import { MemoryLock, MemoryStore } from 'leaderlock/memory';

const { values } = parseArgs({ options: { 'run-ms': { type: 'string', default: '6000' }, 'ttl-ms': { type: 'string', default: '2000' } } });
const RUN_MS = Number(values['run-ms']);
const TTL_MS = Number(values['ttl-ms']);
const LOOP_WAIT_MS = TTL_MS / 4; // Patroni: loop_wait 10 s for ttl 30 s; renew several times per ttl
const clock = systemClock;
const t0 = clock.now();
const say = (text: string): void => console.log(`[${((clock.now() - t0) / 1000).toFixed(2).padStart(5)} s] ${text}`);

type Role = 'primary' | 'replica';

class HaDaemon {
  role: Role = 'replica';
  #term: Term | undefined;
  #leader: string | undefined;
  #lastCycleAt = clock.now();
  #lastRenewAt: number | undefined;
  #transitions = 0;
  #renewFailures = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly lock: LeaderLock,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    const term = this.#term;
    this.#term = undefined;
    this.#setRole('replica', 'shutting down');
    if (term) await this.lock.release(term).catch(() => false);
    await this.lock.close();
  }

  /** What the health endpoints judge. */
  status(): HealthStatus {
    const now = clock.now();
    const leading = this.#term !== undefined && !this.#term.ended;
    const s: HealthStatus = {
      identity: this.name,
      role: this.#stopped ? 'stopped' : leading ? 'leader' : this.#leader ? 'follower' : 'candidate',
      isValid: this.#term?.isValid() ?? false,
      // Liveness: the loop must have completed a cycle within 3 loop waits.
      loopStalled: !this.#stopped && now - this.#lastCycleAt > 3 * LOOP_WAIT_MS + TTL_MS,
      backend: this.lock.backend ?? 'custom',
      key: this.lock.key ?? 'leader',
      ttlMs: this.lock.ttlMs,
      loopAgeMs: now - this.#lastCycleAt,
      transitions: this.#transitions,
      renewFailures: this.#renewFailures,
    };
    if (this.#leader !== undefined) s.holder = this.#leader;
    if (leading) {
      s.token = this.#term!.token;
      s.validUntil = this.#term!.validUntil;
      if (this.#lastRenewAt !== undefined) s.lastRenewAgeMs = now - this.#lastRenewAt;
    }
    return s;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await this.#cycle();
      this.#lastCycleAt = clock.now();
      await clock.sleep(LOOP_WAIT_MS);
    }
  }

  /** One HA cycle: renew if we hold the key, else try to take it, else follow. */
  async #cycle(): Promise<void> {
    const term = this.#term;
    try {
      if (term && !term.ended) {
        const sentAt = clock.now();
        await this.lock.renew(term);
        this.#lastRenewAt = sentAt;
      } else {
        this.#term = undefined;
        const won = await this.lock.acquire(this.name);
        if (won) this.#promote(won);
        else this.#leader = (await this.lock.get()).leader?.holder;
      }
    } catch (err) {
      // LockLostError: the key is provably not ours (the term has ended, the abort listener demoted us).
      // Anything else (unreachable DCS): keep the term; it still ends at validUntil unless a renew succeeds.
      if (term) this.#renewFailures++;
      if (!(err instanceof LockLostError)) say(`${this.name}: DCS error: ${(err as Error).message}`);
    }
  }

  #promote(term: Term): void {
    this.#term = term;
    this.#leader = this.name;
    this.#lastRenewAt = clock.now();
    this.#transitions++;
    // The lock ends the term at validUntil at the latest, whatever our loop is doing: demote then.
    term.signal.addEventListener('abort', () => {
      if (this.#term === term) this.#term = undefined;
      this.#leader = undefined;
      this.#setRole('replica', `term ${term.token} ended (${term.endReason})`);
    }, { once: true });
    this.#setRole('primary', `acquired the leader key, token ${term.token}`);
  }

  #setRole(role: Role, why: string): void {
    if (role === this.role) return;
    this.role = role;
    // A real daemon promotes/demotes its database here (Patroni: pg_ctl promote / restart as standby),
    // passing term.token to whatever can fence a stale primary.
    say(`${this.name}: ${role.toUpperCase()} (${why})`);
  }
}

async function serve(daemon: HaDaemon): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const handler = createHealthHandler(daemon);
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    url,
    close: async () => {
      handler.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function probes(name: string, url: string): Promise<string> {
  const codes = await Promise.all(['/primary', '/replica', '/readiness', '/liveness'].map(async (p) => `${p} ${(await fetch(url + p)).status}`));
  return `${name}: ${codes.join(', ')}`;
}

const store = new MemoryStore({ clock });
const members = ['node-1', 'node-2'].map((name) => new HaDaemon(name, new MemoryLock(store, { key: 'service/demo/leader', ttlMs: TTL_MS, name })));
const servers = await Promise.all(members.map(serve));
members[0]!.start();
await clock.sleep(50); // node-1 gets there first
members[1]!.start();
await clock.sleep(LOOP_WAIT_MS * 2);
for (const [i, m] of members.entries()) say(await probes(m.name, servers[i]!.url));

const leader = members.find((m) => m.role === 'primary')!;
say(`cutting ${leader.name} off from the DCS (it can no longer renew)`);
(leader.lock as MemoryLock).faults.partition();
const deadline = clock.now() + RUN_MS;
while (clock.now() < deadline && !members.some((m) => m !== leader && m.role === 'primary')) await clock.sleep(50);
for (const [i, m] of members.entries()) say(await probes(m.name, servers[i]!.url));
const metrics = await (await fetch(`${servers[1]!.url}/metrics`)).text();
say(`node-2 /metrics: ${metrics.split('\n').filter((l) => l.startsWith('leaderlock_is_leader') || l.startsWith('leaderlock_term_token')).join(' | ')}`);

(leader.lock as MemoryLock).faults.heal();
await Promise.all(members.map((m) => m.stop()));
await Promise.all(servers.map((s) => s.close()));
const ok = members.filter((m) => m.role === 'primary').length === 0;
say(ok ? 'done' : 'unexpected roles at exit');
process.exitCode = ok ? 0 : 1;
