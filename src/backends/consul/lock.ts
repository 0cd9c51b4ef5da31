import { EventEmitter } from 'node:events';
import type { Clock } from '../../core/clock.js';
import { AbortedError, BackendUnavailableError, DeadlineExceededError, LockLostError, LeaderLockError, isAmbiguous } from '../../core/errors.js';
import { Term, type AcquireOptions, type LeaderLock, type LeaderLockEvents, type LockState, type LostReason, type ReleaseOptions, type RenewOptions } from '../../core/lock.js';
import { withRetry } from '../../core/retry.js';
import { logger } from '../../core/log.js';
import { assertHolder, assertMetadata } from '../../core/options.js';
import { StateFeed } from '../../core/watch.js';
import type { ConsulApi, KvPair } from './client.js';
import { resolveConsulLockOptions, type ConsulLockOptions, type ResolvedConsulLockOptions } from './options.js';
import { failoverValue, isHeld, pickEntries, toLockState } from './records.js';
import { SharedSession, sessionSpec } from './session.js';
import { FailoverJudge, parsePatroniFailover } from '../patroni/failover.js';
import { patroniNameClash } from '../patroni/members.js';

const log = logger('consul');

/**
 * A leader key in Consul KV, held through a session (TTL, `behavior=delete`, no checks, explicit
 * lock-delay) shared by the locks on one client.
 *
 * - Token = the key's CreateIndex. Every term creates the key anew (release deletes it, the session
 *   deletes it when invalidated, a stale unheld key is deleted with `?cas` before acquiring), so the
 *   token strictly increases and `get()`/`watch` report the same token the Term holds.
 * - validUntil = send time of the last renew Consul confirmed + ttlMs × (1 − drift). Consul
 *   invalidates a session no earlier than TTL after its last renew (and up to 2 × TTL), so no other
 *   holder can take the key before that; a renew whose reply was lost never moves it.
 * - Crash failover takes up to 2 × TTL + lock-delay: that is when Consul deletes the key.
 */
export class ConsulLock extends EventEmitter<LeaderLockEvents> implements LeaderLock {
  readonly backend = 'consul';
  readonly key: string;
  readonly ttlMs: number;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly drift: number;
  readonly #o: Readonly<ResolvedConsulLockOptions>;
  readonly #client: ConsulApi & { close?(): void };
  readonly #ownClient: boolean;
  readonly #session: SharedSession;
  readonly #terms = new WeakSet<Term>();
  /** Terms that wrote `<key>-meta` (release removes it). */
  readonly #withMetadata = new WeakSet<Term>();
  /** Terms whose key a background loop is still trying to delete (a release failed). */
  readonly #retrying = new Set<Term>();
  readonly #closed = new AbortController();
  /** Patroni layout: Patroni's failover request, judged like our own nomination (see patroni/failover.ts). */
  #failover: FailoverJudge | undefined;
  #term: Term | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ConsulLockOptions = {}) {
    super();
    const { options: o, client, ownClient } = resolveConsulLockOptions(options);
    this.#o = o;
    this.#client = client;
    this.#ownClient = ownClient;
    this.key = o.key;
    this.ttlMs = o.ttlMs;
    this.requestTimeoutMs = o.requestTimeoutMs;
    this.clock = o.clock;
    this.drift = o.drift;
    this.#session = SharedSession.for(client, sessionSpec(o), o.clock);
  }

  /** The session this lock holds its key with (undefined before the first acquire or after Consul ended it). */
  get sessionId(): string | undefined {
    return this.#session.id;
  }

  /**
   * Creates the key with our session (`PUT ?acquire`) if no session holds it and no nomination names
   * someone else. Resolves undefined when another session holds it (also an earlier incarnation of
   * us), during Consul's lock-delay, or when another lock object of this process is trying for it.
   * An ambiguous acquire is decided by a re-read. `BackendUnavailableError` when Consul is unreachable.
   */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<Term | undefined> {
    assertHolder(holder, 'consul');
    const metadata = assertMetadata(options.metadata, 'consul');
    this.#assertOpen();
    if (this.#term && !this.#term.ended) return undefined;
    if (!this.#session.claim(this.key, this)) return undefined;
    let won = false;
    try {
      // One retry: a session Consul had already invalidated is replaced once.
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await this.#tryAcquire(holder, options.signal, metadata);
        if (r !== 'retry') {
          won = r !== undefined;
          return r;
        }
      }
      return undefined;
    } finally {
      if (!won) this.#session.unclaim(this.key, this);
    }
  }

  async #tryAcquire(holder: string, signal: AbortSignal | undefined, metadata?: string): Promise<Term | undefined | 'retry'> {
    const o = this.#o;
    const { id: sid, created } = await this.#session.ensure(signal);
    // 1. One read of the key and its nomination (the nomination is `<key>-successor`, under the same
    //    prefix); on a Patroni layout of the whole scope, which adds Patroni's failover request and members.
    const scopeDir = o.failoverKey?.slice(0, -'failover'.length);
    const before = await this.#client.kvGet(scopeDir ?? o.key, { recurse: true, signal });
    const { leader, successor } = pickEntries(before.entries, o.key, o.successorKey);
    // 1b. A Patroni member registered under our identity would take our key for its own (issue 16, item 12).
    if (scopeDir !== undefined && before.entries.some((e) => e.key === `${scopeDir}members/${holder}`)) {
      throw patroniNameClash('consul', o.key, holder, `${scopeDir}members/${holder}`);
    }
    // 2. Another session holds it: a live holder (also a restarted incarnation of ourselves).
    if (isHeld(leader) && leader.session !== sid) return undefined;
    // 3. A handover named someone else, and the nomination has not expired.
    if (isHeld(successor) && successor.value !== holder) return undefined;
    // 3a. Patroni's failover request (patronictl switchover), honoured like our nomination (issue 16, item 10).
    const request = o.failoverKey !== undefined && !isHeld(successor) ? before.entries.find((e) => e.key === o.failoverKey) : undefined;
    if (request) {
      this.#failover ??= new FailoverJudge(this.ttlMs);
      if (this.#failover.judge(parsePatroniFailover(request.value), String(request.modifyIndex), holder, this.clock.now()) === 'other') return undefined;
    }
    // 3b. Before any write: a session whose last confirmed refresh is old (our renewals have been
    //     failing) is renewed first, so a process that cannot keep a session alive never churns
    //     the key (create, then give back) and wakes every watcher for nothing.
    let fresh: number | undefined;
    if (created === undefined && this.#session.confirmedAt + this.ttlMs * (1 - this.drift) - this.clock.now() < this.ttlMs / 2) {
      fresh = await this.#session.renew(sid, signal);
      if (fresh === undefined) return 'retry';
    }
    // 4. A stale key (unheld leftover, or held by our own session after a failed release in this
    //    process — we hold the in-process claim, so no live term of ours uses it): delete it with cas
    //    so our acquire creates the key anew and the token (CreateIndex) is fresh.
    if (leader && !(await this.#client.kvDelete(o.key, { cas: leader.modifyIndex, signal }))) return undefined;
    // 5. Acquire, renewing the session concurrently: validUntil counts from a confirmed refresh.
    const [renewed, acquired] = await Promise.allSettled([
      fresh !== undefined ? Promise.resolve(fresh) : this.#session.renew(sid, signal),
      this.#client.kvPut(o.key, holder, { acquire: sid, signal }),
    ]);
    if (acquired.status === 'rejected') {
      const err = acquired.reason as unknown;
      if (err instanceof LeaderLockError && err.reason === 'invalid-session') {
        this.#session.forget(sid);
        return 'retry';
      }
      if (!isAmbiguous(err)) throw err;
      log('acquire of %s ambiguous (%s); re-reading', o.key, (err as Error).message);
    } else if (!acquired.value) {
      // Taken in between, or Consul's lock-delay after an invalidated holder is still running.
      return renewed.status === 'fulfilled' && renewed.value === undefined ? 'retry' : undefined;
    }
    // 6. Read back: the token is the CreateIndex of the key our acquire created.
    const after = await this.#client.kvGet(o.key, { signal });
    const mine = after.entries[0];
    if (!mine || mine.session !== sid || mine.value !== holder) return undefined;
    if (mine.createIndex <= before.index) {
      // The key existed before our write (a foreign writer created it without a session after our
      // delete), so its CreateIndex is no fresh token: give it back and let the next attempt recreate it.
      // Deleted, not `?release`d: a session-less key with a name in it reads as a live leader to Patroni.
      await this.#client.kvDelete(o.key, { cas: mine.modifyIndex, signal }).catch((err: unknown) => this.#warn(err));
      return undefined;
    }
    const confirmed = [renewed.status === 'fulfilled' ? renewed.value : undefined, created].filter((t): t is number => t !== undefined);
    const refreshedAt = confirmed.length > 0 ? Math.min(...confirmed) : this.#session.confirmedAt;
    const validUntil = refreshedAt + this.ttlMs * (1 - this.drift);
    if (!(validUntil > this.clock.now())) {
      // We hold the key but cannot show a recent confirmed session refresh (our renewals fail while
      // the session still lives on the server): a term would be born expired. Give the key back.
      await this.#client.kvDelete(o.key, { cas: mine.modifyIndex, signal }).catch((err: unknown) => this.#warn(err));
      if (renewed.status === 'rejected') throw renewed.reason;
      return undefined;
    }
    const term = new Term({ holder, token: mine.createIndex, validUntil, clock: this.clock, backend: 'consul' });
    this.#terms.add(term);
    this.#term = term;
    log('acquired %s for %s, token %s', o.key, holder, mine.createIndex);
    // 7. Our nomination is used up, and so is a Patroni request we acquired past (as Patroni's new leader clears it).
    if (isHeld(successor)) await this.#client.kvDelete(o.successorKey, { cas: successor.modifyIndex, signal }).catch((err: unknown) => this.#warn(err));
    if (request) await this.#client.kvDelete(request.key, { cas: request.modifyIndex, signal }).catch((err: unknown) => this.#warn(err));
    // 8. Metadata beside the key, held by the same session (gone with it), tagged with the token
    //    (Flags) so readers never pair it with another term. Best effort: the term stands without it.
    if (metadata !== undefined) {
      this.#withMetadata.add(term);
      await this.#writeMetadata(metadata, sid, term.token, signal);
    }
    return term;
  }

  async #writeMetadata(metadata: string, sid: string, token: bigint, signal: AbortSignal | undefined): Promise<void> {
    const o = this.#o;
    try {
      if (await this.#client.kvPut(o.metaKey, metadata, { acquire: sid, flags: Number(token), signal })) return;
      // Another session holds a stale metadata key (the previous holder's, until Consul deletes it): replace it.
      const old = (await this.#client.kvGet(o.metaKey, { signal })).entries[0];
      if (old) await this.#client.kvDelete(o.metaKey, { cas: old.modifyIndex, signal });
      if (await this.#client.kvPut(o.metaKey, metadata, { acquire: sid, flags: Number(token), signal })) return;
      this.#warn(new LeaderLockError(`consul: could not write the leader metadata at ${o.metaKey}; leading without it`, { backend: 'consul' }));
    } catch (err) {
      this.#warn(err);
    }
  }

  /**
   * Session renew and a read of the key (`Session` = ours, CreateIndex = token), concurrently: the
   * renew alone proves nothing about the key. Both confirmed → validUntil = renew send time + ttl ×
   * (1 − drift). Key gone or not ours, or session gone → `LockLostError` (term ended). Otherwise
   * `BackendUnavailableError`/`ForbiddenError`, term unchanged.
   */
  async renew(term: Term, options: RenewOptions = {}): Promise<Term> {
    this.#assertOwn(term);
    if (term.ended) throw this.#lost(term, term.endReason ?? 'expired');
    const sid = this.#session.id;
    if (sid === undefined) throw this.#lost(term, 'expired');
    const [renewed, read] = await Promise.allSettled([this.#session.renew(sid, options.signal), this.#client.kvGet(this.key, { signal: options.signal })]);
    // Proof of loss wins over any error on the other request.
    const sessionGone = renewed.status === 'fulfilled' && renewed.value === undefined;
    if (read.status === 'fulfilled') {
      const e = read.value.entries[0];
      if (!this.#isOurs(e, sid, term)) throw this.#lost(term, e === undefined && sessionGone ? 'expired' : 'taken');
    }
    if (sessionGone) throw this.#lost(term, 'expired');
    if (renewed.status === 'rejected') throw renewed.reason;
    if (read.status === 'rejected') throw read.reason;
    term.extend(renewed.value! + this.ttlMs * (1 - this.drift));
    if (term.ended) throw this.#lost(term, term.endReason ?? 'expired');
    return term;
  }

  /**
   * `DELETE ?cas=<ModifyIndex>` after checking the key is still this term's (Session and CreateIndex),
   * so it never deletes a successor's. With `successor`, first writes the nomination
   * `<key>-successor` on a fresh never-renewed session (≥ 10 s, behavior=delete; it expires by itself)
   * and, on a Patroni layout, Patroni's `<scope>/failover` record. False when it was no longer ours.
   */
  async release(term: Term, options: ReleaseOptions = {}): Promise<boolean> {
    this.#assertOwn(term);
    if (options.successor !== undefined) assertHolder(options.successor, 'consul');
    const sid = this.#session.id;
    try {
      return await this.#release(term, options);
    } catch (err) {
      // The key may still be ours on the server, riding the session the other locks of this client
      // keep renewing: it would never expire. Keep trying to delete it in the background.
      if (sid !== undefined && err instanceof BackendUnavailableError) void this.#releaseInBackground(term, sid, err);
      throw err;
    }
  }

  /**
   * A release that failed (agent unreachable) leaves the key on the server. With a session of its own
   * the key would go when the session expires; but the session is shared by every lock on this client
   * and their renewals keep it alive, so the key would stay for ever and nobody — not even we — would
   * take the lock again. The read-check-`?cas` delete is retried with back-off until it lands, or the
   * key is no longer this term's, or the session is gone (Consul deleted the key with it: behavior=delete).
   * Chosen over destroying the shared session: that would end every other lock's term for a failure
   * that is usually a short outage. Bounded by the key's life: the last lock to close destroys the session.
   */
  async #releaseInBackground(term: Term, sid: string, first: Error): Promise<void> {
    if (this.#retrying.has(term)) return;
    this.#retrying.add(term);
    let delay = Math.min(500, this.ttlMs / 10);
    let warned = false;
    log('release of %s (token %s) failed (%s); retrying in the background', this.key, term.token, first.message);
    try {
      for (;;) {
        if (this.#session.id !== sid) {
          log('release retry of %s: session %s is gone, and the key with it', this.key, sid);
          this.#endRetried(term, 'expired');
          return;
        }
        await this.clock.sleep(delay).catch(() => undefined);
        try {
          const e = (await this.#client.kvGet(this.key)).entries[0];
          if (!this.#isOurs(e, sid, term)) {
            this.#endRetried(term, e === undefined ? 'expired' : 'taken');
            return;
          }
          if (await this.#client.kvDelete(this.key, { cas: e.modifyIndex })) {
            log('release retry of %s (token %s): deleted', this.key, term.token);
            this.#endRetried(term, 'released');
            return;
          }
        } catch (err) {
          if (!warned) {
            warned = true;
            this.#warn(new LeaderLockError(`consul key ${this.key} (token ${term.token}) could not be released; retrying until it is gone: ${(err as Error).message}`, { backend: 'consul', cause: err }));
          }
          delay = Math.min(delay * 2, this.ttlMs / 3);
        }
      }
    } finally {
      this.#retrying.delete(term);
    }
  }

    /** The background release is done: end the term; drop the claim unless a newer term of ours holds it. */
  #endRetried(term: Term, reason: LostReason): void {
    term.end(reason);
    if (this.#term !== term) return;
    this.#term = undefined;
    this.#session.unclaim(this.key, this);
  }

async #release(term: Term, options: ReleaseOptions): Promise<boolean> {
    const o = this.#o;
    const reason: LostReason = options.successor !== undefined ? 'handover' : 'released';
    const sid = this.#session.id;
    const read = await this.#client.kvGet(o.key);
    const e = read.entries[0];
    if (sid === undefined || !this.#isOurs(e, sid, term)) return this.#released(term, 'taken', false);
    if (options.successor !== undefined) await this.#nominate(term.holder, options.successor);
    // Our metadata goes first, while the key is still ours: after the delete a successor may already
    // have written its own. Best effort: a leftover is ignored by readers (its Flags name our token).
    if (this.#withMetadata.has(term)) {
      const meta = (await this.#client.kvGet(o.metaKey).catch(() => undefined))?.entries[0];
      if (meta && meta.session === sid) await this.#client.kvDelete(o.metaKey, { cas: meta.modifyIndex }).catch(() => undefined);
    }
    let modifyIndex = e.modifyIndex;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        if (await this.#client.kvDelete(o.key, { cas: modifyIndex })) return this.#released(term, reason, true);
      } catch (err) {
        if (!isAmbiguous(err)) throw err;
        const again = (await this.#client.kvGet(o.key)).entries[0];
        // Gone or replaced: our delete (or Consul's invalidation) removed our record.
        if (!this.#isOurs(again, sid, term)) return this.#released(term, reason, true);
        modifyIndex = again.modifyIndex;
        continue;
      }
      const again = (await this.#client.kvGet(o.key)).entries[0];
      if (!this.#isOurs(again, sid, term)) return this.#released(term, 'taken', false);
      modifyIndex = again.modifyIndex;
    }
    throw new BackendUnavailableError(`consul release of ${o.key} could not be confirmed`, { backend: 'consul' });
  }

  async #nominate(leader: string, successor: string): Promise<void> {
    const o = this.#o;
    try {
      // A session of its own that nobody renews: Consul deletes the nomination TTL–2×TTL after it is written.
      const nsid = await this.#client.sessionCreate({ name: `${o.sessionName}-successor`, ttl: `${Math.max(10, o.sessionTtlS)}s`, lockDelay: '0s', behavior: 'delete', checks: [] });
      let ok = await this.#client.kvPut(o.successorKey, successor, { acquire: nsid });
      if (!ok) {
        // An earlier nomination still holds the key: replace it.
        const old = (await this.#client.kvGet(o.successorKey)).entries[0];
        if (old) await this.#client.kvDelete(o.successorKey, { cas: old.modifyIndex });
        ok = await this.#client.kvPut(o.successorKey, successor, { acquire: nsid });
      }
      if (!ok) this.#warn(new LeaderLockError(`consul: could not write the nomination of ${JSON.stringify(successor)} at ${o.successorKey}; releasing without it`, { backend: 'consul' }));
      if (o.failoverKey !== undefined) await this.#client.kvPut(o.failoverKey, failoverValue(leader, successor));
    } catch (err) {
      if (!(err instanceof LeaderLockError) || err.reason === 'invalid-session') throw err;
      // The nomination is an optimisation; the release itself must still happen.
      this.#warn(err);
    }
  }

  /**
   * One read of the key and its nomination. A failure is retried once at once (a pooled keep-alive
   * connection to a restarted agent fails on first use) but never after a deadline; no back-off
   * sleeps here: callers (the elector) have their own retry period.
   */
  async get(): Promise<LockState> {
    // One immediate retry of a refused/reset/5xx read; a timed-out read is not repeated.
    const r = await withRetry((signal) => this.#client.kvGet(this.key, { recurse: true, signal }), {
      what: `consul get ${this.key}`,
      backend: 'consul',
      deadlineMs: 2 * this.requestTimeoutMs,
      signal: this.#closed.signal,
      retries: 1,
      minDelayMs: 0,
      retryable: (err) => err instanceof BackendUnavailableError && !(err instanceof DeadlineExceededError),
    });
    return toLockState(pickEntries(r.entries, this.key, this.#o.successorKey, this.#o.metaKey), this.ttlMs);
  }

  /**
   * Blocking queries on the key's prefix (`?index=&wait=`, X-Consul-Index). An index that goes
   * backwards (a restored snapshot, a new cluster) resets to 0, as Consul's documentation says.
   * Failures are reported as 'warning' and retried with back-off on the lock's clock.
   */
  watch(options: { signal: AbortSignal }): AsyncIterable<LockState> {
    const feed = new StateFeed(options.signal);
    void this.#watchLoop(feed, AbortSignal.any([options.signal, this.#closed.signal]));
    return feed;
  }

  async #watchLoop(feed: StateFeed, stop: AbortSignal): Promise<void> {
    let index = 0n;
    let failures = 0;
    let early = 0;
    while (!stop.aborted && !feed.closed) {
      try {
        const sent = index;
        const started = this.clock.now();
        const r = await this.#client.kvGet(this.key, { recurse: true, index, waitMs: this.#o.watchWaitMs, signal: stop });
        failures = 0;
        index = nextBlockingIndex(sent, r.index);
        feed.push(toLockState(pickEntries(r.entries, this.key, this.#o.successorKey, this.#o.metaKey), this.ttlMs));
        // Rate limit (Consul's docs): a read that brought no new index and came back well before its
        // wait was not a blocking query (an index of 0 or missing, a proxy that ignores ?index=). Without
        // this pause such a server is read in a tight loop (8,426 reads in 200 ms measured).
        if ((r.index > 0n && r.index !== sent) || this.clock.now() - started >= this.#o.watchWaitMs / 2) early = 0;
        else {
          early += 1;
          if (early === 3) this.#warn(new LeaderLockError(`consul watch ${this.key}: reads return at once without a new X-Consul-Index (got ${r.index}); backing off`, { backend: 'consul' }));
          await this.clock.sleep(Math.min(5000, 50 * 2 ** Math.min(early, 7)), stop).catch(() => undefined);
        }
      } catch (err) {
        if (stop.aborted) break;
        failures += 1;
        this.#warn(err);
        const backoff = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        await this.clock.sleep(backoff, stop).catch(() => undefined);
      }
    }
    feed.end();
  }

  /** Idempotent: releases a term still held, ends the watch loops, destroys the session when last. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const term = this.#term;
      if (term && this.#session.id !== undefined) await this.release(term).catch((err: unknown) => this.#warn(err));
      this.#closed.abort();
      this.#session.unclaim(this.key, this);
      const err = await this.#session.release();
      if (err) this.#warn(err);
      if (this.#ownClient) this.#client.close?.();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #isOurs(e: KvPair | undefined, sid: string, term: Term): e is KvPair {
    return e !== undefined && e.session === sid && e.createIndex === term.token;
  }

  #released(term: Term, reason: LostReason, result: boolean): boolean {
    term.end(reason);
    if (this.#term === term) this.#term = undefined;
    this.#session.unclaim(this.key, this);
    return result;
  }

  #lost(term: Term, reason: LostReason): LockLostError {
    term.end(reason);
    return new LockLostError(`consul: term ${term.token} of ${JSON.stringify(term.holder)} on ${this.key} is over: ${reason}`, { backend: 'consul', reason });
  }

  #assertOpen(): void {
    if (this.#closing) throw new AbortedError('consul lock is closed', { backend: 'consul' });
  }

  #assertOwn(term: Term): void {
    if (!this.#terms.has(term)) throw new LockLostError(`consul: term ${term.token} was not acquired by this lock`, { backend: 'consul', reason: 'taken' });
  }

  #warn(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    log('warning: %s', e.message);
    this.emit('warning', e);
  }
}

/**
 * The index for the next blocking query, as Consul's blocking-query docs say: an index of 0 (or a
 * missing header) is clamped to 1, because `?index=0` does not block and a server that keeps answering
 * 0 would be read in a loop; an index that goes backwards (restored snapshot, new cluster) resets to 0.
 */
export function nextBlockingIndex(sent: bigint, got: bigint): bigint {
  if (got <= 0n) return 1n;
  return got < sent ? 0n : got;
}
