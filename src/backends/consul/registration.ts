import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type Timer } from '../../core/clock.js';
import { AbortedError, LeaderLockError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { Problems, checkIdentity, checkDurations } from '../../core/options.js';
import { ConsulClient, type ConsulApi } from './client.js';
import { goDuration, type ConsulConnectionOptions } from './connection.js';

const log = logger('consul:service');

export type ServiceRole = 'primary' | 'replica';

export interface ConsulServiceRegistrationOptions extends ConsulConnectionOptions {
  /** Share a client (e.g. the one your ConsulLocks use). Default: a client of its own, closed by `stop()`. */
  client?: ConsulApi & { close?(): void };
  /** Service name. Give `service` or `scope`. */
  service?: string;
  /**
   * Patroni's cluster scope: register exactly as Patroni 4 does, so its DNS names and templates
   * find us — service name = `patroniServiceName(scope)` (lowercase; '.', '_', ' ' → '-'), instance
   * id `<scope>/<identity>`.
   */
  scope?: string;
  /** This member's name; the instance id is `<service>-<identity>` (with `scope`: `<scope>/<identity>`) unless `id` is given. */
  identity: string;
  id?: string;
  address?: string;
  port?: number;
  meta?: Readonly<Record<string, string>>;
  /** Tags on every instance, next to the role tag. */
  tags?: readonly string[];
  /**
   * Also tag the primary `master`, next to `primary`. Default true: Patroni keeps the `master` tag in
   * Consul for clients (DNS queries `master.<scope>.service.consul`, HAProxy templates) that cannot be
   * reconfigured. Turn it off once nothing queries `master`.
   */
  legacyMasterTag?: boolean;
  /** TTL of the service's health check, ms. Default 30000. Passed every `checkTtlMs / 3`. */
  checkTtlMs?: number;
  /** Consul removes the instance after its check has been critical this long, ms. Default none. */
  deregisterCriticalAfterMs?: number;
  /** Clock for the check-pass timer. Default the system clock. */
  clock?: Clock;
}

/**
 * Patroni's Consul service name for a scope (`service_name_from_scope_name` in patroni/dcs/consul.py):
 * lowercase; '.', '_' and ' ' become '-'; any other character outside [a-z0-9-] becomes `uNNNN` (its
 * code point, 4 digits); at most 230 characters (253 − `replica.` − `.service.consul`).
 */
export function patroniServiceName(scope: string): string {
  return scope
    .toLowerCase()
    .replace(/[^a-z0-9-]/gu, (c) => ('. _'.includes(c) ? '-' : `u${String(c.codePointAt(0)).padStart(4, '0')}`))
    .slice(0, 230);
}

/** The events of a LeaderElector this helper listens to (a structural slice). */
export interface ElectorEventsSource {
  on(event: 'elected' | 'lost', listener: (...args: never[]) => void): unknown;
  off(event: 'elected' | 'lost', listener: (...args: never[]) => void): unknown;
}

export interface ConsulServiceRegistrationEvents {
  /** Non-fatal: a register, tag update or check pass failed (retried on the next pass). */
  warning: [err: Error];
}

/**
 * Patroni-style service registration: this member as an instance of `service`, tagged `primary`
 * while it leads (plus `master` while `legacyMasterTag`) and `replica` otherwise, with a TTL check
 * this helper keeps passing. Drive it from an elector with `attach(elector)` (elected → primary,
 * lost → replica) or call `setRole()` yourself; `stop()` deregisters.
 *
 * Tags change by re-registering the instance (Consul's agent API replaces the definition); a failed
 * update is retried on the next check pass, so tags converge within `checkTtlMs / 3`.
 */
export class ConsulServiceRegistration extends EventEmitter<ConsulServiceRegistrationEvents> {
  readonly id: string;
  readonly checkId: string;
  readonly #o: ConsulServiceRegistrationOptions & Readonly<Required<Pick<ConsulServiceRegistrationOptions, 'service' | 'identity' | 'legacyMasterTag' | 'checkTtlMs'>>>;
  readonly #client: ConsulApi & { close?(): void };
  readonly #ownClient: boolean;
  readonly #clock: Clock;
  #role: ServiceRole | undefined;
  #registered: string | undefined;
  #timer: Timer | undefined;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: ConsulServiceRegistrationOptions) {
    super();
    const p = new Problems();
    checkDurations(p, options);
    const scope = options.scope;
    if (scope !== undefined) {
      p.check(options.service === undefined, 'give either service or scope, not both');
      p.check(typeof scope === 'string' && scope !== '', `scope must be a non-empty string, got ${JSON.stringify(scope)}`);
    }
    const service = scope !== undefined && typeof scope === 'string' ? patroniServiceName(scope) : options.service;
    p.check(typeof service === 'string' && /^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(service), `service must be a DNS-compatible name (letters, digits, '-', '_'), got ${JSON.stringify(service)}`);
    checkIdentity(p, options.identity);
    const checkTtlMs = options.checkTtlMs ?? 30_000;
    p.check(Number.isFinite(checkTtlMs) && checkTtlMs >= 1000, `checkTtlMs must be ≥ 1000, got ${String(options.checkTtlMs)}`);
    if (options.port !== undefined) p.check(Number.isInteger(options.port) && options.port >= 0 && options.port < 65536, `port must be 0–65535, got ${options.port}`);
    p.throwIfAny('consul');
    this.#o = Object.freeze({ ...options, service: service!, legacyMasterTag: options.legacyMasterTag ?? true, checkTtlMs });
    this.id = options.id ?? (scope !== undefined ? `${scope}/${options.identity}` : `${service!}-${options.identity}`);
    this.checkId = `service:${this.id}`;
    this.#client = options.client ?? new ConsulClient(options);
    this.#ownClient = options.client === undefined;
    this.#clock = options.clock ?? systemClock;
  }

  get role(): ServiceRole | undefined {
    return this.#role;
  }

  /** Tags for a role: `primary` (+ `master` while legacyMasterTag) or `replica`, after the fixed tags. */
  tagsFor(role: ServiceRole): string[] {
    const roleTags = role === 'primary' ? (this.#o.legacyMasterTag ? ['primary', 'master'] : ['primary']) : ['replica'];
    return [...(this.#o.tags ?? []), ...roleTags];
  }

  /** Registers as `role` (default replica), passes the check, and keeps passing it. Throws if Consul refuses. */
  async start(role: ServiceRole = 'replica'): Promise<void> {
    if (this.#stopped) throw new AbortedError('service registration is stopped', { backend: 'consul' });
    this.#role = role;
    await this.#enqueue(() => this.#sync());
    this.#arm();
  }

  /** Sets the role tag; re-registers at once when it changed. Errors are emitted as 'warning' and retried. */
  setRole(role: ServiceRole): Promise<void> {
    this.#role = role;
    return this.#enqueue(() => this.#sync().catch((err: unknown) => this.#warn(err)));
  }

  /**
   * Follows an elector: `elected` → primary, `lost` → replica. Starts the registration (as replica)
   * if it is not running. Returns a function that detaches.
   */
  attach(elector: ElectorEventsSource): () => void {
    const elected = (): void => void this.setRole('primary');
    const lost = (): void => void this.setRole('replica');
    elector.on('elected', elected);
    elector.on('lost', lost);
    if (this.#timer === undefined && !this.#stopped) void this.start(this.#role ?? 'replica').catch((err: unknown) => this.#warn(err));
    return () => {
      elector.off('elected', elected);
      elector.off('lost', lost);
    };
  }

  /** Stops passing the check and deregisters the instance. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#enqueue(async () => {
      // Also after a failed update (#registered forgotten): the instance may still be in Consul.
      if (this.#role !== undefined) {
        await this.#client.serviceDeregister(this.id).catch((err: unknown) => {
          if (!(err instanceof LeaderLockError && err.status === 404)) this.#warn(err);
        });
      }
      this.#registered = undefined;
    });
    if (this.#ownClient) this.#client.close?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #sync(): Promise<void> {
    if (this.#stopped || this.#role === undefined) return;
    const tags = this.tagsFor(this.#role);
    const want = tags.join(',');
    if (this.#registered !== want) {
      await this.#client.serviceRegister({
        id: this.id,
        name: this.#o.service,
        tags,
        ...(this.#o.address !== undefined ? { address: this.#o.address } : {}),
        ...(this.#o.port !== undefined ? { port: this.#o.port } : {}),
        ...(this.#o.meta !== undefined ? { meta: this.#o.meta } : {}),
        check: {
          checkId: this.checkId,
          name: `leaderlock ${this.#o.identity}`,
          ttl: goDuration(Math.ceil(this.#o.checkTtlMs / 1000) * 1000),
          ...(this.#o.deregisterCriticalAfterMs !== undefined ? { deregisterCriticalServiceAfter: goDuration(Math.ceil(this.#o.deregisterCriticalAfterMs / 1000) * 1000) } : {}),
        },
      });
      this.#registered = want;
      log('registered %s as %s', this.id, want);
    }
    await this.#client.checkPass(this.checkId, `role ${this.#role}`);
  }

  #arm(): void {
    this.#timer?.cancel();
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimer(
      () => {
        void this.#enqueue(() => this.#sync().catch((err: unknown) => this.#warn(err))).finally(() => this.#arm());
      },
      this.#o.checkTtlMs / 3,
      { unref: true },
    );
  }

  /** Serialises Consul calls so tags never go back to an older role. */
  #enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #warn(err: unknown): void {
    const e = err instanceof Error ? err : new LeaderLockError(String(err), { backend: 'consul' });
    // A failed register must be retried: forget what we think is registered.
    this.#registered = undefined;
    log('warning: %s', e.message);
    this.emit('warning', e);
  }
}
