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
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
