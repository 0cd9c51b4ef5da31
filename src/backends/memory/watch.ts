import type { LockState } from '../../core/lock.js';
import { StateFeed } from '../../core/watch.js';
import type { Network } from './network.js';
import type { MemoryStore } from './store.js';

/**
 * `MemoryLock.watch`: the store's change notifications, carried to the client over its own ordered
 * channel (latency applies, a partition loses them, a heal re-sends the latest state), fed through a
 * `StateFeed`. `open` is the lock's registry of live watches (close() ends them). Cleanup is exact:
 * the store subscription, heal listener, pending deliveries and abort listener all go when the
 * signal aborts, the consumer stops iterating, or the lock closes.
 */
export function watchKey(store: MemoryStore, key: string, net: Network, signal: AbortSignal, open: Set<() => void>): AsyncIterable<LockState> {
  const feed = new StateFeed(signal);
  if (signal.aborted) return feed;
  const channel = net.channel();
  const deliver = (state: LockState): void => channel.send(() => feed.push(state));
  const unsubscribe = store.subscribe(key, deliver);
  const offHeal = net.onHeal(() => deliver(store.peek(key)));
  const cleanup = (): void => {
    signal.removeEventListener('abort', cleanup);
    open.delete(cleanup);
    unsubscribe();
    offHeal();
    channel.close();
    feed.end();
  };
  signal.addEventListener('abort', cleanup, { once: true });
  open.add(cleanup);
  deliver(store.peek(key)); // the current state first
  return {
    [Symbol.asyncIterator]: (): AsyncIterator<LockState> => {
      const it = feed[Symbol.asyncIterator]();
      return {
        next: async () => {
          try {
            const r = await it.next();
            if (r.done) cleanup();
            return r;
          } catch (err) {
            cleanup();
            throw err;
          }
        },
        return: async () => {
          cleanup();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
