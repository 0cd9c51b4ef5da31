import pRetry from 'p-retry';
import { AbortedError, BackendUnavailableError, DeadlineExceededError, LeaderLockError, type Backend } from './errors.js';

/**
 * Retries for requests to real servers. This is the one place besides `clock.ts` that uses real
 * time (p-retry sleeps on real timers; `AbortSignal.timeout` is real): real servers run in real time.
 */

export interface RetryOptions {
  /** What is being done, for the error message ("etcd renew"). */
  what: string;
  backend?: Backend;
  /** Overall deadline across every attempt, ms. Each attempt's signal aborts when it passes. */
  deadlineMs: number;
  /** The caller's cancellation. */
  signal?: AbortSignal | undefined;
  /** Max retries after the first attempt. Default 5. */
  retries?: number;
  /** First backoff, ms. Default 25. */
  minDelayMs?: number;
  /** Longest backoff, ms. Default 1000. */
  maxDelayMs?: number;
  /** Which failures are worth another attempt. Default: `BackendUnavailableError` (not its deadline subclass). */
  retryable?: (err: unknown) => boolean;
}

const defaultRetryable = (err: unknown): boolean => err instanceof BackendUnavailableError;

/**
 * Runs `attempt` until it succeeds, a non-retryable error is thrown, or the deadline passes
 * (`DeadlineExceededError` with the last failure as `cause`). Aborting `signal` rejects with `AbortedError`.
 */
export async function withRetry<T>(attempt: (signal: AbortSignal, attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = AbortSignal.timeout(Math.max(1, options.deadlineMs));
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const retryable = options.retryable ?? defaultRetryable;
  let last: unknown;
  try {
    return await pRetry(
      async (n) => {
        try {
          return await attempt(signal, n);
        } catch (err) {
          last = err;
          throw err;
        }
      },
      {
        retries: options.retries ?? 5,
        minTimeout: options.minDelayMs ?? 25,
        maxTimeout: options.maxDelayMs ?? 1000,
        factor: 2,
        randomize: true,
        maxRetryTime: options.deadlineMs,
        signal,
        shouldRetry: ({ error }) => !signal.aborted && retryable(error),
      },
    );
  } catch (err) {
    if (options.signal?.aborted) {
      throw new AbortedError(`${options.what} aborted`, { backend: options.backend, cause: options.signal.reason });
    }
    if (deadline.aborted) {
      if (last instanceof DeadlineExceededError) throw last;
      throw new DeadlineExceededError(`${options.what} did not complete within ${options.deadlineMs} ms`, {
        backend: options.backend,
        cause: last ?? err,
      });
    }
    if (err instanceof LeaderLockError) throw err;
    throw new BackendUnavailableError(`${options.what} failed: ${errorText(err)}`, { backend: options.backend, cause: err });
  }
}

/** A short description of any thrown value, for messages. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
