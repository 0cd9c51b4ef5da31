import type { HealthSource, HealthStatus } from './status.js';
import type { Labels, PromCounter, PromGauge, PromHistogram, PromModule, PromRegistry } from './prom.js';

/**
 * The leaderlock metrics, labelled by `backend` and `key`. Several handlers may share one registry
 * (one process with several electors): the metric objects are created once per registry and each
 * scrape reads every tracked source.
 *
 * Counters come from events when the source is an EventEmitter (the elector's `elected` and `renew`,
 * a resolver's `switch`), seeded from `status()` so a handler created late does not start from zero;
 * from `status()` fields when the source is a plain object. Gauges are read from `status()` at
 * scrape time, so a stale leader shows its true `last_renew_age_seconds` even if its loop is stuck.
 */

/** An object that counts API-endpoint switches: `KubeClient` (its 'switch' event) or anything with a `switches` number. */
export type SwitchSource = { readonly switches: number } | { on(event: 'switch', listener: (...args: never[]) => void): unknown };

type Listener = (...args: never[]) => void;
interface Emitterish {
  on(event: string, listener: Listener): unknown;
  off?(event: string, listener: Listener): unknown;
  removeListener?(event: string, listener: Listener): unknown;
}

// Renew round trips: from sub-millisecond (memory) to several seconds (a blackholed server hitting its deadline).
const RENEW_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MAX_QUEUED = 10_000;

interface MetricSet {
  isLeader: PromGauge;
  token: PromGauge;
  lastRenewAge: PromGauge;
  transitions: PromCounter;
  renewFailures: PromCounter;
  switches: PromCounter;
  renewDuration: PromHistogram;
  trackers: Set<Tracker>;
}

const sets = new WeakMap<PromRegistry, MetricSet>();

function labelsOf(s: HealthStatus): Labels {
  return { backend: s.backend ?? 'unknown', key: s.key ?? '' };
}

function isEmitter(x: unknown): x is Emitterish {
  return typeof x === 'object' && x !== null && typeof (x as { on?: unknown }).on === 'function';
}

function detach(e: Emitterish, event: string, listener: Listener): void {
  if (typeof e.off === 'function') e.off(event, listener);
  else e.removeListener?.(event, listener);
}

/** Follows one source (and its optional resolver) and feeds a registry's metric set. */
export class Tracker {
  readonly #source: HealthSource;
  readonly #resolver: SwitchSource | undefined;
  readonly #detachers: Array<() => void> = [];
  // Totals as we know them, and how much of them the prom counters already hold.
  #transitions = 0;
  #renewFailures = 0;
  #switches = 0;
  #pushed = { transitions: 0, renewFailures: 0, switches: 0 };
  #queued: number[] = [];
  #set: MetricSet | undefined;
  readonly #eventDriven: boolean;
  readonly #switchEvents: boolean;

  constructor(source: HealthSource, resolver?: SwitchSource) {
    this.#source = source;
    this.#resolver = resolver;
    const s = source.status();
    this.#transitions = s.transitions ?? 0;
    this.#renewFailures = s.renewFailures ?? 0;
    this.#eventDriven = isEmitter(source);
    if (isEmitter(source)) {
      this.#listen(source, 'elected', () => void this.#transitions++);
      this.#listen(source, 'renew', (info: unknown) => this.#onRenew(info));
    }
    this.#switchEvents = resolver !== undefined && typeof (resolver as { switches?: unknown }).switches !== 'number' && isEmitter(resolver);
    // KubeClient also reports its first pick ({ to } without `from`): that is not a switch.
    const onSwitch = (e: unknown): void => {
      const ev = e as { from?: unknown; to?: unknown } | undefined;
      if (ev && typeof ev === 'object' && 'to' in ev && ev.from === undefined) return;
      this.#switches++;
    };
    if (this.#switchEvents) this.#listen(resolver as Emitterish, 'switch', onSwitch);
  }

  attach(set: MetricSet): void {
    this.#set = set;
    set.trackers.add(this);
    const labels = this.#labels();
    // Make every series visible from the first scrape, at 0.
    set.transitions.inc(labels, 0);
    set.renewFailures.inc(labels, 0);
    if (this.#resolver) set.switches.inc(labels, 0);
    for (const v of this.#queued) set.renewDuration.observe(labels, v);
    this.#queued = [];
  }

  close(): void {
    for (const d of this.#detachers.splice(0)) d();
    this.#set?.trackers.delete(this);
    this.#set = undefined;
  }

  /** Called at scrape time: gauges from the status, counters brought up to date. */
  sample(set: MetricSet): void {
    const s = this.#source.status();
    const labels = labelsOf(s);
    set.isLeader.set(labels, s.role === 'leader' && s.isValid ? 1 : 0);
    // Number() loses precision above 2^53; no backend's revision/index gets there in practice.
    if (s.token !== undefined) set.token.set(labels, Number(s.token));
    if (s.lastRenewAgeMs !== undefined) set.lastRenewAge.set(labels, s.lastRenewAgeMs / 1000);
    if (!this.#eventDriven) {
      this.#transitions = Math.max(this.#transitions, s.transitions ?? 0);
      this.#renewFailures = Math.max(this.#renewFailures, s.renewFailures ?? 0);
    }
    if (this.#resolver && !this.#switchEvents) this.#switches = Math.max(this.#switches, (this.#resolver as { switches: number }).switches);
    this.#push(set.transitions, labels, 'transitions', this.#transitions);
    this.#push(set.renewFailures, labels, 'renewFailures', this.#renewFailures);
    if (this.#resolver) this.#push(set.switches, labels, 'switches', this.#switches);
  }

  #push(counter: PromCounter, labels: Labels, field: 'transitions' | 'renewFailures' | 'switches', total: number): void {
    const delta = total - this.#pushed[field];
    if (delta > 0) counter.inc(labels, delta);
    this.#pushed[field] = total;
  }

  #onRenew(info: unknown): void {
    const r = (info ?? {}) as { ok?: unknown; durationMs?: unknown };
    if (r.ok === false) this.#renewFailures++;
    if (typeof r.durationMs !== 'number' || !Number.isFinite(r.durationMs)) return;
    const seconds = r.durationMs / 1000;
    if (this.#set) this.#set.renewDuration.observe(this.#labels(), seconds);
    else if (this.#queued.length < MAX_QUEUED) this.#queued.push(seconds);
  }

  #labels(): Labels {
    return labelsOf(this.#source.status());
  }

  #listen(e: Emitterish, event: string, listener: (arg: never) => void): void {
    e.on(event, listener as Listener);
    this.#detachers.push(() => detach(e, event, listener as Listener));
  }
}

/** The registry's metric set, created on first use. */
export function metricSet(prom: PromModule, registry: PromRegistry): MetricSet {
  const existing = sets.get(registry);
  if (existing) return existing;
  const trackers = new Set<Tracker>();
  const labelNames = ['backend', 'key'] as const;
  const registers = [registry];
  let set: MetricSet;
  // Every metric's collect() samples every source: prom-client snapshots each metric right after its
  // own collect, and sampling is idempotent (gauges rebuilt, counters pushed by delta), so the order in
  // which a registry (ours or a user's merged one) serialises them does not matter.
  const collect = (): void => {
    set.isLeader.reset();
    set.token.reset();
    set.lastRenewAge.reset();
    for (const t of trackers) t.sample(set);
  };
  const common = { labelNames, registers, collect };
  set = {
    trackers,
    isLeader: new prom.Gauge({ ...common, name: 'leaderlock_is_leader', help: '1 while this process leads with a valid term, else 0' }),
    token: new prom.Gauge({ ...common, name: 'leaderlock_term_token', help: "Fencing token of the current term (ours when leading, else the observed leader's)" }),
    lastRenewAge: new prom.Gauge({ ...common, name: 'leaderlock_last_renew_age_seconds', help: 'Seconds since the last confirmed renew (or acquire) of the current term' }),
    transitions: new prom.Counter({ ...common, name: 'leaderlock_transitions_total', help: 'Terms won by this process' }),
    renewFailures: new prom.Counter({ ...common, name: 'leaderlock_renew_failures_total', help: 'Failed renew attempts' }),
    renewDuration: new prom.Histogram({ ...common, name: 'leaderlock_renew_duration_seconds', help: 'Duration of renew attempts (success or failure)', buckets: RENEW_BUCKETS }),
    switches: new prom.Counter({ ...common, name: 'leaderlock_resolver_switches_total', help: 'Times the client switched to another API endpoint' }),
  };
  sets.set(registry, set);
  return set;
}
