import { EventEmitter } from 'node:events';
import type { IKeyValue, ITxnRequest, ITxnResponse } from 'etcd3';
import type { Clock } from '../../core/clock.js';
import { BackendUnavailableError, LeaderLockError, LockLostError, quoteValue } from '../../core/errors.js';
import { Term, type AcquireOptions, type LeaderLock, type LeaderRecord, type LockState, type LostReason, type ReleaseOptions, type RenewOptions } from '../../core/lock.js';
import { logger } from '../../core/log.js';
import { Problems, assertHolder, assertMetadata } from '../../core/options.js';
import { isLeaseGone, mapEtcdError } from './errors.js';
import { resolveKey, resolveSessionOptions, type EtcdLockKeyOptions, type EtcdSessionOptions } from './options.js';
import { EtcdSession, type KeepAliveResult } from './session.js';
import { watchLock } from './watch.js';
import { fencedWrite, type FencedOp, type FenceResult } from './fence.js';
import * as wire from './wire.js';
import { FailoverJudge, parsePatroniFailover } from '../patroni/failover.js';
import { patroniNameClash } from '../patroni/members.js';

const log = logger('etcd');

export interface EtcdLockOptions extends EtcdSessionOptions, EtcdLockKeyOptions {
  /**
   * Share one lease (and the connections) with other locks of this process, as Patroni does. Without
   * it the lock creates its own session from the connection options and closes it in `close()`.
   */
  session?: EtcdSession;
}

/**
 * The leader key on etcd v3. Value: the bare holder name (Patroni and `etcdctl get` read it as is).
 * Token: the key's create-revision — every term creates the key anew, so tokens strictly increase.
 *
 * - acquire: txn `create_revision(key) == 0 && create_revision(key-successor) == 0` → put holder with
 *   the session's lease, sent together with a lease keep-alive; validUntil = earlier send time + ttl·(1−drift).
 * - renew: keep-alive and txn `create_revision == token && lease == ours`, concurrently; both must confirm.
 *   A keep-alive TTL of 0 is loss (we never wait for etcd3's late `lost` event).
 * - release: txn `create_revision == token` → delete (plus the handover nomination); never touches a successor's key.
 * - A key without a lease (written by etcdctl or an operator) counts as held forever: reported as a
 *   'warning', never stolen.
 */
export class EtcdLock extends EventEmitter<{ warning: [Error] }> implements LeaderLock {
  readonly backend = 'etcd' as const;
  readonly key: string;
  readonly ttlMs: number;
  readonly requestTimeoutMs: number;
  readonly drift: number;
  readonly clock: Clock;
  readonly session: EtcdSession;
  readonly #keys: wire.LockKeys;
  readonly #ownSession: boolean;
  readonly #held = new Map<Term, wire.LeaseId>();
  readonly #releasing = new Set<Term>();
  /** Terms whose key a background loop is still trying to delete (a release failed). */
  readonly #retrying = new Set<Term>();
  readonly #leaseTtl = new Map<wire.LeaseId, number>();
  /** Records built with our own ttl as a stand-in because their holder's lease TTL was not known yet. */
  readonly #unknownLease = new WeakMap<LeaderRecord, wire.LeaseId>();
  /** Patroni layout: Patroni's failover request, judged like our own nomination (see patroni/failover.ts). */
  readonly #failover: FailoverJudge;
  #warnedForeign: bigint | undefined;
  #warnedForeignSuccessor: bigint | undefined;
  #closed = false;
  #proofReq: { term: Term; lease: wire.LeaseId; req: ITxnRequest } | undefined;
  #orphanCheck: Promise<void> | undefined;

  constructor(options: EtcdLockOptions) {
    super();
    const p = new Problems();
    const { key, drift } = resolveKey(options, p);
    if (options.session) {
      for (const k of ['endpoints', 'client', 'tls', 'username', 'password', 'requestTimeoutMs', 'clock'] as const) {
        if (options[k] !== undefined) p.add(`${k} belongs to the shared session; give it to new EtcdSession(...) instead`);
      }
      if (options.ttlMs !== undefined && options.ttlMs !== options.session.ttlMs) p.add(`ttlMs (${options.ttlMs}) differs from the session's (${options.session.ttlMs}); the lease is the session's`);
    } else resolveSessionOptions(options, p);
    p.throwIfAny('etcd');
    this.key = key;
    this.drift = drift;
    this.#keys = wire.lockKeys(key);
    this.#ownSession = !options.session;
    this.session = options.session ?? new EtcdSession(options);
    this.session.attach();
    this.ttlMs = this.session.ttlMs;
    this.#failover = new FailoverJudge(this.ttlMs);
    this.requestTimeoutMs = this.session.requestTimeoutMs;
    this.clock = this.session.clock;
  }

  /**
   * Creates the key for `holder` with the shared lease if it is free and nobody else is nominated.
   * Resolves undefined when another live holder (or a lease-less key, or another nominee) has it.
   * An ambiguous failure is re-read: a key on our lease with our holder name is ours.
   */
  async acquire(holder: string, options: AcquireOptions = {}): Promise<Term | undefined> {
    assertHolder(holder, 'etcd');
    const metadata = assertMetadata(options.metadata, 'etcd');
    this.#assertOpen();
    const signal = options.signal;
    for (let attempt = 0; attempt < 3; attempt++) {
      const lease = await this.session.lease(signal);
      // 1. Try to create the key. When the lease's last confirmed refresh still bounds at least half a
      //    ttl, the txn's answer alone decides: the key lives as long as the lease, and the lease until
      //    that refresh's send time + its TTL; the next renew refreshes it. Otherwise refresh the lease
      //    concurrently and wait for both. (A keep-alive sent along although not needed costs the
      //    acquire ~0.3 ms: its reply is handled on the same event loop as the txn's.)
      const sentAt = this.clock.now();
      const recent = this.session.lastRefresh(lease);
      const known = recent && this.#validFrom(recent) - sentAt >= this.ttlMs / 2 ? recent : undefined;
      // Batched with the other locks' creates on this lease when many start at once (see TxnBatcher).
      const txnP = this.session.txns.txn('etcd acquire', wire.acquireTxn(this.#keys, holder, lease, metadata), { group: `lease ${lease}`, signal });
      let ka: PromiseSettledResult<KeepAliveResult> | undefined;
      let first: PromiseSettledResult<ITxnResponse>;
      if (known) [first] = await Promise.allSettled([txnP]);
      else [ka, first] = await Promise.allSettled([this.session.keepAlive(lease, { signal }), txnP]);
      let won: { token: bigint } | 'again' | undefined;
      try {
        won = first.status === 'fulfilled' ? await this.#decideAcquire(first.value, holder, lease, signal, metadata) : await this.#afterAmbiguousAcquire(first.reason, holder, lease, signal);
      } catch (err) {
        // Undecided create: the key may be ours on the lease without a term for it; find out later.
        if (first.status === 'rejected' && !isLeaseGone(err)) this.#resolveOrphan(holder, lease);
        if (!isLeaseGone(err)) throw err;
        this.session.leaseLost(lease);
        won = 'again';
      }
      if (won === 'again') continue;
      if (!won) return undefined;
      // 2. The key is ours; its lifetime is the lease's, so validUntil needs a confirmed refresh.
      const alive = known ?? (ka!.status === 'fulfilled' ? ka!.value : await this.#keepAliveOrGiveBack(won.token, holder, lease, signal));
      if (alive.ttlMs <= 0) continue; // the lease (and the key with it) is gone: start over on a new lease
      const term = new Term({ holder, token: won.token, validUntil: this.#validFrom({ sentAt: Math.min(sentAt, alive.sentAt), ttlMs: alive.ttlMs }), clock: this.clock, backend: 'etcd' });
      this.#hold(term, lease);
      log('%s acquired %s, token %s, lease %s', holder, this.key, won.token, lease);
      return term;
    }
    throw new BackendUnavailableError(`etcd acquire of ${this.key}: the lease kept disappearing`, { backend: 'etcd' });
  }

  /** validUntil that a confirmed refresh gives: its send time + ttl·(1−drift) (the smaller of ours and the granted TTL). */
  #validFrom(r: KeepAliveResult): number {
    return r.sentAt + Math.min(this.ttlMs, r.ttlMs) * (1 - this.drift);
  }

  async #decideAcquire(res: ITxnResponse, holder: string, lease: wire.LeaseId, signal?: AbortSignal, metadata?: string): Promise<{ token: bigint } | 'again' | undefined> {
    if (res.succeeded) return { token: wire.revisionOf(res) };
    const [leaderKv, successorKv] = wire.rangeResults(res);
    const leader = wire.storedLeader(leaderKv);
    if (leader) {
      if (leader.lease === lease && leader.holder === holder) return this.#oursAlready(leader.token, signal);
      if (leader.foreign) this.#warnForeign(leader);
      return undefined;
    }
    const [, , failoverKv, memberKv] = wire.rangeResults(res);
    if (memberKv) throw patroniNameClash('etcd', this.key, holder, wire.memberKey(this.#keys, holder)!);
    if (successorKv && wire.isForeignSuccessor(successorKv)) {
      // A lease-less nomination is no nomination: acquire past it (it stays; it is not ours to delete).
      this.#warnForeignSuccessor(successorKv);
      const res2 = await this.#txn('etcd acquire (past a lease-less nomination)', wire.acquireTxn(this.#keys, holder, lease, metadata, BigInt(successorKv.create_revision)), signal);
      if (res2.succeeded) return { token: wire.revisionOf(res2) };
      const [l2, s2] = wire.rangeResults(res2);
      const stored = wire.storedLeader(l2);
      if (stored) return stored.lease === lease && stored.holder === holder ? this.#oursAlready(stored.token, signal) : undefined;
      // The nomination changed under us (a real one, or another lease-less one): decide again next round.
      return s2 && !wire.isForeignSuccessor(s2) && s2.value.toString('utf8') === holder ? 'again' : undefined;
    }
    if (successorKv && successorKv.value.toString('utf8') === holder) {
      // 3. We are the nominee: take the key and remove the nomination in one revision.
      const res2 = await this.#txn('etcd acquire (nominee)', wire.nomineeAcquireTxn(this.#keys, holder, lease, metadata), signal);
      log('%s nominee acquire of %s: %s at revision %s', holder, this.key, res2.succeeded, res2.header.revision);
      if (res2.succeeded) return { token: wire.revisionOf(res2) };
      const l2 = wire.storedLeader(wire.rangeResults(res2)[0]);
      return l2 && l2.lease === lease && l2.holder === holder ? { token: l2.token } : undefined;
    }
    if (!successorKv && failoverKv) {
      // 4. Patroni's failover request (patronictl switchover): honoured like our own nomination.
      const req = parsePatroniFailover(failoverKv.value.toString('utf8'));
      if (this.#failover.judge(req, String(failoverKv.mod_revision), holder, this.clock.now()) === 'other') return undefined;
      const res3 = await this.#txn('etcd acquire (past failover request)', wire.failoverAcquireTxn(this.#keys, holder, lease, String(failoverKv.mod_revision), metadata), signal);
      if (res3.succeeded) return { token: wire.revisionOf(res3) };
      if (wire.rangeResults(res3)[3]) throw patroniNameClash('etcd', this.key, holder, wire.memberKey(this.#keys, holder)!);
    }
    return undefined;
  }

  /**
   * The key is on our lease under our name. Either our own ambiguous attempt created it (a new term),
   * or it is left from one of our terms that ended locally without a confirmed release (etcd was
   * unreachable): then delete it and create it anew, so the new term gets a new, higher token.
   */
  async #oursAlready(token: bigint, signal?: AbortSignal): Promise<{ token: bigint } | 'again' | undefined> {
    const old = [...this.#held.keys()].find((t) => t.token === token);
    if (!old) return { token };
    // Still ours and not over, or being released right now (a handover writes its nomination in the
    // same txn): the key is not free, and deleting it here would cancel that release.
    if (!old.ended || this.#releasing.has(old)) return undefined;
    log('%s: key %s (token %s) is left from an ended term of ours; deleting it to start a new term', old.holder, this.key, token);
    await this.#txn('etcd release (stale term)', wire.releaseTxn(this.#keys, token), signal);
    this.#unhold(old);
    return 'again';
  }

  /** The create txn failed ambiguously: re-read; a key on our lease with our name is ours. */
  async #afterAmbiguousAcquire(reason: unknown, holder: string, lease: wire.LeaseId, signal?: AbortSignal): Promise<{ token: bigint } | 'again' | undefined> {
    if (isLeaseGone(reason) || !(reason instanceof BackendUnavailableError)) throw reason;
    const { leader } = await this.#read(signal);
    const stored = wire.storedLeader(leader);
    if (stored && stored.lease === lease && stored.holder === holder) return this.#oursAlready(stored.token, signal);
    if (stored) return undefined;
    throw reason;
  }

  async #keepAliveOrGiveBack(token: bigint, holder: string, lease: wire.LeaseId, signal?: AbortSignal): Promise<KeepAliveResult> {
    try {
      return await this.session.keepAlive(lease, { signal });
    } catch (err) {
      // We created the key but cannot bound its lifetime: give it back rather than hold it blind.
      log('acquired %s (token %s) but the lease keep-alive failed: giving it back', this.key, token);
      await this.#txn('etcd release', wire.releaseTxn(this.#keys, token), undefined).catch(() => this.#resolveOrphan(holder, lease));
      throw err;
    }
  }

  /**
   * Proves the key is still ours (txn `create_revision == token && lease == ours`) and refreshes the
   * lease, concurrently — batched with the other locks of the session (see `RenewBatcher`). Throws `LockLostError` (term ended: 'taken' or 'expired') when either says
   * no; `BackendUnavailableError` when undecided (the term keeps its validUntil).
   */
  async renew(term: Term, options: RenewOptions = {}): Promise<Term> {
    const lease = this.#held.get(term);
    // Ended locally (timer, elector): the key may still be on the server; keep tracking it until released.
    if (!lease || term.ended) throw this.#lostError(term, term.endReason ?? 'expired');
    if (this.session.leaseId !== lease) throw this.#lost(term, 'expired');
    const signal = options.signal;
    // Batched with the renews of the other locks on the session (one keep-alive, one txn per window).
    // The one-key proof is the same request every renew of a term: built once (etcd3 only reads it).
    if (this.#proofReq?.term !== term || this.#proofReq.lease !== lease) this.#proofReq = { term, lease, req: wire.ownershipTxn([{ key: this.#keys.leader, token: term.token, lease }]) };
    const { keepAlive: ka, proof: txn } = await this.session.renews.renew(this.#keys.leader, term.token, lease, signal, this.#proofReq.req);
    if (txn.status === 'fulfilled' && !txn.value.owned) {
      const now = wire.storedLeader(txn.value.current);
      throw this.#lost(term, now ? 'taken' : 'expired');
    }
    if (ka.status === 'fulfilled' && ka.value.ttlMs <= 0) throw this.#lost(term, 'expired');
    if (txn.status === 'rejected') throw isLeaseGone(txn.reason) ? this.#lost(term, 'expired') : mapEtcdError(txn.reason, 'etcd renew');
    if (ka.status === 'rejected') throw mapEtcdError(ka.reason, 'etcd renew');
    if (term.ended) throw this.#lostError(term, term.endReason ?? 'expired');
    term.extend(this.#validFrom(ka.value));
    return term;
  }

  /**
   * Deletes the key if it is still this term's (`create_revision == token`); with `successor`, also
   * writes the nomination `<key>-successor` on a fresh, never-renewed lease (it expires after ttl by
   * itself) and, on a Patroni layout, `<scope>/failover`. Works on an ended term. Resolves false when
   * the key was no longer ours.
   */
  async release(term: Term, options: ReleaseOptions = {}): Promise<boolean> {
    if (options.successor !== undefined) assertHolder(options.successor, 'etcd');
    this.#releasing.add(term);
    let attempts = 0;
    let handover: { successor: string; from: string; lease: wire.LeaseId } | undefined;
    let res: ITxnResponse;
    try {
      if (options.successor !== undefined) {
        const nomination = await this.session.grant(this.ttlMs);
        handover = { successor: options.successor, from: term.holder, lease: nomination.id };
      }
      const req = wire.releaseTxn(this.#keys, term.token, handover);
      const onAttempt = (): void => void attempts++;
      // Plain releases are batched with the other locks' (10,000 leaders stopping at once); a handover
      // writes a nomination on a lease of its own and goes alone.
      res = handover ? await this.session.call('etcd release', (rpc, o) => (onAttempt(), rpc.kv.txn(req, o))) : await this.session.txns.txn('etcd release', req, { group: 'release', onAttempt });
    } catch (err) {
      const mapped = mapEtcdError(err, 'etcd release');
      this.#releasing.delete(term);
      // The key may still be ours on the server, and on a shared lease it would never expire (other
      // locks keep the lease alive): keep trying the compare-and-delete in the background.
      if (this.#held.has(term)) void this.#releaseInBackground(term, mapped);
      throw mapped;
    } finally {
      this.#releasing.delete(term);
    }
    this.#unhold(term);
    // A retried delete that finds the key gone: the earlier, ambiguous attempt most likely deleted it.
    const gone = !res.succeeded && !wire.rangeResults(res)[0];
    const ok = res.succeeded || (gone && attempts > 1);
    term.end(ok ? (handover ? 'handover' : 'released') : gone ? 'expired' : 'taken');
    log('%s released %s (token %s): %s%s', term.holder, this.key, term.token, ok, res.succeeded ? '' : ` (now: ${wire.rangeResults(res)[0]?.create_revision ?? 'absent'}, attempts ${attempts})`);
    return ok;
  }

  /**
   * A release that failed (etcd unreachable, deadline) leaves the key on the server. On a lease only
   * this lock renews it would expire after ttl; on a shared lease (`session` option) the other locks'
   * renewals keep it alive for ever, and nobody — not even we — would take the lock again. So the
   * compare-and-delete (`create_revision == token`, never a successor's key) is retried with back-off
   * until it is confirmed, or the key is no longer ours (gone, recreated), or the lease it rides on is
   * gone (revoked by close, expired, rotated: the key went with it). Only then is the term dropped
   * from the held set, so the session sees "nothing held" again.
   *
   * Chosen over revoking the shared lease: a revoke would delete every other lock's key and end their
   * terms, for a failure that is usually a short outage. The loop is bounded by the key's life: it
   * cannot outlive the lease, and the session revokes that lease when it closes.
   */
  async #releaseInBackground(term: Term, first: LeaderLockError): Promise<void> {
    if (this.#retrying.has(term)) return;
    this.#retrying.add(term);
    const lease = this.#held.get(term);
    let delay = Math.min(200, this.ttlMs / 10);
    let warned = false;
    log('release of %s (token %s) failed (%s); retrying in the background', this.key, term.token, first.message);
    try {
      for (;;) {
        if (!this.#held.has(term) || this.#held.get(term) !== lease) return; // released another way
        if (this.session.closed || this.session.leaseId !== lease) {
          log('release retry of %s (token %s): lease %s is gone, and the key with it', this.key, term.token, lease);
          this.#unhold(term);
          return;
        }
        await this.clock.sleep(delay).catch(() => undefined);
        if (!this.#held.has(term) || this.#releasing.has(term)) continue;
        try {
          const res = await this.#txn('etcd release (retry)', wire.releaseTxn(this.#keys, term.token), undefined);
          this.#unhold(term);
          term.end(res.succeeded ? 'released' : wire.rangeResults(res)[0] ? 'taken' : 'expired');
          log('release retry of %s (token %s): %s', this.key, term.token, res.succeeded ? 'deleted' : 'no longer ours');
          return;
        } catch (err) {
          if (isLeaseGone(err)) {
            this.session.leaseLost(lease!);
            continue;
          }
          if (!warned) {
            warned = true;
            this.emit('warning', new LeaderLockError(`etcd key ${this.key} (token ${term.token}) could not be released; retrying until it is gone: ${mapEtcdError(err, 'etcd release').message}`, { backend: 'etcd', cause: err }));
          }
          delay = Math.min(delay * 2, this.ttlMs / 3);
        }
      }
    } finally {
      this.#retrying.delete(term);
    }
  }

  /** One consistent (linearizable) read of the key and the nomination. */
  async get(): Promise<LockState> {
    this.#assertOpen();
    const { leader, successor, meta } = await this.#read();
    const stored = wire.storedLeader(leader);
    if (stored && !stored.foreign && !this.#leaseTtl.has(stored.lease)) await this.#learnLeaseTtl(stored.lease);
    return this.#toState(leader, successor, meta);
  }

  watch(options: { signal: AbortSignal }): AsyncIterable<LockState> {
    this.#assertOpen();
    const feed = watchLock(
      { session: this.session, keys: this.#keys, read: (signal) => this.#read(signal), toState: (l, s, m) => this.#toState(l, s, m), warn: (e) => this.emit('warning', e) },
      options.signal,
    );
    return this.#withHolderTtl(feed, options.signal);
  }

  /**
   * `ttlMs` is the holder's lease TTL, as in `get()` (issue 12): a state whose holder rides on a lease
   * we have not asked about yet waits for one LeaseTimeToLive call (once per lease, bounded by the
   * request timeout); a state without a leader, or with a known lease, passes straight through.
   */
  async *#withHolderTtl(states: AsyncIterable<LockState>, signal: AbortSignal): AsyncGenerator<LockState, void, undefined> {
    for await (const state of states) {
      const lease = state.leader && this.#unknownLease.get(state.leader);
      if (lease === undefined || this.#leaseTtl.has(lease)) {
        yield state;
        continue;
      }
      await this.#learnLeaseTtl(lease, signal);
      const ttlMs = this.#leaseTtl.get(lease);
      yield ttlMs === undefined ? state : { ...state, leader: { ...state.leader!, ttlMs } };
    }
  }

  /**
   * A key this lock may have left on the lease with no live term for it: a create whose answer was
   * lost and whose re-read failed too, a give-back that failed, or a release that failed. Left alone it lives as long as the
   * lease — for ever while other locks of the session keep the lease alive — and every candidate, this
   * one included, sees it held (found by bench/scale.ts: 70 of 1,000 keys stuck). Re-read until
   * decided; still ours and no live term of ours holds it → delete it, so the next acquire starts afresh.
   */
  #resolveOrphan(holder: string, lease: wire.LeaseId): void {
    if (this.#orphanCheck) return;
    // Ours to delete: no live term holds it and no release of it is in flight.
    const untracked = (token: bigint): boolean => ![...this.#held.keys()].some((t) => t.token === token && !t.ended) && ![...this.#releasing].some((t) => t.token === token);
    this.#orphanCheck = (async () => {
      for (let attempt = 0; attempt < 100 && !this.#closed && this.session.leaseId === lease; attempt++) {
        try {
          const stored = wire.storedLeader((await this.#read()).leader);
          if (!stored || stored.lease !== lease || stored.holder !== holder || !untracked(stored.token)) return;
          await this.#txn('etcd release (orphan)', wire.releaseTxn(this.#keys, stored.token), undefined);
          for (const t of [...this.#held.keys()]) if (t.token === stored.token) this.#unhold(t);
          log('deleted %s (token %s) of %s: left by an undecided acquire or a failed release', this.key, stored.token, holder);
          return;
        } catch {
          await this.clock.sleep(this.requestTimeoutMs);
        }
      }
    })().finally(() => (this.#orphanCheck = undefined));
  }

  /** Releases held terms (best effort), then detaches from the session (closes it when it is ours). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#held.keys()].map((t) => this.release(t)));
    for (const t of [...this.#held.keys()]) {
      t.end('stopped');
      // On a shared session the lease outlives this lock: a key whose release failed is left to its
      // background retry, which ends when the key or the lease is gone.
      if (this.#ownSession || !this.#retrying.has(t)) this.#unhold(t);
    }
    if (this.#ownSession) await this.session.close();
    else await this.session.detach();
  }

  /**
   * Applies `ops` in one etcd txn only while `term` still owns the key (`create_revision == token`);
   * refuses without sending when `term.isValid()` is false. Retried on another member when a call
   * fails, so make the ops idempotent (puts are). Throws `BackendUnavailableError` when undecided.
   */
  async fencedWrite(term: Term, ops: readonly FencedOp[], options: { signal?: AbortSignal } = {}): Promise<FenceResult> {
    if (!term.isValid()) return { ok: false, refusedBy: 'term' };
    return this.session.call('etcd fenced write', (rpc, o) => fencedWrite(rpc.kv, this.key, term, ops, o), options);
  }

  /** @internal The lease a term's key rides on (fence helper, tests). */
  leaseOf(term: Term): wire.LeaseId | undefined {
    return this.#held.get(term);
  }

  async #read(signal?: AbortSignal): Promise<{ leader?: IKeyValue; successor?: IKeyValue; meta?: IKeyValue; revision: bigint }> {
    const res = await this.session.txns.txn('etcd read', wire.readTxn(this.#keys), { group: 'read', signal });
    const [leader, successor, meta] = wire.rangeResults(res);
    return { leader, successor, meta, revision: wire.revisionOf(res) };
  }

  #txn(what: string, req: ITxnRequest, signal: AbortSignal | undefined): Promise<ITxnResponse> {
    return this.session.call(what, (rpc, o) => rpc.kv.txn(req, o), { signal });
  }

  #toState(leader: IKeyValue | undefined, successor: IKeyValue | undefined, meta?: IKeyValue): LockState {
    const stored = wire.storedLeader(leader);
    if (stored?.foreign) this.#warnForeign(stored);
    if (successor && wire.isForeignSuccessor(successor)) this.#warnForeignSuccessor(successor);
    let unknown: wire.LeaseId | undefined;
    const state = wire.toLockState(leader, successor, (lease) => {
      // The session's own lease (every lock of a process on it): its granted TTL is known, no need to ask.
      const known = this.#leaseTtl.get(lease) ?? (lease === this.session.leaseId ? this.session.grantedTtlMs : undefined);
      if (known === undefined) unknown = lease;
      return known ?? this.ttlMs;
    }, meta);
    if (state.leader && unknown !== undefined) this.#unknownLease.set(state.leader, unknown);
    return state;
  }

  async #learnLeaseTtl(lease: wire.LeaseId, signal?: AbortSignal): Promise<void> {
    try {
      const res = await this.session.call('etcd lease ttl', (rpc, o) => rpc.leaseClient.leaseTimeToLive({ ID: lease }, o), { signal });
      const granted = Number(res.grantedTTL);
      if (granted > 0) {
        if (this.#leaseTtl.size > 64) this.#leaseTtl.clear();
        this.#leaseTtl.set(lease, granted * 1000);
      }
    } catch {
      // informational only; fall back to our own ttl
    }
  }

  #warnForeign(leader: wire.StoredLeader): void {
    if (this.#warnedForeign === leader.token) return;
    this.#warnedForeign = leader.token;
    this.emit(
      'warning',
      new LeaderLockError(`etcd key ${this.key} is held by ${quoteValue(leader.holder)} without a lease (written by etcdctl or another tool?): treated as held, never taken over; delete it to free the lock`, {
        backend: 'etcd',
      }),
    );
  }

  #warnForeignSuccessor(kv: IKeyValue): void {
    const rev = BigInt(kv.create_revision);
    if (this.#warnedForeignSuccessor === rev) return;
    this.#warnedForeignSuccessor = rev;
    this.emit(
      'warning',
      new LeaderLockError(
        `etcd key ${this.#keys.successor} nominates ${JSON.stringify(kv.value.toString('utf8').slice(0, 200))} without a lease (written by etcdctl or another tool?): a nomination must expire, so it is ignored; delete it`,
        { backend: 'etcd' },
      ),
    );
  }

  #hold(term: Term, lease: wire.LeaseId): void {
    this.#held.set(term, lease);
    this.session.retain();
  }

  #unhold(term: Term): void {
    if (this.#held.delete(term)) this.session.unretain();
  }

  /** etcd said the key is not ours: end the term and stop tracking it. */
  #lost(term: Term, reason: LostReason): LockLostError {
    this.#unhold(term);
    return this.#lostError(term, reason);
  }

  #lostError(term: Term, reason: LostReason): LockLostError {
    term.end(reason);
    return new LockLostError(`etcd key ${this.key} is no longer held by term ${term.token} of ${JSON.stringify(term.holder)}: ${term.endReason ?? reason}`, {
      backend: 'etcd',
      reason: term.endReason ?? reason,
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new LeaderLockError(`etcd lock ${this.key} is closed`, { backend: 'etcd' });
  }
}
