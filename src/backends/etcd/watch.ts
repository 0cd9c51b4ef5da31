import type { IKeyValue, IWatchRequest, IWatchResponse, IDuplexStream, WatchClient } from 'etcd3';
import { untilAborted } from '../../core/abort.js';
import { systemClock, type Timer } from '../../core/clock.js';
import { DeadlineExceededError } from '../../core/errors.js';
import type { LockState } from '../../core/lock.js';
import { StateFeed } from '../../core/watch.js';
import { logger } from '../../core/log.js';
import { mapEtcdError } from './errors.js';
import { closeStream, type Member } from './members.js';
import type { EtcdSession } from './session.js';
import type { LockKeys } from './wire.js';

const log = logger('etcd:watch');

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;
type WatchCallOptions = NonNullable<Parameters<WatchClient['watch']>[0]>;
type Outcome = 'broken' | 'compacted' | 'aborted' | 'stuck';

/**
 * gRPC call options that add etcd's "require leader" metadata (`hasleader: true`) to the watch: a
 * member cut off from the raft leader then cancels the stream ("no leader") instead of keeping it
 * open and silent, and we move to another member. Added by a call interceptor, because etcd3 builds
 * the call's metadata itself. (A frozen member answers nothing at all; the progress probe in
 * streamEvents covers that.)
 */
type Interceptor = NonNullable<WatchCallOptions['interceptors']>[number];
const addRequireLeader = ((options: Parameters<Interceptor>[0], nextCall: Parameters<Interceptor>[1]) => {
  const call = nextCall(options);
  const start = call.start.bind(call);
  call.start = (metadata, listener) => {
    metadata.set('hasleader', 'true');
    start(metadata, listener);
  };
  return call;
  // grpc-js types the result as its InterceptingCall class; nextCall's object is what it runs anyway.
}) as unknown as Interceptor;
const requireLeader: WatchCallOptions = { interceptors: [addRequireLeader] };

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
 * One watcher covers [leader key, successor key] and ignores the keys in between.
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
      const outcome = await streamEvents(member, keys, fresh ? undefined : revision! + 1n, streamSignal, idleMs, onCreated, (res) => {
        if (!res.created && (res.events?.length ?? 0) === 0) return; // a progress response: the member is alive
        failures = 0;
        if (buffered) buffered.push(res);
        else apply(res);
      });
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

/**
 * Runs one watch stream on `member` until it breaks ('broken'), reports a compaction ('compacted'),
 * goes silent ('stuck': nothing for `idleMs`, then a progress request unanswered for another
 * `idleMs`), or the signal aborts ('aborted'). Events are handed to `onResponse` in order.
 */
async function streamEvents(
  member: Member,
  keys: LockKeys,
  startRevision: bigint | undefined,
  signal: AbortSignal,
  idleMs: number,
  onCreated: () => void,
  onResponse: (res: IWatchResponse) => void,
): Promise<Outcome> {
  // Opening may hang too (a hung member during an auth round trip): same bound as a silent stream.
  let openTimer: Timer | undefined;
  const openTimeout = new AbortController();
  let stream: WatchStream;
  try {
    openTimer = systemClock.setTimer(() => openTimeout.abort(), 2 * idleMs, { unref: true });
    stream = await untilAborted(member.rpc.watchClient.watch(requireLeader), AbortSignal.any([signal, openTimeout.signal]), () =>
      openTimeout.signal.aborted ? new DeadlineExceededError(`etcd watch: no stream from ${member.name} within ${2 * idleMs} ms`, { backend: 'etcd' }) : signal.reason,
    );
  } catch (err) {
    if (signal.aborted) return 'aborted';
    if (openTimeout.signal.aborted) return 'stuck';
    throw err;
  } finally {
    openTimer?.cancel();
  }
  return new Promise((resolve) => {
    let done = false;
    let heard = true; // since the last probe tick
    let probing = false;
    let probe: Timer | undefined;
    const finish = (outcome: Outcome): void => {
      if (done) return;
      done = true;
      probe?.cancel();
      signal.removeEventListener('abort', onAbort);
      closeStream(stream);
      resolve(outcome);
    };
    // Every idleMs: anything heard → fine; silence → send a progress request; silence after it → stuck.
    const tick = (): void => {
      if (done) return;
      if (heard) {
        heard = false;
        probing = false;
      } else if (!probing) {
        probing = true;
        try {
          stream.write({ progress_request: {} });
        } catch {
          return finish('broken');
        }
      } else {
        return finish('stuck');
      }
      probe = systemClock.setTimer(tick, idleMs, { unref: true });
    };
    const onAbort = (): void => finish('aborted');
    if (signal.aborted) return finish('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('data', (res) => {
      if (done) return;
      heard = true;
      if (res.compact_revision && res.compact_revision !== '0') return finish('compacted');
      if (res.canceled) return finish('broken');
      if (res.created) onCreated();
      onResponse(res);
    });
    stream.on('error', () => finish(signal.aborted ? 'aborted' : 'broken'));
    stream.on('end', () => finish(signal.aborted ? 'aborted' : 'broken'));
    // Range [leader, successor] inclusive: successor + '\0' is the smallest key after it.
    stream.write({
      create_request: {
        key: Buffer.from(keys.leader, 'utf8'),
        range_end: Buffer.concat([Buffer.from(keys.successor, 'utf8'), Buffer.from([0])]),
        ...(startRevision === undefined ? {} : { start_revision: startRevision.toString() }),
      },
    });
    heard = false; // the created response must come within the first probe period too
    probe = systemClock.setTimer(tick, idleMs, { unref: true });
  });
}
