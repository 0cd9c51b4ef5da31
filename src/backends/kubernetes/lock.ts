import { EventEmitter } from 'node:events';
import type { Clock } from '../../core/clock.js';
import { AbortedError, BackendUnavailableError, ConfigError, LockLostError, MalformedRecordError, isAmbiguous } from '../../core/errors.js';
import { Term, type AcquireOptions, type LeaderLock, type LockState, type LostReason, type ReleaseOptions, type RenewOptions } from '../../core/lock.js';
import { logger } from '../../core/log.js';
import { Problems, assertHolder, assertMetadata, checkIdentity } from '../../core/options.js';
import { StateFeed } from '../../core/watch.js';
import { metadataOf, nominationOf, successorOf, type KubeObject, type LockKind } from './kinds.js';
import { LockObjectIo, isOurWrite, sameTerm } from './lock-io.js';
import { resolveLockOptions, type KubernetesLockOptions, type ResolvedLockOptions } from './lock-options.js';
import { runWatch } from './lock-watch.js';
import { LockObserver, type Snapshot } from './observer.js';
import { FailoverJudge } from '../patroni/failover.js';
import { refusePatroniMemberName } from './patroni-members.js';
import { clientGoView, ttlSeconds, type WireRecord } from './records.js';
import { PodRoleLabels } from './role-labels.js';
import { clearPatroniFailover, readPatroniFailover, writePatroniFailover } from './patroni-failover.js';

const log = logger('k8s:lock');
/** Conflicts (409) in a row before an operation gives up as undecided: each means another writer touched the object. */
const MAX_CONFLICTS = 5;

/**
 * `LeaderLock` on one Kubernetes object: a client-go compatible `Lease`, or a Patroni-style
 * `Endpoints`/`ConfigMap`. Every write is a compare-and-swap on `metadata.resourceVersion`.
 *
 * - Token = `leaseTransitions` / Patroni `transitions`, incremented by every acquire of this library.
 * - Expiry is this observer's judgement (see observer.ts): a record is live until seen unchanged for
 *   its recorded duration on `clock`. `get()` reports an expired record with `live: false`.
 * - `validUntil` = send time of our confirmed CAS write + ttl·(1 − drift).
 * - Release clears the holder in place by CAS (Lease: no holder, `leaseDurationSeconds: 1`, as
 *   client-go's ReleaseOnCancel; Patroni objects: `leader` annotation dropped); never deletes the object.
 * - While `watch()` runs, a record showing a live term's token released by someone else ends that
 *   term on the event (see #endIfReleasedByOther), and any other writer's record drops the cached object.
 * - Role labels (option `roleLabels`): the pod's label follows the terms of this lock — leader value
 *   when a term starts, follower value when it ends (whatever ends it) and when an acquire finds
 *   another leader. Failures are `warning` events only.
 */
export class KubernetesLock extends EventEmitter implements LeaderLock {
  readonly backend = 'kubernetes' as const;
  readonly kind: LockKind;
  readonly namespace: string;
  readonly name: string;
  /** `<resource>/<namespace>/<name>`, e.g. `leases/default/my-controller`. */
  readonly key: string;
  readonly ttlMs: number;
  readonly requestTimeoutMs: number;
  /** The pod role labeller when `roleLabels` is set. */
  readonly roleLabels: PodRoleLabels | undefined;
  readonly #o: ResolvedLockOptions;
  readonly #observer: LockObserver;
  readonly #io: LockObjectIo;
  /** The last record this lock wrote for each term it has not released (renew/release work from it). */
  readonly #held = new Map<Term, WireRecord>();
  /**
   * Lease only, per term: client-go's view of our last write (its raw record has whole-second times)
   * and the send time of the first write that showed it that view. validUntil counts from there.
   */
  readonly #secondView = new Map<Term, { view: string; sentAt: number }>();
  /** Per term, the renewTimes of its last writes (see #sentBy). */
  readonly #sentTimes = new Map<Term, string[]>();
  /** Terms with a release() in flight: the watch may show our own released record before the PUT returns. */
  readonly #releasing = new Map<Term, number>();
  readonly #watches = new AbortController();
  /** Patroni's `<scope>-failover` request, judged like our own nomination: it counts for ttl after we first saw it. */
  readonly #failover: FailoverJudge;
  #closing: Promise<void> | undefined;

  constructor(options: KubernetesLockOptions) {
    super();
    this.#o = resolveLockOptions(options);
    this.kind = this.#o.mapper.kind;
    this.namespace = this.#o.namespace;
    this.name = this.#o.name;
    this.key = `${this.#o.mapper.resource}/${this.namespace}/${this.name}`;
    this.ttlMs = this.#o.ttlMs;
    this.requestTimeoutMs = this.#o.requestTimeoutMs;
    this.#observer = new LockObserver(this.ttlMs);
    this.#failover = new FailoverJudge(this.ttlMs);
    this.#io = new LockObjectIo(this.#o);
    const rl = this.#o.roleLabels;
    this.roleLabels = rl && new PodRoleLabels(this.#o.api, rl, (err) => this.#warn(err), this.#o.requestTimeoutMs);
  }

  get clock(): Clock {
    return this.#o.clock;
  }

  get drift(): number {
    return this.#o.drift;
  }

  /**
   * Take the lock if nobody live holds it: CAS update of a free/released/expired record on its
   * resourceVersion, or create on 404. `undefined` when another live holder has it (our own identity
   * included: an earlier incarnation may only be paused), when a live handover nomination names
   * someone else, or when other writers keep winning the race. A 409 re-reads and decides again; an
   * ambiguous write (`BackendUnavailableError`) re-reads: our record there is our term. Throws
   * `MalformedRecordError` (object left untouched), `ForbiddenError` (RBAC, at once), `BackendUnavailableError`.
   */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<Term | undefined> {
    assertHolder(holder, 'kubernetes');
    const metadata = assertMetadata(options.metadata, 'kubernetes');
    this.#assertOpen();
    const { signal } = options;
    let sent: { record: WireRecord; sentAt: number; nominee: boolean } | undefined;
    for (let attempt = 0; attempt <= MAX_CONFLICTS; attempt++) {
      // 1. Read and judge what is there, on our clock. Our own last write there means we won: the
      //    client re-sends a write after a connection reset, and the copy meets the applied first one as a 409.
      const snap = await this.#io.read(signal);
      if (sent && isOurWrite(snap.wire, sent.record)) return this.#startTerm(holder, sent.record, sent.sentAt, sent.nominee);
      const state = this.#judge(snap).state;
      if (state.leader?.live || (state.successor !== undefined && state.successor !== holder)) {
        this.#labelFollowerIfIdle();
        return undefined;
      }
      // 2. Our record; the token is one more than whatever was there (also after our own release).
      const time = this.#io.nextTime();
      const record: WireRecord = {
        holder,
        durationSeconds: ttlSeconds(this.ttlMs),
        acquireTime: time,
        renewTime: time,
        transitions: snap.wire ? snap.wire.transitions + 1 : 1,
      };
      const patroni = await this.#patroniNomination(holder, snap, signal);
      if (patroni === 'other') {
        this.#labelFollowerIfIdle();
        return undefined;
      }
      await refusePatroniMemberName(this.#o, this.key, holder, signal);
      // A Patroni request we acquire past (ours, or no longer live) is consumed: cleared once we lead.
      const nominee = nominationOf(snap.obj, snap.wire) === holder || patroni !== undefined;
      const body = this.#io.build(snap.obj, record, {
        successor: successorOf(snap.obj) === undefined ? undefined : null,
        metadata: metadata === undefined ? null : { value: metadata, term: record.transitions },
      });
      // 3. CAS write (create on 404); validUntil counts from its send time.
      sent = { record, sentAt: this.#o.clock.now(), nominee };
      let status: number;
      try {
        status = snap.obj ? await this.#io.put(body, signal) : await this.#io.create(body, signal);
      } catch (err) {
        if (!isAmbiguous(err)) throw err;
        const after = await this.#io.read(signal).catch(() => {
          throw err;
        });
        if (isOurWrite(after.wire, record)) return this.#startTerm(holder, record, sent.sentAt, nominee);
        if (this.#judge(after).state.leader?.live) return undefined;
        throw err;
      }
      // 4. 409: another writer was first (or touched the object); 404: it vanished. Re-read and decide again.
      if (status === 409 || status === 404) continue;
      return this.#startTerm(holder, record, sent.sentAt, nominee);
    }
    log('%s: acquire gave up after %d conflicts', this.key, MAX_CONFLICTS + 1);
    return undefined;
  }

  /**
   * CAS update of our record's `renewTime` on the last resourceVersion we saw. A 409 (a stray write by
   * anyone, e.g. a label patch) re-reads: still our holder and token → write again; otherwise the term
   * ends ('taken'; 'expired' when the record is gone or released) and `LockLostError` is thrown. An
   * ambiguous write re-reads: our renewTime there confirms it; our unchanged record rethrows
   * (`BackendUnavailableError`, term untouched). `validUntil` moves only on a confirmed write.
   */
  async renew(term: Term, options: RenewOptions = {}): Promise<Term> {
    const held = this.#heldRecord(term);
    this.#assertOpen();
    if (term.ended) throw lost(term, term.endReason ?? 'expired');
    const { signal } = options;
    let current = this.#io.cachedTermObject(term);
    let sent: { record: WireRecord; sentAt: number } | undefined;
    for (let conflicts = 0; ; conflicts++) {
      if (!current) {
        const snap = await this.#readTerm(term, signal);
        // Our last write is there: a copy the client re-sent after a reset met it as a 409.
        if (sent && isOurWrite(snap.wire, sent.record)) return this.#confirm(term, sent.record, sent.sentAt);
        // Our holder and token, but a write that is not ours: another process renews under our
        // identity (client-go or a Patroni member given the same name). Both would lead; end ours.
        if (!this.#sentBy(term, snap.wire!)) throw this.#impostor(term, snap.wire!);
        current = snap.obj!;
      }
      const record: WireRecord = { ...held, durationSeconds: ttlSeconds(this.ttlMs), renewTime: this.#io.nextTime() };
      sent = { record, sentAt: this.#o.clock.now() };
      this.#noteSent(term, record);
      let status: number;
      try {
        status = await this.#io.put(this.#io.build(current, record, {}), signal);
      } catch (err) {
        if (!isAmbiguous(err)) throw err;
        const after = await this.#io.read(signal).catch(() => {
          throw err;
        });
        if (isOurWrite(after.wire, record)) return this.#confirm(term, record, sent.sentAt);
        if (after.wire && sameTerm(after.wire, term)) throw err;
        throw this.#lose(term, after);
      }
      if (status === 404) throw this.#lose(term, { obj: undefined, wire: undefined });
      if (status !== 409) return this.#confirm(term, record, sent.sentAt);
      if (conflicts + 1 >= MAX_CONFLICTS) {
        throw new BackendUnavailableError(`renew of ${this.key}: ${MAX_CONFLICTS} conflicts in a row`, { backend: 'kubernetes', status: 409 });
      }
      current = undefined;
    }
  }

  /**
   * CAS update that clears the holder in place, if the record is still this term's (holder and token).
   * Works on an ended term. With `successor`: the nomination annotation is written in the same update
   * (and on a Patroni layout Patroni's `<scope>-failover` object first). Resolves false when the record
   * was no longer ours. Throws `BackendUnavailableError` when undecided; retry with the same term.
   */
  async release(term: Term, options: ReleaseOptions = {}): Promise<boolean> {
    if (!(term instanceof Term)) throw new ConfigError('expected a Term returned by acquire()', { backend: 'kubernetes' });
    this.#releasing.set(term, (this.#releasing.get(term) ?? 0) + 1);
    try {
      return await this.#release(term, options);
    } finally {
      const n = (this.#releasing.get(term) ?? 1) - 1;
      if (n > 0) this.#releasing.set(term, n);
      else this.#releasing.delete(term);
    }
  }

  async #release(term: Term, options: ReleaseOptions): Promise<boolean> {
    const { successor } = options;
    if (successor !== undefined) {
      const p = new Problems();
      checkIdentity(p, successor, 'successor');
      p.throwIfAny('kubernetes');
    }
    // The cached object is used only when it shows this term; anything else is re-read before deciding.
    let current = this.#io.cachedTermObject(term);
    let attempted = false;
    const done = (snap: Snapshot): boolean => {
      // Cleared in place with our token after we wrote: our release (perhaps a re-sent copy met its first one as a 409).
      const mine = attempted && snap.wire !== undefined && snap.wire.holder === undefined && BigInt(snap.wire.transitions) === term.token;
      if (mine) this.#observer.released();
      term.end(mine ? (successor === undefined ? 'released' : 'handover') : lossReason(snap));
      return mine;
    };
    for (let conflicts = 0; conflicts <= MAX_CONFLICTS; conflicts++) {
      const snap: Snapshot = current ? { obj: current, wire: this.#io.parse(current) } : await this.#io.read();
      current = undefined;
      if (!snap.wire || !sameTerm(snap.wire, term)) return done(snap);
      if (successor !== undefined && this.#o.failoverName && !attempted) {
        await writePatroniFailover(this.#o, this.#o.failoverName, term.holder, successor).catch((err: unknown) => this.#warn(err));
      }
      const time = this.#io.nextTime();
      // Lease: client-go's ReleaseOnCancel record; Patroni objects: only `leader` goes, the rest stays.
      const record: WireRecord =
        this.kind === 'Lease'
          ? { holder: undefined, durationSeconds: 1, acquireTime: time, renewTime: time, transitions: snap.wire.transitions }
          : { ...snap.wire, holder: undefined };
      attempted = true;
      let status: number;
      try {
        status = await this.#io.put(this.#io.build(snap.obj, record, { successor: successor ?? null, metadata: null }), undefined);
      } catch (err) {
        if (!isAmbiguous(err)) throw err;
        const after = await this.#io.read().catch(() => {
          throw err;
        });
        if (after.wire && sameTerm(after.wire, term)) throw err;
        return done(after);
      }
      if (status === 409) continue;
      if (status === 404) return done({ obj: undefined, wire: undefined });
      this.#observer.released();
      term.end(successor === undefined ? 'released' : 'handover');
      log('%s: term %s of %s released%s', this.key, term.token, term.holder, successor === undefined ? '' : ` to ${successor}`);
      return true;
    }
    throw new BackendUnavailableError(`release of ${this.key}: ${MAX_CONFLICTS + 1} conflicts in a row`, { backend: 'kubernetes', status: 409 });
  }

  /** One GET of the object, judged on our clock. Throws `MalformedRecordError` for a record we cannot parse. */
  async get(options: { signal?: AbortSignal } = {}): Promise<LockState> {
    this.#assertOpen();
    return this.#judge(await this.#io.read(options.signal)).state;
  }

  /** See runWatch in lock-watch.ts. */
  watch(options: { signal: AbortSignal }): AsyncIterable<LockState> {
    const signal = options?.signal;
    if (!(signal instanceof AbortSignal)) throw new ConfigError('watch({ signal }) needs an AbortSignal', { backend: 'kubernetes' });
    this.#assertOpen();
    const both = AbortSignal.any([signal, this.#watches.signal]);
    const feed = new StateFeed(both);
    const ctx = {
      api: this.#o.api,
      clock: this.#o.clock,
      collectionPath: this.#o.mapper.collectionPath(this.namespace),
      name: this.name,
      idleTimeoutMs: this.#o.watchIdleTimeoutMs,
      read: async (s: AbortSignal) => (await this.#io.read(s)).obj,
      judge: (obj: KubeObject | undefined) => this.#judge({ obj, wire: obj && this.#io.parse(obj) }),
      warn: (err: unknown) => this.#warn(err),
      seen: (obj: KubeObject | undefined) => {
        this.#io.watched(obj);
        this.#endIfReleasedByOther(obj);
      },
    };
    void runWatch(ctx, feed, both).catch((err: unknown) => feed.end(err));
    return feed;
  }

  /** Idempotent. Ends watches, releases the terms this lock still holds (best effort), waits for label writes. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#watches.abort();
    const live = [...this.#held.keys()].filter((t) => !t.ended);
    await Promise.all(live.map((t) => this.release(t).catch((err: unknown) => (t.end('stopped'), this.#warn(err)))));
    await this.roleLabels?.flush();
  }

  // ---- internals -------------------------------------------------------------------------------

  /**
   * Patroni layouts: `patronictl switchover/failover` writes `<scope>-failover` (`member`: the
   * candidate, `leader`: the member stepping down). We honour it as our own nomination: while it
   * lives (ttl from when this lock first saw that request), only `member` may acquire; a request
   * without `member` holds back only the `leader` it names. Patroni's own members read it the same way.
   * Skipped when our own nomination already decides (it is written together with the request).
   * undefined: no request; 'none': a request that does not hold us back (it is consumed if we win).
   */
  async #patroniNomination(holder: string, snap: Snapshot, signal: AbortSignal | undefined): Promise<'us' | 'other' | 'none' | undefined> {
    if (!this.#o.failoverName || nominationOf(snap.obj, snap.wire) !== undefined) return undefined;
    const req = await readPatroniFailover(this.#o, this.#o.failoverName, signal);
    const verdict = this.#failover.judge(req, req?.identity ?? '', holder, this.#o.clock.now());
    return req ? verdict : undefined;
  }

  #judge(snap: Snapshot): { state: LockState; changesAt: number | undefined } {
    const judged = this.#observer.judge(snap, this.#o.clock.now());
    const metadata = judged.state.leader && metadataOf(snap.obj, snap.wire?.transitions);
    if (metadata !== undefined) judged.state.leader!.metadata = metadata;
    return judged;
  }

  #startTerm(holder: string, record: WireRecord, sentAt: number, nominee: boolean): Term {
    this.#observer.wrote(record, this.#o.clock.now(), sentAt);
    const term = new Term({ holder, token: BigInt(record.transitions), validUntil: this.#validUntil(sentAt), clock: this.#o.clock, backend: 'kubernetes' });
    this.#held.set(term, record);
    this.#countFrom(term, record, sentAt);
    // Whatever ends the term (release, loss, expiry, the elector's deadline): renew is over for it
    // (release still works, from a fresh read) and the pod label goes back to follower.
    term.signal.addEventListener(
      'abort',
      () => {
        this.#held.delete(term);
        this.#secondView.delete(term);
        this.#sentTimes.delete(term);
        this.#labelFollowerIfIdle();
      },
      { once: true },
    );
    if (this.roleLabels) void this.roleLabels.set('leader');
    if (nominee && this.#o.failoverName) void clearPatroniFailover(this.#o, this.#o.failoverName).catch((err: unknown) => this.#warn(err));
    if (this.#closing) {
      void this.release(term).catch(() => term.end('stopped'));
      throw new AbortedError(`kubernetes lock ${this.key} is closed`, { backend: 'kubernetes' });
    }
    log('%s: %s acquired, token %s', this.key, holder, term.token);
    return term;
  }

  #confirm(term: Term, record: WireRecord, sentAt: number): Term {
    this.#observer.wrote(record, this.#o.clock.now(), sentAt);
    // Ended while the renew was in flight (validUntil passed, or stopped): the reply cannot revive it.
    if (term.ended) throw lost(term, term.endReason ?? 'expired');
    this.#held.set(term, record);
    term.extend(this.#validUntil(this.#countFrom(term, record, sentAt)));
    return term;
  }

  /**
   * Lease: client-go compares records with whole-second times, so a renew in the same wall-clock
   * second as the previous one is no change to a client-go observer, whose countdown keeps running
   * from the first write it saw. Our validity then counts from the first write of that view too, so
   * our term ends before any client-go observer can judge the Lease expired (issue 16, item 4).
   */
  #countFrom(term: Term, record: WireRecord, sentAt: number): number {
    if (this.kind !== 'Lease') return sentAt;
    const view = clientGoView(record);
    const prev = this.#secondView.get(term);
    if (prev && prev.view === view) return prev.sentAt;
    this.#secondView.set(term, { view, sentAt });
    return sentAt;
  }

  /**
   * The watch shows a live term's token with no holder, and we are not releasing it: someone else
   * released our term (client-go v0.34+ after a failed renew copies our token from a fresh read into
   * its released record: issue 16 item 3). Unless the object was deleted and re-created in between, that
   * record cannot precede our own write of the token, so the term ends now rather than after a renew's
   * round trip: from that write on, anyone may take the Lease and act. (A stale event could only end a
   * term early, never extend one.) A `warning` says who can do this.
   */
  #endIfReleasedByOther(obj: KubeObject | undefined): void {
    if (!obj || this.#held.size === 0) return;
    let wire: WireRecord;
    try {
      wire = this.#io.parse(obj);
    } catch {
      return; // a malformed record: renew reads it and ends the term
    }
    if (wire.holder !== undefined) return;
    for (const term of [...this.#held.keys()]) {
      if (term.ended || this.#releasing.has(term) || BigInt(wire.transitions) !== term.token) continue;
      this.#warn(
        new LockLostError(
          `${this.key}: another writer released our term ${term.token} of ${JSON.stringify(term.holder)} (renewTime ${wire.renewTime ?? '-'}): ` +
            'e.g. client-go v0.34+ with ReleaseOnCancel after a failed renew; run it with ReleaseOnCancel false while sharing a Lease. Term ended.',
          { backend: 'kubernetes', reason: 'expired' },
        ),
      );
      term.end('expired');
    }
  }

  /** Remembers the renewTimes this term sent (the last few): a write applied after its reply was lost is still ours. */
  #noteSent(term: Term, record: WireRecord): void {
    const list = this.#sentTimes.get(term) ?? [];
    list.push(record.renewTime ?? '');
    if (list.length > 8) list.shift();
    this.#sentTimes.set(term, list);
  }

  #sentBy(term: Term, wire: WireRecord): boolean {
    return wire.renewTime === this.#held.get(term)?.renewTime || (this.#sentTimes.get(term) ?? []).includes(wire.renewTime ?? '');
  }

  #impostor(term: Term, wire: WireRecord): LockLostError {
    const err = new LockLostError(
      `${this.key}: another process writes the record under our identity ${JSON.stringify(term.holder)} (renewTime ${wire.renewTime ?? '-'} is not ours): ` +
        'two candidates share one identity (e.g. both take the pod name); give each a unique identity. Term ended.',
      { backend: 'kubernetes', reason: 'taken' },
    );
    this.#warn(err);
    term.end('taken');
    return err;
  }

  #lose(term: Term, snap: Snapshot): LockLostError {
    const reason = lossReason(snap);
    term.end(reason);
    return lost(term, reason);
  }

  /** GET for renew; ends the term when the record is provably not ours (a malformed one included: never overwritten). */
  async #readTerm(term: Term, signal: AbortSignal | undefined): Promise<Snapshot> {
    let snap: Snapshot;
    try {
      snap = await this.#io.read(signal);
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      this.#warn(err);
      term.end('taken');
      throw new LockLostError(`term ${term.token} of ${JSON.stringify(term.holder)} is over: record malformed`, { backend: 'kubernetes', reason: 'taken', cause: err });
    }
    if (!snap.obj || !snap.wire || !sameTerm(snap.wire, term)) throw this.#lose(term, snap);
    return snap;
  }

  #validUntil(sentAt: number): number {
    return sentAt + this.ttlMs * (1 - this.#o.drift);
  }

  #heldRecord(term: Term): WireRecord {
    const held = term instanceof Term ? this.#held.get(term) : undefined;
    if (held) return held;
    if (term instanceof Term && term.backend === 'kubernetes') throw lost(term, term.endReason ?? 'released');
    throw new ConfigError('expected a Term returned by acquire() of this lock', { backend: 'kubernetes' });
  }

  /** Follower label unless a term of this lock is live (set() skips a value already applied). */
  #labelFollowerIfIdle(): void {
    if (!this.roleLabels || [...this.#held.keys()].some((t) => !t.ended)) return;
    void this.roleLabels.set('follower');
  }

  #warn(err: unknown): void {
    this.emit('warning', err instanceof Error ? err : new Error(String(err)));
  }

  #assertOpen(): void {
    if (this.#closing) throw new AbortedError(`kubernetes lock ${this.key} is closed`, { backend: 'kubernetes' });
  }
}

/** Gone or released by someone else: 'expired'; another record: 'taken'. */
function lossReason(snap: Snapshot): LostReason {
  return snap.wire?.holder === undefined ? 'expired' : 'taken';
}

function lost(term: Term, reason: string): LockLostError {
  return new LockLostError(`term ${term.token} of ${JSON.stringify(term.holder)} is over: ${reason}`, { backend: 'kubernetes', reason });
}

export type { KubernetesLockOptions } from './lock-options.js';
export type { LockKind, EndpointPort } from './kinds.js';
export type { KubeLockApi } from './lock-api.js';
export { PodRoleLabels, type RoleLabelOptions } from './role-labels.js';
