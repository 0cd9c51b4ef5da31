import { ConsulClient, type ConsulApi } from '../../../src/backends/consul/index.js';
import { ConsulLock, type ConsulLockOptions } from '../../../src/backends/consul/index.js';
import { FakeConsulServer, VirtualClock, type FakeConsulServerOptions } from '../../../src/testing/index.js';
import { systemClock } from '../../../src/core/clock.js';

/**
 * A FakeConsulServer and ConsulLocks on one VirtualClock. Real HTTP still happens, so `advance()`
 * moves virtual time and then waits (bounded) until the system is idle: every request the clients
 * sent has been answered, except blocking queries parked in the fake waiting for a change.
 */
export class ConsulWorld {
  readonly clock: VirtualClock;
  readonly fake: FakeConsulServer;
  readonly #clients: ConsulClient[] = [];
  #pending = 0;
  readonly #open = new Set<object>();
  readonly #stacks = new WeakMap<object, string>();

  private constructor(clock: VirtualClock, fake: FakeConsulServer) {
    this.clock = clock;
    this.fake = fake;
  }

  static async start(options: Omit<FakeConsulServerOptions, 'clock'> = {}): Promise<ConsulWorld> {
    const clock = new VirtualClock();
    return new ConsulWorld(clock, await FakeConsulServer.start({ ...options, clock }));
  }

  /** A client counting its pending calls (one per simulated process). */
  client(options: { token?: string; requestTimeoutMs?: number } = {}): ConsulApi & { close(): void } {
    const real = new ConsulClient({ address: this.fake.address, requestTimeoutMs: options.requestTimeoutMs ?? 2000, ...(options.token ? { token: options.token } : {}), env: {} });
    this.#clients.push(real);
    const counted = <T>(p: () => Promise<T>): Promise<T> => {
      this.#pending += 1;
      const token = {};
      this.#open.add(token);
      this.#stacks.set(token, new Error('pending call').stack ?? '');
      return p().finally(() => {
        this.#pending -= 1;
        this.#open.delete(token);
      });
    };
    return {
      address: real.address,
      sessionCreate: (...a) => counted(() => real.sessionCreate(...a)),
      sessionRenew: (...a) => counted(() => real.sessionRenew(...a)),
      sessionDestroy: (...a) => counted(() => real.sessionDestroy(...a)),
      kvGet: (...a) => counted(() => real.kvGet(...a)),
      kvPut: (...a) => counted(() => real.kvPut(...a)),
      kvDelete: (...a) => counted(() => real.kvDelete(...a)),
      serviceRegister: (...a) => counted(() => real.serviceRegister(...a)),
      serviceDeregister: (...a) => counted(() => real.serviceDeregister(...a)),
      checkPass: (...a) => counted(() => real.checkPass(...a)),
      checkFail: (...a) => counted(() => real.checkFail(...a)),
      close: () => real.close(),
    };
  }

  lock(options: Omit<ConsulLockOptions, 'client' | 'clock'> & { token?: string } = {}): ConsulLock {
    return new ConsulLock({ ttlMs: 10_000, key: 'service/demo/leader', ...options, client: this.client(options.token ? { token: options.token } : {}), clock: this.clock });
  }

  /** Waits (real time, bounded) until every pending client call is a parked blocking query. */
  async settle(boundMs = 5000): Promise<void> {
    const start = systemClock.now();
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (this.#pending <= this.fake.parkedRequests) {
        // One more turn so continuations of the last answers run.
        await new Promise((r) => setImmediate(r));
        if (this.#pending <= this.fake.parkedRequests) return;
      }
      if (systemClock.now() - start > boundMs) {
        const open = this.fake.requests.filter((r) => r.status === undefined).map((r) => `${r.method} ${r.path}?${r.search} fault=${r.fault ?? ''}`);
        if (process.env.CONSUL_WORLD_DEBUG) for (const t of this.#open) console.error(this.#stacks.get(t));
        throw new Error(`ConsulWorld.settle: still ${this.#pending} pending (${this.fake.parkedRequests} parked) after ${boundMs} ms; unanswered at the fake: ${open.join('; ')}`);
      }
      await systemClock.sleep(1);
    }
  }

  async advance(ms: number): Promise<void> {
    await this.settle();
    await this.clock.advance(ms);
    await this.settle();
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.close();
    await this.fake.close();
  }
}
