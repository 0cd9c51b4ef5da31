import type { IKeyValue, IWatchRequest, IWatchResponse, IDuplexStream } from 'etcd3';
import type { LockState } from '../../core/lock.js';
import { StateFeed } from '../../core/watch.js';
import { logger } from '../../core/log.js';
import { mapEtcdError } from './errors.js';
import { closeStream } from './members.js';
import type { EtcdSession } from './session.js';
import type { LockKeys } from './wire.js';

const log = logger('etcd:watch');

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

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

  while (!signal.aborted && !session.closed) {
    const member = session.members.current;
    const local = new AbortController();
    const streamSignal = AbortSignal.any([signal, local.signal]);
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
      const outcome = await streamEvents(member.rpc.watchClient.watch.bind(member.rpc.watchClient), keys, fresh ? undefined : revision! + 1n, streamSignal, onCreated, (res) => {
        failures = 0;
        if (buffered) buffered.push(res);
        else apply(res);
      });
      if (readError !== undefined) throw readError;
      if (outcome === 'compacted') {
        log('watch start revision compacted; re-reading');
        revision = undefined;
      } else if (outcome === 'broken') {
        session.members.failed(member, 'watch stream broke');
        if (buffered) revision = undefined; // broke before the read landed: start over
        failures++;
      }
    } catch (err) {
      if (signal.aborted || session.closed) break;
      const mapped = mapEtcdError(err, 'etcd watch');
      log('watch failed: %s', mapped.message);
      if (failures > 2) deps.warn(mapped);
      failures++;
    } finally {
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
 * Runs one watch stream until it breaks ('broken'), reports a compaction ('compacted'), or the
 * signal aborts ('aborted'). Events are handed to `onResponse` in order.
 */
async function streamEvents(
  open: () => Promise<WatchStream>,
  keys: LockKeys,
  startRevision: bigint | undefined,
  signal: AbortSignal,
  onCreated: () => void,
  onResponse: (res: IWatchResponse) => void,
): Promise<'broken' | 'compacted' | 'aborted'> {
  const stream = await open();
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: 'broken' | 'compacted' | 'aborted'): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      closeStream(stream);
      resolve(outcome);
    };
    const onAbort = (): void => finish('aborted');
    if (signal.aborted) return finish('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('data', (res) => {
      if (done) return;
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
  });
}
