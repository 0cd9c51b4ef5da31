import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Smoke tests: the examples run to completion within a bound and show what they promise. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function runExample(file: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', file, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(bound);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('examples', () => {
  it('ha-daemon: the cut-off primary demotes itself before the replica is promoted; probes follow', async () => {
    const r = await runExample('examples/ha-daemon.ts', ['--run-ms', '8000'], 30_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const lines = r.stdout.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const demoted = at(/node-1: REPLICA \(term \d+ ended/);
    const promoted = at(/node-2: PRIMARY/);
    assert.ok(at(/node-1: PRIMARY/) >= 0);
    assert.ok(demoted >= 0 && promoted > demoted, r.stdout);
    assert.match(r.stdout, /node-1: \/primary 200, \/replica 503/);
    assert.match(r.stdout, /node-2: \/primary 200, \/replica 503, \/readiness 200/);
    // The cut-off ex-primary cannot see any leader: not ready, so a Service drops it even if its role label is stale.
    assert.match(r.stdout, /node-1: \/primary 503, \/replica 503, \/readiness 503, \/liveness 200/);
    assert.match(r.stdout, /leaderlock_is_leader\{backend="memory",key="service\/demo\/leader"\} 1/);
  });
});
