/**
 * Runs test/fixtures/etcd-elector.ts in a child process and collects its JSON-line reports, so tests
 * can SIGKILL/SIGSTOP a real leader. `kill()` always ends it (SIGCONT first if it was stopped).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Report {
  ev: string;
  at: number;
  token?: string;
  key?: string;
  reason?: string;
  by?: string;
  ok?: boolean;
  etcdOk?: boolean;
}

const FIXTURE = fileURLToPath(new URL('../../fixtures/etcd-elector.ts', import.meta.url));
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export class ChildElector {
  readonly reports: Report[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  #waiters = new Set<() => void>();
  stderr = '';

  constructor(config: Record<string, unknown>) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.reports.push(JSON.parse(line) as Report);
        } catch {
          continue;
        }
        for (const w of [...this.#waiters]) w();
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', () => {
        live.delete(this.proc);
        for (const w of [...this.#waiters]) w();
        resolve();
      }),
    );
  }

  /** Resolves with the first report (at index ≥ `from`) matching `pred`; rejects after `ms`. */
  waitFor(pred: (r: Report) => boolean, ms: number, from = 0): Promise<Report> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const r = this.reports.slice(from).find(pred);
        if (r) {
          cleanup();
          resolve(r);
        } else if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
          cleanup();
          reject(new Error(`child exited before the report came; stderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching report within ${ms} ms; got ${JSON.stringify(this.reports.slice(from))}; stderr: ${this.stderr}`));
      }, ms);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGCONT');
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}
