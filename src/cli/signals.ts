/** Which OS signals `leaderlock run` handles, and how a signal becomes an exit code. */
import { constants } from 'node:os';

/** Where OS signals come from (`process` by default). */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** Signals that mean "shut down": forwarded to the command's group, then we release and exit with its code. */
export const SHUTDOWN: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGQUIT'];
/** Signals only passed on to the command (reload config, rotate logs, resize). */
export const FORWARD_ONLY: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** 128 + signal number, as shells report a command killed by a signal. */
export function signalExitCode(signal: NodeJS.Signals | string): number {
  const n = (constants.signals as Record<string, number | undefined>)[signal];
  return 128 + (n ?? 0);
}

/** Subscribes `handler` to every shutdown and forward-only signal; returns the unsubscribe function. */
export function onSignals(source: SignalSource, handler: (sig: NodeJS.Signals) => void): () => void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...SHUTDOWN, ...FORWARD_ONLY]) {
    if (process.platform === 'win32' && FORWARD_ONLY.includes(sig)) continue;
    const h = (): void => handler(sig);
    handlers.set(sig, h);
    source.on(sig, h);
  }
  return () => {
    for (const [sig, h] of handlers) source.off(sig, h);
  };
}
