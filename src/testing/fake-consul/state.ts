import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../../core/clock.js';

/**
 * The data of one fake Consul datacenter (a single server that is also the local agent): the raft
 * index, KV entries with sessions and lock-delay, sessions with TTL invalidation, agent services and
 * checks. All time goes through the injected `Clock`, so TTLs, lock-delay and blocking waits move
 * with a `VirtualClock`. No HTTP here; routes.ts maps requests onto these methods.
 */

export interface KvEntry {
  key: string;
  value: Buffer;
  flags: number;
  session?: string;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

export interface SessionEntry {
  id: string;
  name: string;
  node: string;
  lockDelayMs: number;
  behavior: 'release' | 'delete';
  /** 0 = no TTL. */
  ttlMs: number;
  ttlText: string;
  nodeChecks: string[];
  serviceChecks: { ID: string; Namespace?: string }[];
  createIndex: number;
  modifyIndex: number;
  timer?: Timer;
}

export interface ServiceEntry {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface CheckEntry {
  id: string;
  name: string;
  serviceId: string;
  serviceName: string;
  status: CheckStatus;
  output: string;
  notes: string;
  ttlMs: number;
  createIndex: number;
  modifyIndex: number;
  timer?: Timer;
}

export interface ConsulStateOptions {
  clock: Clock;
  node: string;
  datacenter: string;
  /**
   * When a TTL session is invalidated after its last renew, as a multiple of its TTL. Consul
   * guarantees no earlier than 1 × TTL and may take up to 2 × TTL; default 2 (the worst case).
   */
  sessionTtlFactor: number;
}

/** Why a session ended, for `FakeConsulServer` listeners and tests. */
export type SessionEndReason = 'ttl' | 'destroyed' | 'check';

export class ConsulState {
  readonly clock: Clock;
  readonly node: string;
  readonly datacenter: string;
  sessionTtlFactor: number;
  index = 1;
  /** Index of the last change to agent services or checks (X-Consul-Index of catalog/health reads). */
  catalogIndex = 1;
  readonly kv = new Map<string, KvEntry>();
  /** Index at which each deleted key went away (Consul keeps tombstones so blocking queries see deletes). */
  readonly tombstones = new Map<string, number>();
  /** key → clock time until which `?acquire` is refused. */
  readonly lockDelay = new Map<string, number>();
  readonly sessions = new Map<string, SessionEntry>();
  readonly services = new Map<string, ServiceEntry>();
  readonly checks = new Map<string, CheckEntry>();
  readonly #waiters = new Set<() => void>();
  /** Blocking queries currently parked waiting for a change (lets tests tell idle from busy). */
  parked = 0;
  /** Called after a session ends; the server turns it into an event. */
  onSessionEnd: ((session: SessionEntry, reason: SessionEndReason) => void) | undefined;

  constructor(options: ConsulStateOptions) {
    this.clock = options.clock;
    this.node = options.node;
    this.datacenter = options.datacenter;
    this.sessionTtlFactor = options.sessionTtlFactor;
  }

  /** A new raft index for a write; wakes every blocking query to re-evaluate. */
  bump(): number {
    this.index += 1;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
    return this.index;
  }

  /** Resolves at the next write, or after `ms` on the clock, or when `signal` aborts. */
  waitForChange(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        timer.cancel();
        this.#waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.clock.setTimer(done, ms, { unref: true });
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  // ---- KV ---------------------------------------------------------------------------------------

  /** Entries for `key` (exact) or every key starting with it (`recurse`), sorted by key. */
  kvRead(key: string, recurse: boolean): KvEntry[] {
    if (!recurse) {
      const e = this.kv.get(key);
      return e ? [e] : [];
    }
    return [...this.kv.values()].filter((e) => e.key.startsWith(key)).sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** X-Consul-Index of a KV read: the highest index among matching entries and tombstones, else the table's. */
  kvIndex(key: string, recurse: boolean): number {
    let max = 0;
    for (const e of this.kvRead(key, recurse)) max = Math.max(max, e.modifyIndex);
    for (const [k, idx] of this.tombstones) if (recurse ? k.startsWith(key) : k === key) max = Math.max(max, idx);
    return max > 0 ? max : this.kvTableIndex();
  }

  kvTableIndex(): number {
    let max = 1;
    for (const e of this.kv.values()) max = Math.max(max, e.modifyIndex);
    for (const idx of this.tombstones.values()) max = Math.max(max, idx);
    return max;
  }

  /**
   * PUT /v1/kv/<key>. `cas`: 0 = only if absent, n = only if ModifyIndex is n. `acquire`: lock with a
   * session (false while another session holds it or lock-delay runs; throws for an unknown session).
   * `release`: unlock if held by that session.
   */
  kvPut(key: string, value: Buffer, opts: { flags?: number; cas?: number; acquire?: string; release?: string }): boolean {
    const existing = this.kv.get(key);
    // Consul's kvs endpoint picks one operation: ?release over ?acquire over ?cas (a cas next to
    // acquire is ignored, so clients cannot rely on it — use a read-back instead).
    if (opts.cas !== undefined && opts.acquire === undefined && opts.release === undefined) {
      if (opts.cas === 0 ? existing !== undefined : existing?.modifyIndex !== opts.cas) return false;
    }
    if (opts.release !== undefined) delete opts.acquire;
    if (opts.acquire !== undefined) {
      if (!this.sessions.has(opts.acquire)) throw new InvalidSessionError(opts.acquire);
      const until = this.lockDelay.get(key);
      if (until !== undefined && this.clock.now() < until) return false;
      if (existing?.session !== undefined && existing.session !== opts.acquire) return false;
    }
    if (opts.release !== undefined) {
      if (existing === undefined || existing.session !== opts.release) return false;
    }
    const index = this.bump();
    const entry: KvEntry = existing ?? { key, value, flags: 0, lockIndex: 0, createIndex: index, modifyIndex: index };
    entry.value = value;
    entry.modifyIndex = index;
    if (opts.flags !== undefined) entry.flags = opts.flags;
    if (opts.acquire !== undefined) {
      // Re-acquiring a lock we already hold only updates the value (Consul: LockIndex unchanged).
      if (entry.session !== opts.acquire) entry.lockIndex += 1;
      entry.session = opts.acquire;
    }
    if (opts.release !== undefined) delete entry.session;
    this.kv.set(key, entry);
    this.tombstones.delete(key);
    return true;
  }

  /** DELETE /v1/kv/<key>; `cas` = only if ModifyIndex matches (0 never matches an existing key). */
  kvDelete(key: string, opts: { recurse?: boolean; cas?: number }): boolean {
    if (opts.cas !== undefined && !opts.recurse) {
      const e = this.kv.get(key);
      if (!e) return opts.cas === 0;
      if (e.modifyIndex !== opts.cas) return false;
    }
    const keys = opts.recurse ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : this.kv.has(key) ? [key] : [];
    const index = this.bump();
    for (const k of keys) {
      this.kv.delete(k);
      this.tombstones.set(k, index);
    }
    return true;
  }

  // ---- Sessions ----------------------------------------------------------------------------------

  createSession(s: Omit<SessionEntry, 'id' | 'createIndex' | 'modifyIndex' | 'timer'>): SessionEntry {
    const index = this.bump();
    const entry: SessionEntry = { ...s, id: randomUUID(), createIndex: index, modifyIndex: index };
    this.sessions.set(entry.id, entry);
    this.#armSession(entry);
    return entry;
  }

  /** Restarts the TTL countdown; undefined when the session no longer exists (Consul answers 404). */
  renewSession(id: string): SessionEntry | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    this.#armSession(s);
    return s;
  }

  /**
   * Ends a session: keys it holds are released or deleted per `behavior`, and `?acquire` on them is
   * refused for its lock-delay (Consul applies lock-delay whatever the behavior, also on destroy).
   */
  destroySession(id: string, reason: SessionEndReason): boolean {
    const s = this.sessions.get(id);
    if (!s) return false;
    s.timer?.cancel();
    this.sessions.delete(id);
    const index = this.bump();
    const now = this.clock.now();
    for (const e of [...this.kv.values()]) {
      if (e.session !== id) continue;
      if (s.lockDelayMs > 0) this.lockDelay.set(e.key, now + s.lockDelayMs);
      if (s.behavior === 'delete') {
        this.kv.delete(e.key);
        this.tombstones.set(e.key, index);
      } else {
        delete e.session;
        e.modifyIndex = index;
      }
    }
    this.onSessionEnd?.(s, reason);
    return true;
  }

  #armSession(s: SessionEntry): void {
    s.timer?.cancel();
    if (s.ttlMs <= 0) return;
    s.timer = this.clock.setTimer(() => this.destroySession(s.id, 'ttl'), s.ttlMs * this.sessionTtlFactor, { unref: true });
  }

  // ---- Agent services and checks -----------------------------------------------------------------

  registerService(svc: Omit<ServiceEntry, 'createIndex' | 'modifyIndex'>, checks: Array<Pick<CheckEntry, 'id' | 'name' | 'ttlMs' | 'notes'> & { status?: CheckStatus }>): void {
    const index = this.bump();
    this.catalogIndex = index;
    const old = this.services.get(svc.id);
    this.services.set(svc.id, { ...svc, createIndex: old?.createIndex ?? index, modifyIndex: index });
    for (const c of checks) {
      const prev = this.checks.get(c.id);
      prev?.timer?.cancel();
      const entry: CheckEntry = {
        id: c.id,
        name: c.name,
        serviceId: svc.id,
        serviceName: svc.name,
        // Consul keeps the status of a check that is re-registered with the same definition; a new TTL check starts critical.
        status: c.status ?? prev?.status ?? 'critical',
        output: prev?.output ?? '',
        notes: c.notes,
        ttlMs: c.ttlMs,
        createIndex: prev?.createIndex ?? index,
        modifyIndex: index,
      };
      this.checks.set(c.id, entry);
      if (entry.status !== 'critical') this.#armCheck(entry);
    }
  }

  deregisterService(id: string): boolean {
    if (!this.services.delete(id)) return false;
    for (const c of [...this.checks.values()]) {
      if (c.serviceId !== id) continue;
      c.timer?.cancel();
      this.checks.delete(c.id);
    }
    this.catalogIndex = this.bump();
    return true;
  }

  /** pass/warn/fail on a TTL check; false when the check does not exist. */
  updateCheck(id: string, status: CheckStatus, output: string): boolean {
    const c = this.checks.get(id);
    if (!c) return false;
    c.status = status;
    c.output = output;
    c.modifyIndex = this.catalogIndex = this.bump();
    this.#armCheck(c);
    return true;
  }

  #armCheck(c: CheckEntry): void {
    c.timer?.cancel();
    if (c.ttlMs <= 0) return;
    c.timer = this.clock.setTimer(
      () => {
        c.status = 'critical';
        c.output = `TTL expired (last output before timeout follows): ${c.output}`;
        c.modifyIndex = this.catalogIndex = this.bump();
      },
      c.ttlMs,
      { unref: true },
    );
  }

  /** Cancels every timer (server shutdown) and wakes every blocking query. */
  dispose(): void {
    for (const s of this.sessions.values()) s.timer?.cancel();
    for (const c of this.checks.values()) c.timer?.cancel();
    this.bump();
  }
}

/** Consul answers 500 `Invalid session "<id>"` to `?acquire`/`?release` with an unknown session. */
export class InvalidSessionError extends Error {
  constructor(readonly session: string) {
    super(`Invalid session "${session}"`);
  }
}
