import { spawn as nodeSpawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import type { Clock, Timer } from '../core/clock.js';
import type { LeaderLock, Term } from '../core/lock.js';
import { LeaderElector } from '../elector/index.js';
import { createHealthHandler, type SwitchSource } from '../http/index.js';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostPort, listen } from './health-server.js';
import type { RunArgs } from './args.js';
import { formatDuration } from './duration.js';
import { EX_NOEXEC, EX_NOTFOUND, UsageError } from './usage-error.js';

/** The part of a `ChildProcess` the supervisor uses (a fake in unit tests). */
export interface ChildLike extends EventEmitter {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
}

export type SpawnFn = (command: string, args: readonly string[], env: NodeJS.ProcessEnv) => ChildLike;

/** Where OS signals come from (`process` by default). */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface SuperviseDeps {
  lock: LeaderLock;
  /** The elector's and the kill timers' clock. Default: the lock's clock, else the system clock. */
  clock?: Clock;
  spawn?: SpawnFn;
  signals?: SignalSource;
  env?: NodeJS.ProcessEnv;
  /** One line of progress for stderr. */
  log?: (line: string) => void;
  /** Counts API endpoint switches for /metrics (the Kubernetes client). */
  resolver?: SwitchSource;
}

/** Signals that mean "shut down": forwarded to the child, then we release and exit with its code. */
const SHUTDOWN: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGQUIT'];
/** Signals only passed on (reload config, rotate logs, resize). */
const FORWARD_ONLY: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

const defaultSpawn: SpawnFn = (command, args, env) => nodeSpawn(command, [...args], { stdio: 'inherit', env });

/** 128 + signal number, as shells report a command killed by a signal. */
export function signalExitCode(signal: NodeJS.Signals | string): number {
  const n = (constants.signals as Record<string, number | undefined>)[signal];
  return 128 + (n ?? 0);
}

/**
 * `leaderlock run`: runs the command only while this process leads.
 *
 * Safety rule: the child must be dead before anyone else can win. Another candidate can win once
 * the record expires on the server, which is no earlier than our `validUntil` (it is computed from
 * the send time of our last confirmed renew, minus drift). So the child gets SIGTERM at
 * `validUntil − grace` at the latest (earlier when the term ends: deadline, taken, ...) and SIGKILL
 * at `validUntil` (or `grace` after SIGTERM when that is sooner). The timers run on the elector's
 * monotonic clock and move with every confirmed renew.
 *
 * When the child exits on its own, the lock is released and we exit with its code. When the term
 * ends, the child is stopped and, unless `once`, started again in the next term we win. Only one
 * child runs at a time: a new term waits for the previous child to be gone.
 *
 * Resolves the process exit code.
 */
export async function supervise(args: RunArgs, deps: SuperviseDeps): Promise<number> {
  const log = deps.log ?? (() => undefined);
  const say = (line: string): void => {
    if (!args.quiet) log(line);
  };
  const spawn = deps.spawn ?? defaultSpawn;
  const signals: SignalSource = deps.signals ?? process;
  const baseEnv = deps.env ?? process.env;
  const electorOptions: ConstructorParameters<typeof LeaderElector>[1] = { identity: args.identity, onLoss: args.once ? 'stop' : 'recampaign' };
  if (args.renewDeadlineMs !== undefined) electorOptions.renewDeadlineMs = args.renewDeadlineMs;
  if (args.retryPeriodMs !== undefined) electorOptions.retryPeriodMs = args.retryPeriodMs;
  if (deps.clock) electorOptions.clock = deps.clock;
  if (args.metadata !== undefined) electorOptions.metadata = args.metadata;
  const elector = new LeaderElector(deps.lock, electorOptions);
  const o = elector.options;
  const clock = o.clock;
  // After a fresh renew the term has ttl·(1−drift) left and the next renew comes a retry period
  // later: a grace longer than the difference would stop a healthy leader's command every term.
  const graceLimit = o.ttlMs * (1 - o.drift) - o.retryPeriodMs;
  if (args.graceMs >= graceLimit) {
    throw new UsageError(
      `--grace ${formatDuration(args.graceMs)} does not fit in the term: it must be less than ttl × (1 − drift) − retry period = ${formatDuration(graceLimit)}; lower --grace or raise --ttl`,
    );
  }

  let child: ChildLike | undefined;
  let childTerm: Term | undefined;
  let waitingTerm: Term | undefined;
  let termTimer: Timer | undefined;
  let killTimer: Timer | undefined;
  let terminating = false;
  let shuttingDown = false;
  let finished = false;
  let lastWarning = '';
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));

  const cancelTimers = (): void => {
    termTimer?.cancel();
    killTimer?.cancel();
    termTimer = killTimer = undefined;
  };

  /** SIGTERM now, SIGKILL at validUntil or after grace, whichever is sooner. */
  const stopChild = (why: string): void => {
    if (!child || terminating) return;
    terminating = true;
    termTimer?.cancel();
    const term = childTerm!;
    const killIn = Math.max(0, Math.min(term.validUntil - clock.now(), args.graceMs));
    say(`${why}: sending SIGTERM to ${args.command} (pid ${child.pid ?? '?'}), SIGKILL in ${formatDuration(killIn)}`);
    child.kill('SIGTERM');
    const c = child;
    killTimer = clock.setTimer(() => {
      if (child !== c) return;
      say(`${args.command} still running at the end of the term: SIGKILL`);
      c.kill('SIGKILL');
    }, killIn);
  };

  const armTermTimer = (term: Term): void => {
    if (term !== childTerm || terminating) return;
    termTimer?.cancel();
    termTimer = clock.setTimer(() => stopChild(`term ${term.token} is running out (no confirmed renew)`), term.validUntil - args.graceMs - clock.now());
  };

  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    cancelTimers();
    void elector.stop().then(() => resolveExit(code), () => resolveExit(code));
  };

  const startChild = (term: Term): void => {
    if (shuttingDown || finished || term.ended) return;
    if (child) {
      waitingTerm = term;
      return;
    }
    childTerm = term;
    terminating = false;
    const env = { ...baseEnv, LEADERLOCK_TOKEN: term.token.toString(), LEADERLOCK_IDENTITY: args.identity, LEADERLOCK_KEY: args.key };
    say(`elected with token ${term.token}: starting ${args.command}`);
    let c: ChildLike;
    try {
      c = spawn(args.command, args.commandArgs, env);
    } catch (err) {
      onSpawnError(err);
      return;
    }
    child = c;
    let done = false;
    c.once('error', (err: unknown) => {
      if (done) return;
      done = true;
      onChildGone(c, undefined, undefined, err);
    });
    c.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      onChildGone(c, code, signal);
    });
    armTermTimer(term);
    term.signal.addEventListener('abort', () => {
      if (childTerm === term) stopChild(`leadership lost (${term.endReason ?? 'ended'})`);
    }, { once: true });
  };

  const onSpawnError = (err: unknown): void => {
    const code = (err as { code?: string }).code;
    log(`cannot run ${args.command}: ${code ?? (err instanceof Error ? err.message : String(err))}`);
    finish(code === 'ENOENT' ? EX_NOTFOUND : EX_NOEXEC);
  };

  const onChildGone = (c: ChildLike, code: number | null | undefined, signal: NodeJS.Signals | null | undefined, err?: unknown): void => {
    if (child !== c) return;
    const term = childTerm!;
    const wasStoppedByUs = terminating;
    child = undefined;
    childTerm = undefined;
    terminating = false;
    cancelTimers();
    if (err !== undefined) {
      onSpawnError(err);
      return;
    }
    const exitCode = signal ? signalExitCode(signal) : (code ?? 0);
    say(`${args.command} exited with ${signal ? signal : `code ${exitCode}`}`);
    if (shuttingDown || !wasStoppedByUs || args.once) {
      // Exited on its own (or we are done): release the lock and leave with its code.
      finish(exitCode);
      return;
    }
    // We stopped it because the term was ending: make sure the term is over so the elector gives
    // the key back and campaigns again; the next win starts the command again.
    if (!term.ended) term.end('deadline');
    const next = waitingTerm;
    waitingTerm = undefined;
    if (next && !next.ended) startChild(next);
    else say('waiting to be elected again');
  };

  const onSignal = (sig: NodeJS.Signals): void => {
    if (SHUTDOWN.includes(sig)) {
      shuttingDown = true;
      waitingTerm = undefined;
      if (!child) {
        finish(signalExitCode(sig));
        return;
      }
    }
    if (child) child.kill(sig);
  };
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...SHUTDOWN, ...FORWARD_ONLY]) {
    if (process.platform === 'win32' && FORWARD_ONLY.includes(sig)) continue;
    const h = (): void => onSignal(sig);
    handlers.set(sig, h);
    signals.on(sig, h);
  }

  elector.on('elected', (term) => startChild(term));
  elector.on('renew', (info) => {
    if (info.ok && childTerm) armTermTimer(childTerm);
  });
  elector.on('leader', (holder) => {
    if (holder !== undefined && holder !== args.identity && !child) say(`leader is ${holder}; waiting`);
  });
  elector.on('lost', (term, reason) => {
    if (args.once && !child && !finished) {
      say(`term ${term.token} ended (${reason}) and --once was given`);
      finish(0);
    }
  });
  elector.on('warning', (err) => {
    if (err.message !== lastWarning) say(`warning: ${err.message}`);
    lastWarning = err.message;
  });

  let server: Server | undefined;
  let health: ReturnType<typeof createHealthHandler> | undefined;
  try {
    if (args.listen) {
      health = createHealthHandler(elector, deps.resolver ? { resolver: deps.resolver } : {});
      server = await listen(health, args.listen);
      const bound = server.address() as AddressInfo;
      say(`health endpoints on http://${hostPort({ host: bound.address, port: bound.port })}/ (leader, primary, replica, readiness, liveness, health, metrics)`);
    }
    say(`campaigning for ${args.key} as ${args.identity}`);
    await elector.start();
    return await exited;
  } finally {
    for (const [sig, h] of handlers) signals.off(sig, h);
    cancelTimers();
    health?.close();
    if (server) await new Promise((resolve) => server!.close(resolve));
  }
}
