/**
 * The line protocol between `leaderlock run` (the supervisor) and its reaper (src/cli/reaper.ts),
 * over a socket pair that only the two of them hold. One message per line, fields separated by one
 * space; pure functions so both ends (and the tests) share one definition.
 *
 * A remaining time crosses, stamped with the host's monotonic clock (`hostMonotonicMs`, the same in
 * every process on the host) when it was measured: the reaper subtracts the time the line spent in
 * transit — on a loaded host a busy reaper reads a line tens of milliseconds late, more than the
 * ttl × drift margin of a short ttl. The reaper never lets the stamp move a deadline later than
 * "<ms> from when the line is read", so a platform whose clocks differ only loses that correction.
 * Start-up is a handshake so that the reaper's start-up time (up to seconds on a loaded host) is
 * never added to a deadline: the reaper says `ready`, the supervisor answers with the time left in
 * the term *now*, and the reaper counts it from when it sent `ready` at the latest (the supervisor
 * measured it no earlier), then starts the command.
 *
 * Supervisor → reaper:
 *   `deadline <ms> <at>`       SIGKILL the group <ms> after host-monotonic time <at> (ms, 3
 *                              decimals) unless a later `deadline` moves it (the answer to `ready`,
 *                              then one after every confirmed renew). `<at>` may be absent: from now.
 *   `signal <SIG> group|leader` send <SIG> to the whole process group, or to the command only.
 * Reaper → supervisor:
 *   `ready`                    loaded; waiting for the first `deadline` before starting the command.
 *   `started <pid>`            the command runs; its pid is also its process group id.
 *   `spawn-error <code>`       it could not be started (ENOENT, EACCES, ...); the reaper exits.
 *   `killed <why>`             the reaper SIGKILLed the group by itself (`deadline`), or did not start
 *                              the command because the term had run out.
 *   `gone <code|-> <signal|->` the command has exited and no process of its group is left; the
 *                              reaper exits next. `<code>`/`<signal>` are the command's own.
 */

export type ToReaper = { type: 'deadline'; ms: number; at?: number } | { type: 'signal'; signal: NodeJS.Signals; target: 'group' | 'leader' };

export type FromReaper =
  | { type: 'ready' }
  | { type: 'started'; pid: number }
  | { type: 'spawn-error'; code: string }
  | { type: 'killed'; why: string }
  | { type: 'gone'; code: number | null; signal: NodeJS.Signals | null };

const SIGNAL = /^SIG[A-Z0-9]+$/;

export function encodeToReaper(m: ToReaper): string {
  if (m.type === 'signal') return `signal ${m.signal} ${m.target}\n`;
  const ms = Math.max(0, Math.floor(m.ms));
  return m.at === undefined ? `deadline ${ms}\n` : `deadline ${ms} ${m.at.toFixed(3)}\n`;
}

export function decodeToReaper(line: string): ToReaper | undefined {
  const [type, a, b] = line.trim().split(' ');
  if (type === 'deadline' && a !== undefined && /^\d+$/.test(a)) {
    if (b === undefined) return { type, ms: Number(a) };
    if (/^\d+(\.\d+)?$/.test(b)) return { type, ms: Number(a), at: Number(b) };
    return undefined;
  }
  if (type === 'signal' && a !== undefined && SIGNAL.test(a) && (b === 'group' || b === 'leader')) return { type, signal: a as NodeJS.Signals, target: b };
  return undefined;
}

export function encodeFromReaper(m: FromReaper): string {
  switch (m.type) {
    case 'ready':
      return 'ready\n';
    case 'started':
      return `started ${m.pid}\n`;
    case 'spawn-error':
      return `spawn-error ${m.code.replace(/\s/g, '_') || 'UNKNOWN'}\n`;
    case 'killed':
      return `killed ${m.why}\n`;
    case 'gone':
      return `gone ${m.code ?? '-'} ${m.signal ?? '-'}\n`;
  }
}

export function decodeFromReaper(line: string): FromReaper | undefined {
  const [type, a, b] = line.trim().split(' ');
  if (type === 'ready' && a === undefined) return { type };
  if (type === 'started' && a !== undefined && /^\d+$/.test(a)) return { type, pid: Number(a) };
  if (type === 'spawn-error' && a) return { type, code: a };
  if (type === 'killed' && a) return { type, why: a };
  if (type === 'gone' && a !== undefined && b !== undefined) {
    const code = a === '-' ? null : /^\d+$/.test(a) ? Number(a) : undefined;
    const signal = b === '-' ? null : SIGNAL.test(b) ? (b as NodeJS.Signals) : undefined;
    if (code !== undefined && signal !== undefined) return { type, code, signal };
  }
  return undefined;
}

/** Splits a byte stream into lines; keeps the unfinished tail (bounded: a line never exceeds 256 bytes). */
export class LineReader {
  #buf = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: Buffer | string): void {
    this.#buf += chunk.toString();
    for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      if (line) this.onLine(line);
    }
    if (this.#buf.length > 256) this.#buf = ''; // garbage, not ours: drop it rather than grow
  }
}
