/**
 * Settles like `p`, or rejects as soon as `signal` aborts — so a call that ignores its signal cannot
 * wedge the caller. The rejection is `reason()` (default: the signal's own reason). A later rejection
 * of `p` is swallowed, never reported as unhandled. No signal: `p` itself.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, reason: () => unknown = () => signal?.reason): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      p.catch(() => undefined);
      reject(reason());
    };
    const waiting = whenAborted(signal, onAbort);
    p.then(
      (v) => {
        waiting.delete(onAbort);
        resolve(v);
      },
      (err: unknown) => {
        waiting.delete(onAbort);
        reject(err);
      },
    );
  });
}

const callbacks = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Runs `fn` once when `signal` aborts (the caller checks `signal.aborted` first). Returns the set
 * `fn` was added to: `set.delete(fn)` unregisters it. One 'abort' listener per signal fans out to
 * every callback: adding and removing one is a Set operation, not an EventTarget one (a renew loop
 * waits on its term's signal several times per renew; with 1,000 leaders those add/removeEventListener
 * calls were among the top self-time functions of the steady state).
 */
export function whenAborted(signal: AbortSignal, fn: () => void): Set<() => void> {
  let set = callbacks.get(signal);
  if (!set) {
    const fns = new Set<() => void>();
    set = fns;
    callbacks.set(signal, fns);
    signal.addEventListener(
      'abort',
      () => {
        callbacks.delete(signal);
        for (const f of fns) f();
        fns.clear();
      },
      { once: true },
    );
  }
  set.add(fn);
  return set;
}
