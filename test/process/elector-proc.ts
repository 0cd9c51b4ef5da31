/**
 * A plain elector process for the fault harness (not a test file): EtcdLock + LeaderElector, and a
 * `runWhileLeader` fn that performs a guarded action every 20 ms against the harness's fenced
 * resource. Each action is stamped (CLOCK_MONOTONIC, the clock every process on the host shares)
 * *before* `term.isValid()` is checked, appended to the shared line file, then POSTed with the term's
 * token: so a process frozen between the check and the send shows up with its true validation
 * time, and its late request is the fenced resource's business.
 *
 * argv: <line file> <identity> <resource url> <key> <endpoint,endpoint…> <ttl ms>
 * stderr: the same progress lines `leaderlock run` prints ("elected with token N", "leadership lost (R)").
 */
import { appendFileSync } from 'node:fs';
import { EtcdLock } from '../../src/backends/etcd/index.js';
import { LeaderElector } from '../../src/elector/elector.js';

const [file, identity, resource, key, endpoints, ttl] = process.argv.slice(2);
if (!file || !identity || !resource || !key || !endpoints || !ttl) throw new Error('usage: elector-proc <file> <identity> <resource> <key> <endpoints> <ttlMs>');

const stamp = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;
const say = (s: string): boolean => process.stderr.write(`${s}\n`);

const lock = new EtcdLock({ endpoints: endpoints.split(','), key, ttlMs: Number(ttl) });
const elector = new LeaderElector(lock, { identity });
elector.on('elected', (term) => say(`elected with token ${term.token}`));
elector.on('lost', (term, reason) => say(`leadership lost (${reason}) token ${term.token}`));
elector.on('warning', (err) => say(`warning: ${err.message}`));

void elector.runWhileLeader(async (term) => {
  // Bounded by the term: it ends (signal aborts) at validUntil at the latest.
  while (!term.signal.aborted) {
    const at = stamp();
    if (!term.isValid()) break;
    appendFileSync(file, `${at.toFixed(3)} ${identity} ${term.token} ${process.pid}\n`);
    await fetch(resource, {
      method: 'POST',
      body: JSON.stringify({ holder: identity, token: String(term.token), pid: process.pid, at }),
      signal: AbortSignal.timeout(1000),
    }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
  }
});
await elector.start();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void elector.stop().then(() => process.exit(0)));
