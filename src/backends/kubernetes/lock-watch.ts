import type { Clock, Timer } from '../../core/clock.js';
import { ForbiddenError, LeaderLockError } from '../../core/errors.js';
import type { LockState } from '../../core/lock.js';
import { logger } from '../../core/log.js';
import type { StateFeed } from '../../core/watch.js';
import type { KubeObject } from './kinds.js';
import type { KubeLockApi } from './lock-api.js';

const log = logger('k8s:watch');

/** What the watch loop needs from the lock. */
export interface WatchContext {
  api: KubeLockApi;
  clock: Clock;
  collectionPath: string;
  name: string;
  idleTimeoutMs: number;
  /** One GET of the object (undefined on 404). */
  read(signal: AbortSignal): Promise<KubeObject | undefined>;
  /** The observer's judgement of an object now, and when that judgement changes by itself (expiry). Throws `MalformedRecordError`. */
  judge(obj: KubeObject | undefined): { state: LockState; changesAt: number | undefined };
  warn(err: unknown): void;
  /** Every object the watch (or its re-list) delivers, before it is judged. */
  seen?(obj: KubeObject | undefined): void;
}

function resourceVersionOf(obj: unknown): string | undefined {
  const rv = (obj as { metadata?: { resourceVersion?: unknown } } | undefined)?.metadata?.resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

function isGone(err: unknown): boolean {
  return err instanceof LeaderLockError && err.status === 410;
}

/**
 * A real watch stream on the one object (`fieldSelector=metadata.name=…`, bookmarks on). Resumes from
 * the last resourceVersion when the stream ends (server timeout, idle timeout on a half-open
 * connection), re-lists on 410 Gone. Kubernetes sends no event when a lease expires, so after every
 * state a Clock timer re-judges the last object at the moment its record (or a nomination) expires.
 * Ends when `signal` aborts; a `ForbiddenError` ends the feed with that error (retrying cannot help).
 */
export async function runWatch(ctx: WatchContext, feed: StateFeed, signal: AbortSignal): Promise<void> {
  let rv: string | undefined;
  let last: KubeObject | undefined;
  let expiry: Timer | undefined;
  let failures = 0;
  const publish = (): void => {
    expiry?.cancel();
    expiry = undefined;
    if (signal.aborted) return;
    let judged: ReturnType<WatchContext['judge']>;
    try {
      judged = ctx.judge(last);
    } catch (err) {
      ctx.warn(err); // malformed record: reported; the feed keeps the last good state
      return;
    }
    feed.push(judged.state);
    if (judged.changesAt !== undefined) expiry = ctx.clock.setTimer(publish, judged.changesAt - ctx.clock.now(), { unref: true });
  };
  // The server closes a healthy stream after timeoutSeconds; our idle timeout catches a silent one.
  const timeoutSeconds = Math.max(1, Math.floor(ctx.idleTimeoutMs / 2000));
  try {
    while (!signal.aborted) {
      try {
        if (rv === undefined) {
          last = await ctx.read(signal);
          ctx.seen?.(last);
          rv = resourceVersionOf(last);
          publish();
        }
        const query: Record<string, string | number | boolean | undefined> = {
          fieldSelector: `metadata.name=${ctx.name}`,
          allowWatchBookmarks: true,
          timeoutSeconds,
          resourceVersion: rv,
        };
        let events = 0;
        for await (const ev of ctx.api.watch({ path: ctx.collectionPath, query, signal, idleTimeoutMs: ctx.idleTimeoutMs })) {
          events++;
          failures = 0;
          if (ev.type === 'ERROR') {
            const status = ev.object as { code?: number; reason?: string; message?: string };
            if (status?.code === 410) {
              log('watch %s: 410 Gone, re-listing', ctx.name);
              rv = undefined;
              break;
            }
            throw new LeaderLockError(`watch of ${ctx.name} failed: ${status?.message ?? 'ERROR event'}`, { backend: 'kubernetes', status: status?.code, reason: status?.reason });
          }
          rv = resourceVersionOf(ev.object) ?? rv;
          if (ev.type === 'BOOKMARK') continue;
          const obj = ev.object as KubeObject;
          if (obj?.metadata?.name !== undefined && obj.metadata.name !== ctx.name) continue;
          last = ev.type === 'DELETED' ? undefined : obj;
          ctx.seen?.(last);
          publish();
        }
        // A stream that closes without a single event (a proxy cutting it at once) must not spin.
        if (events === 0 && rv !== undefined) await ctx.clock.sleep(100, signal).catch(() => undefined);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ForbiddenError) {
          feed.end(err);
          return;
        }
        if (isGone(err)) {
          rv = undefined;
          continue;
        }
        failures++;
        // One broken stream is routine (an API node restarting, a proxy cutting it): it resumes on the
        // next node, so only a failure that repeats is a warning (as the etcd watch does).
        if (failures >= 3) ctx.warn(err);
        else log('watch %s failed (%d): %s', ctx.name, failures, err instanceof Error ? err.message : String(err));
        // Back off on the lock's clock: 100 ms doubling to 2 s, then resume (re-list after repeated failures).
        if (failures >= 3) rv = undefined;
        await ctx.clock.sleep(Math.min(2000, 100 * 2 ** Math.min(failures - 1, 5)), signal).catch(() => undefined);
      }
    }
  } finally {
    expiry?.cancel();
    feed.end();
  }
}
