import createDebug from 'debug';

/** A `debug` logger under `leaderlock:<name>`. Library code logs only through these; it never prints. */
export function logger(name: string): createDebug.Debugger {
  return createDebug(`leaderlock:${name}`);
}
