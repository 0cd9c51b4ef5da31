import type { Clock } from '../../core/clock.js';
import { logger } from '../../core/log.js';
import type { ConsulApi, SessionSpec } from './client.js';
import { goDuration } from './connection.js';

const log = logger('consul:session');

/**
 * One Consul session per client and session shape (TTL, lock-delay, checks), shared by every
 * ConsulLock on that client — one per process, as Patroni. Created lazily, re-created after Consul
 * invalidated it, destroyed when the last lock using it closes. It also keeps the in-process claims:
 * Consul lets a session "acquire" a key it already holds, so two locks sharing a session must never
 * both try for one key; `claim()` makes that exclusive.
 */
export class SharedSession {
  readonly #client: ConsulApi;
  readonly #spec: SessionSpec;
  readonly #clock: Clock;
  readonly #registryKey: string;
  #id: string | undefined;
  #creating: Promise<{ id: string; sentAt: number }> | undefined;
  /** Send time of the last refresh Consul confirmed (create or renew), on the locks' clock. */
  #confirmedAt = -Infinity;
  #users = 0;
  readonly #claims = new Map<string, object>();

  private constructor(client: ConsulApi, spec: SessionSpec, clock: Clock, registryKey: string) {
    this.#client = client;
    this.#spec = spec;
    this.#clock = clock;
    this.#registryKey = registryKey;
  }

  static for(client: ConsulApi, spec: SessionSpec, clock: Clock): SharedSession {
    let byShape = registry.get(client);
    if (!byShape) registry.set(client, (byShape = new Map()));
    const shape = `${spec.name}|${spec.ttl}|${spec.lockDelay}|${spec.behavior}|${spec.checks.join(',')}`;
    let s = byShape.get(shape);
    if (!s) byShape.set(shape, (s = new SharedSession(client, spec, clock, shape)));
    s.#users += 1;
    return s;
  }

  get id(): string | undefined {
    return this.#id;
  }

  /** Send time of the last confirmed refresh (−Infinity when none). */
  get confirmedAt(): number {
    return this.#confirmedAt;
  }

  /** Exclusive in-process right to try for `key`; false when another lock object holds the claim. */
  claim(key: string, owner: object): boolean {
    const cur = this.#claims.get(key);
    if (cur !== undefined && cur !== owner) return false;
    this.#claims.set(key, owner);
    return true;
  }

  unclaim(key: string, owner: object): void {
    if (this.#claims.get(key) === owner) this.#claims.delete(key);
  }

  /** The session id, creating the session when there is none. `created` carries the create's send time. */
  async ensure(signal?: AbortSignal): Promise<{ id: string; created?: number }> {
    if (this.#id !== undefined) return { id: this.#id };
    this.#creating ??= (async () => {
      const sentAt = this.#clock.now();
      try {
        const id = await this.#client.sessionCreate(this.#spec, { signal });
        this.#id = id;
        this.#confirm(sentAt);
        log('created session %s (ttl %s, lock-delay %s)', id, this.#spec.ttl, this.#spec.lockDelay);
        return { id, sentAt };
      } finally {
        this.#creating = undefined;
      }
    })();
    const r = await this.#creating;
    return { id: r.id, created: r.sentAt };
  }

  /**
   * Renews the session. Resolves the send time when Consul confirmed it, or undefined when the
   * session is gone (invalidated: its keys are deleted; the next `ensure()` creates a new one).
   */
  async renew(id: string, signal?: AbortSignal): Promise<number | undefined> {
    const sentAt = this.#clock.now();
    const ok = await this.#client.sessionRenew(id, { signal });
    if (!ok) {
      this.forget(id);
      return undefined;
    }
    this.#confirm(sentAt);
    return sentAt;
  }

  /** Drops `id` if it is still the current session (Consul told us it no longer exists). */
  forget(id: string): void {
    if (this.#id !== id) return;
    log('session %s is gone', id);
    this.#id = undefined;
    this.#confirmedAt = -Infinity;
  }

  /** One user fewer; the last one destroys the session (best effort, errors are returned for a warning). */
  async release(): Promise<unknown> {
    this.#users -= 1;
    if (this.#users > 0) return undefined;
    registry.get(this.#client)?.delete(this.#registryKey);
    const id = this.#id;
    this.#id = undefined;
    if (id === undefined) return undefined;
    try {
      await this.#client.sessionDestroy(id);
      log('destroyed session %s', id);
      return undefined;
    } catch (err) {
      return err;
    }
  }

  #confirm(sentAt: number): void {
    if (sentAt > this.#confirmedAt) this.#confirmedAt = sentAt;
  }
}

const registry = new WeakMap<ConsulApi, Map<string, SharedSession>>();

/** The session shape every lock uses: TTL in whole seconds, explicit lock-delay, behavior=delete. */
export function sessionSpec(o: { sessionName: string; sessionTtlS: number; lockDelayMs: number; sessionChecks: readonly string[] }): SessionSpec {
  return { name: o.sessionName, ttl: `${o.sessionTtlS}s`, lockDelay: goDuration(Math.ceil(o.lockDelayMs / 1000) * 1000), behavior: 'delete', checks: o.sessionChecks };
}
