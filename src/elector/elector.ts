import { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../core/clock.js';
import { ConfigError, LockLostError } from '../core/errors.js';
import type { LeaderLock, LockState, LostReason, Term } from '../core/lock.js';
import { logger } from '../core/log.js';
import { explainTimings, resolveElectorOptions, type LeaderElectorOptions, type ResolvedElectorOptions, type TimingExplanation, type TimingInput } from './options.js';
import { untilAborted } from '../core/abort.js';
import { asError } from './as-error.js';
import { Waker } from './waker.js';
import { TermWork, type Work } from './work.js';
import { withToJson, type ElectorStatusJson } from './status-json.js';

const log = logger('elector');

export type ElectorRole = 'leader' | 'follower' | 'candidate' | 'observer' | 'stopped';

export interface ElectorStatus {
  identity: string;
  backend?: string;
  key?: string;
  /** follower: a live leader is known and it is not us. */
  role: ElectorRole;
  /** The leader as last seen (us while leading). */
  holder?: string;
  /** Our term's token while leading, else the observed leader's. */
  token?: bigint;
  ttlMs: number;
  /** Monotonic ms on the elector's clock, only while leading. */
  validUntil?: number;
  /** Leading and `term.isValid()`. */
  isValid: boolean;
  /** Since the last confirmed renew (or the acquire) of the current term. */
  lastRenewAgeMs?: number;
  /** Since the elector loop last completed an iteration. */
  loopAgeMs: number;
  /** The loop has not completed an iteration for longer than max(3 × retryPeriodMs, renewDeadlineMs). */
  loopStalled: boolean;
  /** Terms this elector has won. */
  transitions: number;
  /** Failed renew attempts since construction. */
  renewFailures: number;
  /**
   * `JSON.stringify(status)` works: the token as a decimal string, plus remaining ms and wall-clock
   * ISO times next to the monotonic values (see `ElectorStatusJson`). Not enumerable, so a spread
   * copy (`{ ...status }`) does not have it: hence optional in the type.
   */
  toJSON?(): ElectorStatusJson;
}

export interface RenewInfo {
  ok: boolean;
  durationMs: number;
  error?: Error;
}

export interface LeaderElectorEvents {
  elected: [term: Term];
  lost: [term: Term, reason: LostReason];
  /** The observed leader changed (holder, or the metadata it published with its term). */
  leader: [holder: string | undefined, metadata: string | undefined];
  warning: [err: Error];
  renew: [info: RenewInfo];
}

/** Reasons that are the elector's own decision, not a loss `onLoss: 'stop'` reacts to. */
const VOLUNTARY: ReadonlySet<LostReason> = new Set(['stopped', 'handover', 'released']);

/**
 * The campaign loop on any `LeaderLock`.
 *
 * Order of events, per term: `elected(term)` → (renewals, `renew` events) → `lost(term, reason)`.
 * `lost` is only ever emitted after `elected` for the same term, once. `leader` is emitted on every
 * change of the known holder (also in observer mode). There is no `error` event: failures that do not
 * end a term are `warning`s.
 *
 * While leading, the elector renews every `retryPeriodMs`; a failed renew is retried every
 * `retryPeriodMs / 2` until one succeeds or `renewDeadlineMs` has passed since the send time of the
 * last confirmed renew, when the term ends with reason 'deadline' — on the local monotonic clock,
 * even while a renew hangs. The lock ends the term at `validUntil` at the latest ('expired').
 * While not leading, the elector tries to acquire whenever the watch shows the lock free (or names
 * it as successor), and at least every `retryPeriodMs`.
 */
export class LeaderElector extends EventEmitter<LeaderElectorEvents> {
  readonly #lock: LeaderLock;
  readonly #opts: ResolvedElectorOptions;
  readonly #clock: Clock;
  readonly #waker = new Waker();
  readonly #works = new Set<Work>();
  readonly #work: TermWork;
  #runners: Array<() => void> = [];

  #ac: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #watchLoop: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  #term: Term | undefined;
  #termAc: AbortController | undefined;
  #deadline: Timer | undefined;
  /** The term the pending deadline timer is for, and the deadline it was armed for. */
  #deadlineTerm: Term | undefined;
  #deadlineArmedFor = 0;
  #lastConfirmedSend = 0;
  #unreleased: Term | undefined;
  #releasing = 0;
  /** Terms being given back (waiting for their work, then releasing): one promise per term. */
  readonly #retiring = new Map<Term, Promise<void>>();
  /** The successor `handover()` names, read by #onTermEnded for the term it ends. */
  #nominee: { term: Term; successor: string | undefined } | undefined;
  /** When the last campaign attempt ended: the next is due retryPeriodMs later, whatever the watch says. */
  #lastAttemptAt = -Infinity;
  /** Aborted (and replaced) by stop(): a release waiting between retries tries again at once. */
  #retryNow = new AbortController();

  #observed: LockState | undefined;
  #leader: string | undefined;
  #leaderMetadata: string | undefined;
  #campaigning: boolean;
  #holdBackUntil = -Infinity;
  #loopAt: number;
  #transitions = 0;
  #renewFailures = 0;
  readonly #forwardWarning = (err: Error): void => void this.emit('warning', err);

  constructor(lock: LeaderLock, options: LeaderElectorOptions) {
    super();
    if (!lock || typeof lock.acquire !== 'function') throw new ConfigError('LeaderElector needs a LeaderLock as its first argument', { backend: 'elector' });
    this.#lock = lock;
    this.#opts = resolveElectorOptions(lock, options);
    this.#clock = this.#opts.clock;
    this.#work = new TermWork(this.#clock);
    this.#campaigning = this.#opts.campaign;
    this.#loopAt = this.#clock.now();
  }

  /** What the given timings imply (failover, outage survived, margins) and whether they are safe. */
  static explain(input: TimingInput): TimingExplanation {
    return explainTimings(input);
  }

  explain(): TimingExplanation {
    const o = this.#opts;
    const input: TimingInput = { ttlMs: o.ttlMs, renewDeadlineMs: o.renewDeadlineMs, retryPeriodMs: o.retryPeriodMs, drift: o.drift };
    if (this.#lock.requestTimeoutMs !== undefined) input.requestTimeoutMs = this.#lock.requestTimeoutMs;
    return explainTimings(input);
  }

  get identity(): string {
    return this.#opts.identity;
  }
  get options(): ResolvedElectorOptions {
    return this.#opts;
  }
  get isLeader(): boolean {
    return this.#term?.isValid() ?? false;
  }
  /** The current holder as far as this elector knows (us while leading). */
  get leader(): string | undefined {
    return this.#leader;
  }
  /** The metadata the current leader published with its term (ours while leading), if any. */
  get leaderMetadata(): string | undefined {
    return this.#leaderMetadata;
  }
  /** Our current term, while leading. */
  get term(): Term | undefined {
    return this.#term;
  }
  /**
   * A term of ours not given back yet: waiting for its work (at most until its validUntil), being
   * released, or whose release failed and will be retried by the next `stop()`.
   */
  get pendingRelease(): Term | undefined {
    return this.#unreleased;
  }

  status(): ElectorStatus {
    const now = this.#clock.now();
    const o = this.#opts;
    const term = this.#term;
    const live = this.#observed?.leader?.live ? this.#observed.leader : undefined;
    const loopAgeMs = now - this.#loopAt;
    const role: ElectorRole = !this.#ac ? 'stopped' : term ? 'leader' : this.#leader ? 'follower' : this.#campaigning ? 'candidate' : 'observer';
    const status: Omit<ElectorStatus, 'toJSON'> = {
      identity: o.identity,
      role,
      ttlMs: o.ttlMs,
      isValid: term?.isValid() ?? false,
      loopAgeMs,
      loopStalled: !!this.#ac && loopAgeMs > Math.max(3 * o.retryPeriodMs, o.renewDeadlineMs),
      transitions: this.#transitions,
      renewFailures: this.#renewFailures,
    };
    if (this.#lock.backend !== undefined) status.backend = this.#lock.backend;
    if (this.#lock.key !== undefined) status.key = this.#lock.key;
    if (this.#leader !== undefined) status.holder = this.#leader;
    if (term) {
      status.token = term.token;
      status.validUntil = term.validUntil;
      status.lastRenewAgeMs = now - this.#lastConfirmedSend;
    } else if (live) {
      status.token = live.token;
    }
    return withToJson(status, now, this.#clock.date());
  }

  /**
   * Starts campaigning (or observing). Resolves after the first campaign attempt, leader or not.
   * Idempotent while running.
   */
  start(): Promise<void> {
    if (this.#stopping) return this.#stopping.then(() => this.start());
    if (this.#starting) return this.#starting;
    const ac = new AbortController();
    this.#ac = ac;
    this.#campaigning = this.#opts.campaign;
    this.#lock.on('warning', this.#forwardWarning);
    let firstAttempt!: () => void;
    this.#starting = new Promise<void>((resolve) => (firstAttempt = resolve));
    this.#watchLoop = this.#watchForever(ac.signal);
    this.#loop = this.#campaignForever(ac.signal, firstAttempt);
    return this.#starting;
  }

  /**
   * Runs `fn(term)` once for every term this elector wins (also the current one). `term.signal`
   * aborts when the term ends; however it ends (`stop()`, `handover()`, a loss), the key is released
   * only once `fn` has settled or the term's `validUntil` has passed, whichever is first. If `fn`
   * throws, the term is released, the error is emitted as `warning`, and the elector campaigns again
   * after `retryPeriodMs`. If it returns, leadership continues. Resolves when the elector stops.
   */
  runWhileLeader(fn: Work): Promise<void> {
    this.#works.add(fn);
    if (this.#term?.isValid()) this.#startWork(fn, this.#term);
    return new Promise<void>((resolve) => this.#runners.push(resolve)).finally(() => this.#works.delete(fn));
  }

  /**
   * Counts `work` as guarded work of `term`, like a `runWhileLeader` fn: however the term ends
   * (`stop()`, `handover()`, a loss), the elector releases it only once `work` has settled or the
   * term's `validUntil` has passed, whichever is first. For work that does not run inside a
   * `runWhileLeader` fn — `leaderlock run` passes "the command has exited". Call it while the term
   * is current (e.g. from the `elected` listener); work given after the release began may not be
   * waited for. A rejection of `work` only counts as settled; it is not reported.
   */
  guard(term: Term, work: PromiseLike<unknown>): void {
    this.#work.track(term, work);
  }

  /**
   * Steps down in favour of `successor` (or of anyone, when omitted): ends the term ('handover'),
   * waits for the guarded work to settle (bounded by the term), then releases naming the successor.
   * Other leaderlock candidates hold back while the nomination lives (ttl); without a successor this
   * elector alone holds back for one ttl. Resolves false when not leading.
   */
  async handover(successor?: string): Promise<boolean> {
    const term = this.#term;
    if (!term || !term.isValid()) return false;
    if (successor !== undefined && (typeof successor !== 'string' || successor === '' || successor === this.#opts.identity)) {
      throw new ConfigError(`handover successor must be another candidate's non-empty identity, got ${JSON.stringify(successor)}`, { backend: 'elector' });
    }
    // With a successor the nomination holds every other candidate back, us included; without one we
    // hold back alone for one ttl, or we would simply win again.
    if (successor === undefined) this.#holdBackUntil = this.#clock.now() + this.#opts.ttlMs;
    this.#nominee = { term, successor };
    term.end('handover'); // → #onTermEnded → #retire(term, successor)
    await this.#retire(term, successor);
    return true;
  }

  /**
   * Ends the term (aborting `term.signal`), waits for `runWhileLeader` functions to settle (bounded by
   * the time left in the term), then releases by compare-and-delete. A release that fails is retried
   * until the term would have expired; if it still fails, `pendingRelease` keeps the term and the next
   * `stop()` tries again. Idempotent.
   */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (!this.#ac) {
      const pending = this.#unreleased ? this.#release(this.#unreleased) : Promise.resolve();
      return pending.then(() => this.#resolveRunners());
    }
    this.#stopping = this.#doStop().finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #doStop(): Promise<void> {
    const ac = this.#ac!;
    // No new term of ours from here (a later start() turns campaigning back on).
    this.#campaigning = false;
    const term = this.#term;
    // Leading: the release goes first (term.end → #onTermEnded → #retire, once the term's work has
    // settled) and the loops shut down after. Their shutdown (cancelling the watch stream, cutting a
    // renew short) is no part of safety; done first it only delays the successor, by more the busier
    // the CPU.
    term?.end('stopped');
    // A release still retrying after an earlier loss (the server was unreachable) tries again now
    // rather than after its pause: stop() should not wait a retry period when the server is back.
    this.#retryNow.abort();
    this.#retryNow = new AbortController();
    if (term) await this.#retiring.get(term);
    // Not leading: an acquire may be in flight; the abort makes a late win give itself back.
    ac.abort();
    await Promise.all([this.#loop, this.#watchLoop]);
    // Every term still being given back (an earlier loss's, still waiting for its work).
    while (this.#retiring.size > 0) await Promise.all([...this.#retiring.values()]);
    if (this.#unreleased) await this.#release(this.#unreleased);
    this.#lock.off('warning', this.#forwardWarning);
    this.#ac = undefined;
    this.#starting = undefined;
    this.#setLeader(undefined);
    this.#resolveRunners();
  }

  #resolveRunners(): void {
    const runners = this.#runners;
    this.#runners = [];
    for (const r of runners) r();
  }

  async #campaignForever(signal: AbortSignal, firstAttempt: () => void): Promise<void> {
    const o = this.#opts;
    let first = true;
    let delay = o.retryPeriodMs;
    while (!signal.aborted) {
      const term = this.#term;
      try {
        if (term) delay = await this.#renewOnce(term);
        else if (this.#shouldCampaign(this.#clock.now() >= this.#lastAttemptAt + o.retryPeriodMs)) delay = await this.#acquireOnce(signal);
        else if (first) await this.#refresh();
      } catch (err) {
        log('loop iteration failed: %O', err);
        if (!signal.aborted) this.emit('warning', asError(err));
      }
      this.#loopAt = this.#clock.now();
      if (first) {
        first = false;
        firstAttempt();
      }
      if (signal.aborted) break;
      const waitSignal = this.#term ? this.#termAc!.signal : signal;
      // Not leading: sleep until the next periodic attempt is due (a wake from the watch comes sooner).
      const wait = this.#term ? delay : Math.min(o.retryPeriodMs, Math.max(1, this.#lastAttemptAt + o.retryPeriodMs - this.#clock.now()));
      await this.#waker.wait(this.#clock, wait, waitSignal);
      this.#loopAt = this.#clock.now();
    }
    if (first) firstAttempt();
  }

  /**
   * Whether to try now: campaigning, no term of ours being given back, and either a periodic attempt
   * is due (`periodic`) or the last observed state names us as successor, or shows no live holder
   * and no nomination of someone else. Never while holding back after a handover without successor.
   *
   * The periodic attempt ignores what the watch last said: a watch stuck on a hung server would
   * otherwise keep showing the old leader for as long as it hangs (DESIGN: "Campaign never depends
   * on one stream"). It is safe because the lock, not the elector, decides: acquire is a CAS that
   * fails while a live holder or someone else's nomination is stored.
   */
  #shouldCampaign(periodic = false): boolean {
    // Never while our own release is pending: what we observed predates it, an acquire racing our
    // release (or the nomination it writes) could undo a handover, and a new term of ours must not
    // start while the old term's work may still run.
    if (!this.#campaigning || this.#releasing > 0) return false;
    const s = this.#observed;
    if (s?.successor === this.#opts.identity) return true;
    if (this.#clock.now() < this.#holdBackUntil) return false;
    if (periodic) return true;
    return s?.successor === undefined && !s?.leader?.live;
  }

  async #refresh(): Promise<void> {
    this.#observe(await this.#lock.get());
  }

  /** One campaign attempt. Returns the delay before the next loop iteration. */
  async #acquireOnce(signal: AbortSignal): Promise<number> {
    const sendAt = this.#clock.now();
    // No abort signal on purpose: an acquire cut short may still be applied by the server, and we
    // could not tell our record from an earlier incarnation's. stop() waits for it (the lock's own
    // request deadline bounds that) and gives back a win that arrives after stop() began.
    // The next periodic attempt is due retryPeriodMs after this one ends (not after it was sent, or a
    // slow server would get attempts back to back).
    const term = await this.#lock
      .acquire(this.#opts.identity, this.#opts.metadata === undefined ? undefined : { metadata: this.#opts.metadata })
      .finally(() => (this.#lastAttemptAt = this.#clock.now()));
    if (!term) return this.#opts.retryPeriodMs;
    if (signal.aborted || !term.isValid()) {
      // Won after stop() began, or the answer came too late to use: give it back at once.
      term.end(signal.aborted ? 'stopped' : 'expired');
      await this.#retire(term);
      return this.#opts.retryPeriodMs;
    }
    this.#becomeLeader(term, sendAt);
    return this.#opts.retryPeriodMs;
  }

  #becomeLeader(term: Term, sendAt: number): void {
    this.#term = term;
    this.#termAc = new AbortController();
    this.#lastConfirmedSend = sendAt;
    this.#transitions++;
    this.#armDeadline(term);
    term.signal.addEventListener('abort', () => this.#onTermEnded(term), { once: true });
    log('%s elected, token %s', this.#opts.identity, term.token);
    this.#setLeader(this.#opts.identity, this.#opts.metadata);
    this.emit('elected', term);
    for (const fn of this.#works) if (!term.ended) this.#startWork(fn, term);
  }

  /** One renew. Returns the delay before the next one: retryPeriod after success, half of it after a failure. */
  async #renewOnce(term: Term): Promise<number> {
    const o = this.#opts;
    const sendAt = this.#clock.now();
    try {
      const termSignal = this.#termAc!.signal;
      await untilAborted(this.#lock.renew(term, { signal: termSignal }), termSignal);
      const durationMs = this.#clock.now() - sendAt;
      if (this.#term === term && !term.ended) {
        this.#lastConfirmedSend = Math.max(this.#lastConfirmedSend, sendAt);
        this.#armDeadline(term);
      }
      this.emit('renew', { ok: true, durationMs });
      return o.retryPeriodMs;
    } catch (err) {
      const error = asError(err);
      if (term.ended && VOLUNTARY.has(term.endReason!)) return o.retryPeriodMs; // cut short by stop()/handover
      this.#renewFailures++;
      this.emit('renew', { ok: false, durationMs: this.#clock.now() - sendAt, error });
      if (term.ended) return o.retryPeriodMs;
      if (error instanceof LockLostError) {
        term.end('taken');
        return o.retryPeriodMs;
      }
      log('renew of term %s failed, retrying until the deadline: %s', term.token, error.message);
      this.emit('warning', error);
      return Math.max(1, o.retryPeriodMs / 2);
    }
  }

  #armDeadline(term: Term): void {
    // A confirmed renew only moves the deadline forward: the pending timer of this term stays, and
    // when it fires it re-arms for the rest if the deadline moved since (no clear + set per renew).
    if (this.#deadline && this.#deadlineTerm === term) return;
    this.#deadline?.cancel();
    this.#deadlineTerm = term;
    const at = this.#lastConfirmedSend + this.#opts.renewDeadlineMs;
    this.#deadlineArmedFor = at;
    this.#deadline = this.#clock.setTimer(() => {
      this.#deadline = undefined;
      if (this.#term === term && this.#lastConfirmedSend + this.#opts.renewDeadlineMs > this.#deadlineArmedFor) this.#armDeadline(term);
      else term.end('deadline');
    }, at - this.#clock.now());
  }

  #onTermEnded(term: Term): void {
    if (this.#term !== term) return;
    const reason = term.endReason ?? 'expired';
    this.#term = undefined;
    this.#deadline?.cancel();
    this.#deadline = undefined;
    this.#termAc?.abort();
    this.#termAc = undefined;
    log('%s lost term %s: %s', this.#opts.identity, term.token, reason);
    this.emit('lost', term, reason);
    const live = this.#observed?.leader?.live && this.#observed.leader.token !== term.token ? this.#observed.leader : undefined;
    this.#setLeader(live?.holder, live?.metadata);
    if (!VOLUNTARY.has(reason) && this.#opts.onLoss === 'stop') this.#campaigning = false;
    // Every end of a term goes the same way: stop(), handover(), a thrown fn, and a loss where the
    // record may still be ours on the server ('deadline', 'unavailable', 'expired' on our clock).
    // Only 'taken' — the server showed someone else's record — leaves nothing to give back.
    const nominee = this.#nominee?.term === term ? this.#nominee.successor : undefined;
    this.#nominee = undefined;
    if (reason !== 'taken') void this.#retire(term, nominee);
    this.#waker.wake();
  }

  #startWork(fn: Work, term: Term): void {
    this.#work.start(fn, term, (error) => {
      log('runWhileLeader fn failed in term %s: %s', term.token, error.message);
      this.emit('warning', error);
      if (this.#term === term && !term.ended) {
        this.#holdBackUntil = this.#clock.now() + this.#opts.retryPeriodMs;
        term.end('released'); // → #onTermEnded → #retire (after the term's other work, if any)
      }
    });
  }

  /**
   * Gives an ended term back — the one path for stop(), handover(), a thrown fn and an involuntary
   * loss. Release only when nothing of the term can still act: first wait until the term's guarded
   * work has settled or its validUntil has passed, whichever is first, then compare-and-delete.
   * Never earlier: releasing while the old work still runs would let a successor's term start
   * beside it (the record stays ours on the server until then, and that is what holds others off).
   * Campaigning pauses meanwhile (#releasing). One promise per term, whoever asks.
   */
  #retire(term: Term, successor?: string): Promise<void> {
    let p = this.#retiring.get(term);
    if (p) return p;
    this.#releasing++;
    this.#unreleased = term;
    p = (async () => {
      try {
        await this.#work.settle(term);
        await this.#releaseOnce(term, successor);
      } finally {
        this.#retiring.delete(term);
        this.#releasing--;
        this.#waker.wake();
      }
    })();
    this.#retiring.set(term, p);
    return p;
  }

  /** A release on its own (stop() retrying a `pendingRelease`); the term's work is long settled. */
  async #release(term: Term): Promise<void> {
    this.#releasing++;
    try {
      await this.#releaseOnce(term);
    } finally {
      this.#releasing--;
      this.#waker.wake();
    }
  }

  /** Compare-and-delete, retried while the term could still be live; remembers failure for the next stop(). */
  async #releaseOnce(term: Term, successor?: string): Promise<void> {
    this.#unreleased = term;
    const until = term.validUntil;
    for (let attempt = 0; ; attempt++) {
      try {
        const released = await this.#lock.release(term, successor !== undefined ? { successor } : {});
        log('release of term %s: %s', term.token, released ? 'released' : 'no longer ours');
        if (this.#unreleased === term) this.#unreleased = undefined;
        return;
      } catch (err) {
        const left = until - this.#clock.now();
        if (left <= 0 || attempt >= 50) {
          this.emit('warning', asError(err));
          if (left <= 0 && this.#unreleased === term) this.#unreleased = undefined; // expired on the server by now
          return;
        }
        await this.#clock.sleep(Math.min(left, Math.max(1, this.#opts.retryPeriodMs / 4)), this.#retryNow.signal).catch(() => undefined);
      }
    }
  }

  async #watchForever(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const state of this.#lock.watch({ signal })) this.#observe(state);
      } catch (err) {
        if (signal.aborted) break;
        log('watch failed: %O', err);
        this.emit('warning', asError(err));
      }
      if (signal.aborted) break;
      await this.#clock.sleep(this.#opts.retryPeriodMs, signal).catch(() => undefined);
    }
  }

  #observe(state: LockState): void {
    this.#observed = state;
    const term = this.#term;
    const live = state.leader?.live ? state.leader : undefined;
    if (term) {
      // Someone else's record while we lead: check with a renew now rather than at the next period.
      if (!live || live.token !== term.token) this.#waker.wake();
      return;
    }
    this.#setLeader(live?.holder, live?.metadata);
    if (this.#shouldCampaign()) this.#waker.wake();
  }

  #setLeader(holder: string | undefined, metadata?: string): void {
    if (holder === this.#leader && metadata === this.#leaderMetadata) return;
    this.#leader = holder;
    this.#leaderMetadata = holder === undefined ? undefined : metadata;
    this.emit('leader', holder, this.#leaderMetadata);
  }
}
