import { systemClock, type Clock } from '../core/clock.js';
import { AbortedError, BackendUnavailableError, ConfigError, DeadlineExceededError, ForbiddenError, LeaderLockError, MalformedRecordError, redact } from '../core/errors.js';
import type { LeaderLock } from '../core/lock.js';
import { LeaderElector } from '../elector/index.js';
import { parseExplainArgs, parseReadArgs, parseRunArgs, wantsHelp, type Connection } from './args.js';
import { EXPLAIN_HELP, MAIN_HELP, RUN_HELP, STATUS_HELP, WATCH_HELP } from './help.js';
import { openLock, type OpenedLock } from './open-lock.js';
import { status, watch } from './read-commands.js';
import { supervise, type SignalSource, type SpawnFn } from './supervise.js';
import { EX_NOPERM, EX_OK, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE, UsageError } from './usage-error.js';

export interface CliIo {
  /** stdout, one line at a time. */
  out(line: string): void;
  /** stderr, one line at a time. */
  err(line: string): void;
  env: Readonly<Record<string, string | undefined>>;
  signals?: SignalSource;
  clock?: Clock;
  spawn?: SpawnFn;
  /** Tests: build the lock themselves (e.g. a MemoryLock on a shared store). */
  openLock?: (c: Connection) => Promise<LeaderLock>;
  version?: string;
}

const EX_DATAERR = 65;

/** Runs one command line; resolves the exit code. Never throws, never prints a stack trace for a user error. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(MAIN_HELP.trimEnd());
        return command === undefined ? EX_USAGE : EX_OK;
      case '--version':
      case '-v':
      case 'version':
        io.out(io.version ?? 'unknown');
        return EX_OK;
      case 'run':
        if (wantsHelp(rest)) return help(io, RUN_HELP);
        return await runCommand(rest, io);
      case 'status':
      case 'watch':
        if (wantsHelp(rest)) return help(io, command === 'status' ? STATUS_HELP : WATCH_HELP);
        return await readCommand(command, rest, io);
      case 'explain':
        if (wantsHelp(rest)) return help(io, EXPLAIN_HELP);
        return explain(rest, io);
      default:
        throw new UsageError(`unknown command "${command}": use run, status, watch or explain (leaderlock --help)`);
    }
  } catch (err) {
    return report(err, io);
  }
}

function help(io: CliIo, text: string): number {
  io.out(text.trimEnd());
  return EX_OK;
}

/** One line on stderr and the matching sysexits code. */
export function report(err: unknown, io: Pick<CliIo, 'err' | 'env'>): number {
  const line = (s: string): string => redact(s).replace(/\s*\n\s*/g, '; ');
  if (err instanceof UsageError) {
    io.err(`leaderlock: ${line(err.message)}`);
    return EX_USAGE;
  }
  if (err instanceof ConfigError) {
    io.err(`leaderlock: invalid options: ${line(err.problems.map(asFlags).join('\n'))}`);
    return EX_USAGE;
  }
  if (err instanceof ForbiddenError) {
    io.err(`leaderlock: permission denied: ${line(err.message)}`);
    return EX_NOPERM;
  }
  if (err instanceof BackendUnavailableError || err instanceof DeadlineExceededError) {
    io.err(`leaderlock: backend unavailable: ${line(err.message)}`);
    return EX_UNAVAILABLE;
  }
  if (err instanceof MalformedRecordError) {
    io.err(`leaderlock: ${line(err.message)}`);
    return EX_DATAERR;
  }
  if (err instanceof AbortedError) return 130;
  const debug = /leaderlock/.test(io.env.DEBUG ?? '');
  const msg = err instanceof Error ? err.message : String(err);
  io.err(`leaderlock: ${err instanceof LeaderLockError ? '' : 'internal error: '}${line(msg)}${debug ? '' : ' (DEBUG=leaderlock:* shows details)'}`);
  if (debug && err instanceof Error && err.stack) io.err(err.stack);
  return EX_SOFTWARE;
}

/** Library option names in a ConfigError problem → the flags a command-line user typed. */
const FLAGS: Record<string, string> = {
  ttlMs: '--ttl',
  renewDeadlineMs: '--renew-deadline',
  retryPeriodMs: '--retry-period',
  requestTimeoutMs: '--request-timeout',
};

/** "ttlMs must be at least 1000 ms, got 500" → "--ttl must be at least 1000 ms, got 500 ms". */
export function asFlags(problem: string): string {
  let named = false;
  let out = problem.replace(/\b(ttlMs|renewDeadlineMs|retryPeriodMs|requestTimeoutMs)\b/g, (name: string) => {
    named = true;
    return FLAGS[name]!;
  });
  out = out.replace(/^(identity|metadata)\b/, '--$1');
  if (!named) return out;
  // The library's durations are bare milliseconds: say so (not after "1.2 ×", a factor).
  return out.replace(/(\(|= |got )(\d+(?:\.\d+)?)(?=\)|:|,|;|$)/g, '$1$2 ms');
}

/** Fails fast with exit 69 when the backend cannot be reached at all, before anything else starts. */
/**
 * Start-up check: the backend answers a read within the bound, or `run`/`watch` exit 69 at once rather
 * than campaign blind. A read that timed out is tried again while the bound lasts: on a busy host one
 * slow answer, or one frozen member of several (the next try goes to another member), is no outage.
 * Other errors (refused everywhere, forbidden) are reported at once.
 */
async function probe(lock: LeaderLock, c: Connection, clock: Clock): Promise<void> {
  const boundMs = c.requestTimeoutMs !== undefined ? 2 * c.requestTimeoutMs + 1000 : 15_000;
  const until = clock.now() + boundMs;
  const ac = new AbortController();
  const outOfTime = new DeadlineExceededError(`no answer from the ${lock.backend ?? 'backend'} within ${boundMs} ms`, { backend: 'cli' });
  const timeout = clock.sleep(boundMs, ac.signal).then(() => {
    throw outOfTime;
  });
  try {
    // Bounded by `until` (and the attempt cap, in case a backend fails faster than the clock moves).
    for (let attempt = 1; ; attempt++) {
      try {
        await Promise.race([lock.get(), timeout]);
        return;
      } catch (err) {
        if (err === outOfTime || !(err instanceof DeadlineExceededError) || clock.now() >= until || attempt >= 10) throw err;
      }
    }
  } finally {
    ac.abort();
    timeout.catch(() => undefined);
  }
}

async function closeQuietly(lock: LeaderLock, clock: Clock): Promise<void> {
  const ac = new AbortController();
  // close() releases what it holds; on an unreachable backend do not hang the exit for it.
  await Promise.race([lock.close().catch(() => undefined), clock.sleep(5000, ac.signal).catch(() => undefined)]);
  ac.abort();
}

async function readCommand(command: 'status' | 'watch', argv: readonly string[], io: CliIo): Promise<number> {
  const args = parseReadArgs(command, argv, io.env);
  const clock = io.clock ?? systemClock;
  const { lock, dispose } = await open(args, io);
  // Transient trouble the backend retries through (a watch reconnecting, a member switch): say so once per message.
  let lastWarning = '';
  lock.on('warning', (err: Error) => {
    if (err.message !== lastWarning) io.err(`leaderlock: warning: ${redact(err.message)}`);
    lastWarning = err.message;
  });
  try {
    if (command === 'status') {
      await status(lock, args.key, args.json, clock, io.out);
      return EX_OK;
    }
    await probe(lock, args, clock);
    const ac = new AbortController();
    const signals = io.signals ?? process;
    const stop = (): void => ac.abort();
    const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    for (const s of sigs) signals.on(s, stop);
    try {
      await watch(lock, args.key, args.json, clock, ac.signal, io.out);
    } finally {
      for (const s of sigs) signals.off(s, stop);
    }
    return EX_OK;
  } finally {
    await closeQuietly(lock, clock);
    await dispose?.().catch(() => undefined);
  }
}

async function runCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const args = parseRunArgs(argv, io.env);
  const clock = io.clock ?? systemClock;
  const { lock, client, dispose } = await open(args, io);
  try {
    await probe(lock, args, clock);
    const deps: Parameters<typeof supervise>[1] = { lock, log: (l) => io.err(`leaderlock: ${l}`) };
    if (client) deps.resolver = client;
    if (io.clock) deps.clock = io.clock;
    if (io.spawn) deps.spawn = io.spawn;
    if (io.signals) deps.signals = io.signals;
    deps.env = { ...process.env, ...io.env };
    return await supervise(args, deps);
  } finally {
    await closeQuietly(lock, clock);
    await dispose?.().catch(() => undefined);
  }
}

async function open(c: Connection, io: CliIo): Promise<OpenedLock> {
  if (io.openLock) return { lock: await io.openLock(c) };
  return openLock(c, io.env);
}

function explain(argv: readonly string[], io: CliIo): number {
  const a = parseExplainArgs(argv);
  const input: Parameters<typeof LeaderElector.explain>[0] = { ttlMs: a.ttlMs };
  if (a.renewDeadlineMs !== undefined) input.renewDeadlineMs = a.renewDeadlineMs;
  if (a.retryPeriodMs !== undefined) input.retryPeriodMs = a.retryPeriodMs;
  if (a.drift !== undefined) input.drift = a.drift;
  const e = LeaderElector.explain(input);
  io.out(a.json ? JSON.stringify(e) : e.text);
  return e.ok ? EX_OK : EX_USAGE;
}
