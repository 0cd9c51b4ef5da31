import { spawn as nodeSpawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../core/clock.js';
import { shortText } from '../core/errors.js';
import type { LeaderLock, Term } from '../core/lock.js';
import { LeaderElector } from '../elector/index.js';
import { createHealthHandler, type SwitchSource } from '../http/index.js';
import type { RunArgs } from './args.js';
import { formatDuration } from './duration.js';
import { hostPort, listen } from './health-server.js';
import { onSignals, SHUTDOWN, signalExitCode, type SignalSource } from './signals.js';
import { killLeadMs, TermCommand, type ChildLike, type CommandExit, type SpawnFn } from './term-command.js';
import { EX_NOEXEC, EX_NOTFOUND, UsageError } from './usage-error.js';
import { spawnWatched } from './watchdog.js';

export type { ChildLike, SpawnFn } from './term-command.js';
export type { SignalSource } from './signals.js';
export { signalExitCode } from './signals.js';

export interface SuperviseDeps {
  lock: LeaderLock;
  /** The elector's and the kill timers' clock. Default: the lock's clock, else the system clock. */
  clock?: Clock;
  /** Default: the command under the watchdog (watchdog.ts); plain `spawn` on Windows. */
  spawn?: SpawnFn;
  signals?: SignalSource;
  env?: NodeJS.ProcessEnv;
  /** One line of progress for stderr. */
  log?: (line: string) => void;
  /** Counts API endpoint switches for /metrics (the Kubernetes client). */
  resolver?: SwitchSource;
}

function defaultSpawn(log: (line: string) => void): SpawnFn {
  if (process.platform === 'win32') return (command, args, env) => nodeSpawn(command, [...args], { stdio: 'inherit', env });
  return (command, args, env, opts) => spawnWatched(command, args, env, { ...opts, log });
}

/**
 * `leaderlock run`: runs the command only while this process leads (see term-command.ts for when
 * it is signalled, watchdog.ts for what kills it when this process cannot).
 *
 * The command is the term's guarded work (`runWhileLeader`): the elector waits for it to be gone —
 * for a watched command, its whole process group — before it releases on `stop()`, bounded by the
 * term's validUntil. When the command exits on its own, the lock is released and we exit with its
 * code. When the term ends, the command is stopped and, unless `once`, started again in the next
 * term we win. Only one command runs at a time: a new term waits for the previous one to be gone.
 *
 * Resolves the process exit code.
 */
export async function supervise(args: RunArgs, deps: SuperviseDeps): Promise<number> {
  const log = deps.log ?? (() => undefined);
  const say = (line: string): void => {
    if (!args.quiet) log(line);
  };
  const spawn = deps.spawn ?? defaultSpawn(log);
  const baseEnv = deps.env ?? process.env;
  const elector = newElector(args, deps);
  const clock = elector.options.clock;

  let current: TermCommand | undefined;
  let shuttingDown = false;
  let finished = false;
  let lastWarning = '';
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));

  const finish = (code: number): void => {
    if (finished) return;
    finished = true;
    void elector.stop().then(() => resolveExit(code), () => resolveExit(code));
  };

  const onSpawnError = (err: unknown): void => {
    const code = (err as { code?: string }).code;
    log(`cannot run ${args.command}: ${code ?? (err instanceof Error ? err.message : String(err))}`);
    finish(code === 'ENOENT' ? EX_NOTFOUND : EX_NOEXEC);
  };

  const start = (term: Term): TermCommand | undefined => {
    const env = { ...baseEnv, LEADERLOCK_TOKEN: term.token.toString(), LEADERLOCK_IDENTITY: args.identity, LEADERLOCK_KEY: args.key };
    say(`elected with token ${term.token}: starting ${args.command}`);
    try {
      const child = spawn(args.command, args.commandArgs, env, { deadlineMs: term.validUntil - killLeadMs(args.graceMs) - clock.now(), graceMs: args.graceMs });
      return new TermCommand(term, child, { clock, graceMs: args.graceMs, name: args.command, say });
    } catch (err) {
      onSpawnError(err);
      return undefined;
    }
  };

  const onGone = (term: Term, exit: CommandExit): void => {
    if (exit.error !== undefined) {
      onSpawnError(exit.error);
      return;
    }
    const exitCode = exit.signal ? signalExitCode(exit.signal) : (exit.code ?? 0);
    say(`${args.command} exited with ${exit.signal ? exit.signal : `code ${exitCode}`}`);
    if (shuttingDown || !exit.stoppedByUs || args.once) {
      // Exited on its own (or we are done): release the lock and leave with its code.
      finish(exitCode);
      return;
    }
    // We stopped it because the term was ending: make sure the term is over so the elector gives
    // the key back and campaigns again; the next win starts the command again.
    if (!term.ended) term.end('deadline');
    say('waiting to be elected again');
  };

  /** The term's guarded work: the command, from start until it (and its group) is gone. */
  const runTerm = async (term: Term): Promise<void> => {
    while (current) await current.gone; // the previous term's command is still dying
    if (shuttingDown || finished || term.ended) return;
    const cmd = start(term);
    if (!cmd) return;
    current = cmd;
    const exit = await cmd.gone;
    current = undefined;
    onGone(term, exit);
  };

  const offSignals = onSignals(deps.signals ?? process, (sig) => {
    if (SHUTDOWN.includes(sig)) {
      shuttingDown = true;
      if (!current) {
        finish(signalExitCode(sig));
        return;
      }
    }
    current?.signal(sig);
  });

  void elector.runWhileLeader(runTerm);
  elector.on('renew', (info) => {
    if (info.ok) current?.renewed();
  });
  elector.on('leader', (holder) => {
    if (holder !== undefined && holder !== args.identity && !current) say(`leader is ${shortText(holder)}; waiting`);
  });
  elector.on('lost', (term, reason) => {
    if (args.once && !current && !finished) {
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
    offSignals();
    health?.close();
    if (server) await new Promise((resolve) => server!.close(resolve));
  }
}

/** The elector for `run`, after checking that --grace fits in the term. */
function newElector(args: RunArgs, deps: SuperviseDeps): LeaderElector {
  const electorOptions: ConstructorParameters<typeof LeaderElector>[1] = { identity: args.identity, onLoss: args.once ? 'stop' : 'recampaign' };
  if (args.renewDeadlineMs !== undefined) electorOptions.renewDeadlineMs = args.renewDeadlineMs;
  if (args.retryPeriodMs !== undefined) electorOptions.retryPeriodMs = args.retryPeriodMs;
  if (deps.clock) electorOptions.clock = deps.clock;
  if (args.metadata !== undefined) electorOptions.metadata = args.metadata;
  const elector = new LeaderElector(deps.lock, electorOptions);
  const o = elector.options;
  // After a fresh renew the term has ttl·(1−drift) left and the next renew comes a retry period
  // later: a grace longer than the difference would stop a healthy leader's command every term.
  const graceLimit = o.ttlMs * (1 - o.drift) - o.retryPeriodMs;
  if (args.graceMs >= graceLimit) {
    throw new UsageError(
      `--grace ${formatDuration(args.graceMs)} does not fit in the term: it must be less than ttl × (1 − drift) − retry period = ${formatDuration(graceLimit)}; lower --grace or raise --ttl`,
    );
  }
  return elector;
}
