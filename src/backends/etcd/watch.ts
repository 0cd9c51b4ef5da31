import type { IKeyValue, IWatchResponse } from 'etcd3';
import type { LockState } from '../../core/lock.js';
import { StateFeed } from '../../core/watch.js';
import { logger } from '../../core/log.js';
import { mapEtcdError } from './errors.js';
import type { EtcdSession } from './session.js';
import type { LockKeys } from './wire.js';

const log = logger('etcd:watch');


export interface WatchDeps {
  session: EtcdSession;
  keys: LockKeys;
  /** One consistent read of both keys: their values and the header revision of the read. */
  read(signal: AbortSignal): Promise<{ leader?: IKeyValue; successor?: IKeyValue; meta?: IKeyValue; revision: bigint }>;
  toState(leader: IKeyValue | undefined, successor: IKeyValue | undefined, meta: IKeyValue | undefined): LockState;
  warn(err: Error): void;
}

/**
 * Watch on etcd: create the watcher, then read both keys; events at or below the read's header
 * revision are already in the read and skipped, later ones applied (equivalent to watching from the
 * read revision + 1, without etcd's catch-up delay). A broken stream resumes from the last seen
 * revision + 1 (etcd's start is inclusive) on the next member; a compacted start revision means
 * events were lost, so we start over with a read.
 * One watcher covers [leader key, successor key] and ignores the keys in between. The watchers of all
 * locks on a session share one stream per member (see watch-hub.ts), and with it the probe below.
 *
 * A stream on a member that hangs (SIGSTOPped, its disk or network stuck) neither breaks nor
 * delivers: the TCP connection stays up and the watch would show the old state for as long as the
 * member hangs. So the stream is probed: after `idleMs` (the session's request timeout) without a
 * message, a progress request goes out, which etcd answers at once with an empty response; no
 * message for another `idleMs` marks the member failed (the session's other calls move too) and
 * the watch resumes on the next member. The stream also follows the session: when the session
 * moves to another member (a call failed there), the watch moves with it rather than stay on the
 * member the session just gave up.
 */
export function watchLock(deps: WatchDeps, signal: AbortSignal): StateFeed {
  const feed = new StateFeed(signal);
  void run(deps, feed, signal).catch((err: unknown) => feed.end(err));
  return feed;
}

async function run(deps: WatchDeps, feed: StateFeed, signal: AbortSignal): Promise<void> {
  const { session, keys } = deps;
  let leader: IKeyValue | undefined;
  let successor: IKeyValue | undefined;
  let meta: IKeyValue | undefined; // the leader's metadata key (<key>-meta, inside the watched range)
  let revision: bigint | undefined; // last revision reflected in (leader, successor); undefined: read needed
  let failures = 0;

  const apply = (res: IWatchResponse): void => {
    const events = res.events ?? [];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (BigInt(ev.kv.mod_revision) <= revision!) continue; // already in the read
      const key = ev.kv.key.toString('utf8');
      const kv = ev.type === 'Delete' ? undefined : ev.kv;
      if (key === keys.leader) leader = kv;
      else if (key === keys.successor) successor = kv;
      else if (key === keys.meta) meta = kv;
      // One response may carry several revisions (put, delete, put…): every revision's state is
      // offered, so no change of holder or token is skipped; events of one txn share a revision.
      if (ev.kv.mod_revision !== events[i + 1]?.kv.mod_revision) {
        revision = BigInt(ev.kv.mod_revision);
        feed.push(deps.toState(leader, successor, meta));
      }
    }
  };

  const idleMs = session.requestTimeoutMs;
  while (!signal.aborted && !session.closed) {
    const member = session.members.current;
    const local = new AbortController();
    const streamSignal = AbortSignal.any([signal, local.signal]);
    // Follow the session to another member (restart there, resuming from the last revision).
    let moved = false;
    const onSwitch = (): void => {
      if (session.members.current === member) return;
      moved = true;
      local.abort();
    };
    session.members.on('switch', onSwitch);
    try {
      // A fresh start watches from "now" and reads after the watcher exists: etcd delivers a watcher
      // created at a past revision only on its 100 ms catch-up tick, which would delay a handover.
      // A resumed stream starts at the last seen revision + 1 (inclusive start: nothing missed or repeated).
      const fresh = revision === undefined;
      let buffered: IWatchResponse[] | undefined = fresh ? [] : undefined;
      let readError: unknown;
      const onCreated = (): void => {
        if (!fresh) return;
        deps.read(streamSignal).then(
          (r) => {
            if (streamSignal.aborted) return; // this stream is over; the next one starts afresh
            ({ leader, successor, meta, revision } = r);
            feed.push(deps.toState(leader, successor, meta));
            for (const res of buffered ?? []) apply(res);
            buffered = undefined;
          },
          (err: unknown) => {
            readError = err;
            local.abort();
          },
        );
      };
      const outcome = await session.watchHub.watch(
        member,
        {
          key: Buffer.from(keys.leader, 'utf8'),
          // Range [leader, successor] inclusive: successor + '\0' is the smallest key after it.
          rangeEnd: Buffer.concat([Buffer.from(keys.successor, 'utf8'), Buffer.from([0])]),
          startRevision: fresh ? undefined : revision! + 1n,
          onCreated,
          onResponse: (res) => {
            if (!res.created && (res.events?.length ?? 0) === 0) return; // a progress response: the member is alive
            failures = 0;
            if (buffered) buffered.push(res);
            else apply(res);
          },
        },
        streamSignal,
      );
      if (readError !== undefined && !moved) throw readError;
      if (outcome === 'compacted') {
        log('watch start revision compacted; re-reading');
        revision = undefined;
      } else if (outcome === 'broken' || outcome === 'stuck') {
        const why = outcome === 'stuck' ? `watch stream silent: a progress request got no answer within ${idleMs} ms` : 'watch stream broke';
        log('watch on %s: %s', member.name, why);
        session.members.failed(member, why);
        if (buffered) revision = undefined; // ended before the read landed: start over
        // A stuck member is left at once for another one (if any); a broken stream backs off.
        if (outcome === 'broken' || session.members.size === 1) failures++;
      } else if (moved) {
        log('watch follows the session from %s to %s', member.name, session.members.current.name);
        if (buffered) revision = undefined;
      }
    } catch (err) {
      if (signal.aborted || session.closed) break;
      const mapped = mapEtcdError(err, 'etcd watch');
      log('watch failed: %s', mapped.message);
      if (failures > 2) deps.warn(mapped);
      failures++;
    } finally {
      session.members.off('switch', onSwitch);
      local.abort();
    }
    if (failures > 0 && !signal.aborted) {
      // Bounded backoff before reconnecting; a healthy stream resets it.
      await session.clock.sleep(Math.min(1000, 25 * 2 ** Math.min(failures, 6)), signal).catch(() => undefined);
    }
  }
  feed.end();
}
