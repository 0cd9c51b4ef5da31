import type { IWatchRequest, IWatchResponse, IDuplexStream, WatchClient } from 'etcd3';
import { untilAborted } from '../../core/abort.js';
import { flushMicrotasks, systemClock, type Timer } from '../../core/clock.js';
import { DeadlineExceededError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { closeStream, type Member } from './members.js';

const log = logger('etcd:watch');

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;
type WatchCallOptions = NonNullable<Parameters<WatchClient['watch']>[0]>;

/** How one lock's watcher ended: its stream broke or went silent, its start revision was compacted, or its signal aborted. */
export type WatchOutcome = 'broken' | 'compacted' | 'aborted' | 'stuck';

/**
 * gRPC call options that add etcd's "require leader" metadata (`hasleader: true`) to the watch: a
 * member cut off from the raft leader then cancels the stream ("no leader") instead of keeping it
 * open and silent, and we move to another member. Added by a call interceptor, because etcd3 builds
 * the call's metadata itself. (A frozen member answers nothing at all; the progress probe covers that.)
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

/**
 * Watchers per stream: one stream carries its create requests and their answers one after another,
 * so 10,000 locks starting at once get created faster on several streams (and one probe each).
 */
const WATCHERS_PER_STREAM = 1000;

/** One lock's watcher: the key range, where to start, and where its responses go. */
export interface WatchSpec {
  key: Buffer;
  /** Exclusive end of the range. */
  rangeEnd: Buffer;
  /** Inclusive start revision; undefined: from now. */
  startRevision: bigint | undefined;
  /** The watcher exists on the server (its `created` response arrived). */
  onCreated(): void;
  /** Every response of this watcher, in order (the `created` one included). */
  onResponse(res: IWatchResponse): void;
}

interface Sub {
  spec: WatchSpec;
  signal: AbortSignal;
  /** The server's watch ID, once created. */
  id: string | undefined;
  /** Aborted before its `created` response arrived: cancel it on the server when it does. */
  cancelled: boolean;
  done: boolean;
  settle(outcome: WatchOutcome | { error: unknown }): void;
}

/**
 * One watch stream per etcd member for every lock of a session, each lock's range a watcher of its
 * own on it (as etcd's Go client multiplexes its watchers). Thousands of locks cost one gRPC
 * stream, not thousands, and one liveness probe: after `idleMs` without any message on the stream a
 * progress request goes out (etcd answers it at once, with watch ID -1); no message for another
 * `idleMs` marks the stream stuck, and every watcher on it ends 'stuck'. A stream that breaks ends
 * every watcher 'broken'; each lock's watch loop then resumes from its own last revision (see
 * watch.ts). A watcher's compaction or cancellation ends only that watcher.
 *
 * Watchers are matched to their `created` responses in request order: etcd handles the requests of
 * one stream in order and sends the `created` responses in that order, before any event of the new
 * watcher (etcd3's own watch manager relies on the same).
 */
export class WatchHub {
  readonly #idleMs: number;
  readonly #maxPerStream: number;
  readonly #streams = new Map<Member, SharedStream[]>();
  #closed = false;

  constructor(idleMs: number, options: { maxPerStream?: number } = {}) {
    this.#idleMs = idleMs;
    this.#maxPerStream = options.maxPerStream ?? WATCHERS_PER_STREAM;
  }

  /** Streams open right now (tests, the scale bench). */
  get streams(): number {
    let n = 0;
    for (const list of this.#streams.values()) n += list.length;
    return n;
  }

  /**
   * Runs one watcher on a shared stream of `member` until it ends. Rejects when the stream could not
   * be opened for a reason other than silence.
   */
  watch(member: Member, spec: WatchSpec, signal: AbortSignal): Promise<WatchOutcome> {
    return new Promise<WatchOutcome>((resolve, reject) => {
      if (signal.aborted || this.#closed) return resolve('aborted');
      const list = this.#streams.get(member) ?? [];
      let stream = list.find((s) => !s.finished && s.live < this.#maxPerStream);
      if (!stream) {
        stream = new SharedStream(member, this.#idleMs, (s) => {
          const l = this.#streams.get(member);
          const i = l?.indexOf(s) ?? -1;
          if (i >= 0) l!.splice(i, 1);
          if (l?.length === 0) this.#streams.delete(member);
        });
        list.push(stream);
        this.#streams.set(member, list);
      }
      stream.add(spec, signal, (outcome) => (typeof outcome === 'string' ? resolve(outcome) : reject(outcome.error)));
    });
  }

  /** Ends every watcher ('aborted') and closes the streams (the session is closing). */
  close(): void {
    this.#closed = true;
    for (const list of [...this.#streams.values()]) for (const s of [...list]) s.finish('aborted');
  }
}

class SharedStream {
  readonly #member: Member;
  readonly #idleMs: number;
  readonly #onFinished: (s: SharedStream) => void;
  #stream: WatchStream | undefined;
  /** Added before the stream was open: their create requests go out once it is. */
  readonly #waiting: Sub[] = [];
  /** Create requests sent, `created` responses not yet received, in request order. */
  readonly #pending: Sub[] = [];
  readonly #byId = new Map<string, Sub>();
  #live = 0;
  #finished = false;
  #heard = false;
  #probing = false;
  #probe: Timer | undefined;

  constructor(member: Member, idleMs: number, onFinished: (s: SharedStream) => void) {
    this.#member = member;
    this.#idleMs = idleMs;
    this.#onFinished = onFinished;
    void this.#open();
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** Watchers on this stream not ended yet. */
  get live(): number {
    return this.#live;
  }

  add(spec: WatchSpec, signal: AbortSignal, settle: Sub['settle']): void {
    const sub: Sub = { spec, signal, id: undefined, cancelled: false, done: false, settle: () => undefined };
    const onAbort = (): void => this.#abort(sub);
    sub.settle = (outcome) => {
      if (sub.done) return;
      sub.done = true;
      this.#live--;
      signal.removeEventListener('abort', onAbort);
      settle(outcome);
    };
    this.#live++;
    signal.addEventListener('abort', onAbort, { once: true });
    if (this.#stream) this.#create(sub);
    else this.#waiting.push(sub);
  }

  async #open(): Promise<void> {
    // Opening may hang too (a hung member during an auth round trip): same bound as a silent stream.
    const openTimeout = new AbortController();
    const timer = systemClock.setTimer(() => openTimeout.abort(), 2 * this.#idleMs, { unref: true });
    let stream: WatchStream;
    try {
      stream = await untilAborted(this.#member.rpc.watchClient.watch(requireLeader), openTimeout.signal, () => new DeadlineExceededError(`etcd watch: no stream from ${this.#member.name} within ${2 * this.#idleMs} ms`, { backend: 'etcd' }));
    } catch (err) {
      if (openTimeout.signal.aborted) this.finish('stuck');
      else this.finish({ error: err });
      return;
    } finally {
      timer.cancel();
    }
    if (this.#finished || this.#live === 0) {
      closeStream(stream);
      this.finish('aborted');
      return;
    }
    this.#stream = stream;
    log('watch stream on %s open: %d watchers', this.#member.name, this.#waiting.length);
    stream.on('data', (res) => this.#onData(res));
    stream.on('error', () => this.finish('broken'));
    stream.on('end', () => this.finish('broken'));
    for (const sub of this.#waiting.splice(0)) if (!sub.done) this.#create(sub);
    // The first `created` response must come within the first probe period too.
    this.#heard = false;
    this.#arm();
  }

  #create(sub: Sub): void {
    const { key, rangeEnd, startRevision } = sub.spec;
    this.#pending.push(sub);
    this.#write({ create_request: { key, range_end: rangeEnd, ...(startRevision === undefined ? {} : { start_revision: startRevision.toString() }) } });
  }

  #write(req: IWatchRequest): void {
    try {
      this.#stream!.write(req);
    } catch {
      this.finish('broken');
    }
  }

  #onData(res: IWatchResponse): void {
    if (this.#finished) return;
    this.#heard = true;
    const id = String(res.watch_id);
    if (res.created) {
      const sub = this.#pending.shift();
      if (!sub) return;
      if (sub.cancelled || sub.done) {
        if (!res.canceled) this.#write({ cancel_request: { watch_id: id } });
        return;
      }
      if (res.canceled) {
        sub.settle(compacted(res) ? 'compacted' : 'broken');
        return this.#closeIfUnused();
      }
      sub.id = id;
      this.#byId.set(id, sub);
      sub.spec.onCreated();
      sub.spec.onResponse(res);
      return;
    }
    // A progress response (watch ID -1, for the whole stream) or a watcher already gone.
    const sub = this.#byId.get(id);
    if (!sub) return;
    if (compacted(res)) return this.#end(sub, 'compacted');
    if (res.canceled) return this.#end(sub, 'broken');
    sub.spec.onResponse(res);
  }

  /** One watcher ended by the server (compacted, cancelled): the others go on. */
  #end(sub: Sub, outcome: WatchOutcome): void {
    this.#byId.delete(sub.id!);
    sub.settle(outcome);
    this.#closeIfUnused();
  }

  #abort(sub: Sub): void {
    if (sub.done) return;
    if (sub.id !== undefined) {
      this.#byId.delete(sub.id);
      this.#write({ cancel_request: { watch_id: sub.id } });
    } else {
      sub.cancelled = true; // cancelled on the server when its `created` response arrives
    }
    sub.settle('aborted');
    this.#closeIfUnused();
  }

  #closeIfUnused(): void {
    if (this.#live === 0 && this.#stream) this.finish('aborted');
  }

  /** Every idleMs: anything heard → fine; silence → send a progress request; silence after it → stuck. */
  #tick(): void {
    if (this.#finished) return;
    if (this.#heard) {
      this.#heard = false;
      this.#probing = false;
    } else if (!this.#probing) {
      this.#probing = true;
      this.#write({ progress_request: {} });
      if (this.#finished) return;
    } else {
      // Timers run before I/O in each turn of the event loop: when the loop was blocked past the
      // probe period (thousands of locks starting at once), the answer may be on the socket, unread.
      // Read it first — two turns of the loop — and only then call the stream silent.
      void flushMicrotasks()
        .then(flushMicrotasks)
        .then(() => {
          if (this.#finished) return;
          if (!this.#heard) {
            log('watch stream on %s silent for %d ms after a progress request', this.#member.name, this.#idleMs);
            return this.finish('stuck');
          }
          this.#heard = false;
          this.#probing = false;
          this.#arm();
        });
      return;
    }
    this.#arm();
  }

  #arm(): void {
    this.#probe = systemClock.setTimer(() => this.#tick(), this.#idleMs, { unref: true });
  }

  /** Closes the stream; every watcher still on it ends with `outcome`. */
  finish(outcome: WatchOutcome | { error: unknown }): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#probe?.cancel();
    if (this.#stream) closeStream(this.#stream);
    this.#onFinished(this);
    const subs = [...this.#waiting.splice(0), ...this.#pending.splice(0), ...this.#byId.values()];
    this.#byId.clear();
    for (const sub of subs) sub.settle(sub.signal.aborted ? 'aborted' : outcome);
  }
}

function compacted(res: IWatchResponse): boolean {
  return !!res.compact_revision && res.compact_revision !== '0';
}
