import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { skipReason } from '../../bench/run.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULT = join(ROOT, 'bench/results/handover-kube-real.json');

describe('bench/handover-kube-real.ts on a machine without the real-server tier', () => {
  it('prints one skipped: line, exits 0 and writes no result, so `npm run bench` reports it as skipped', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'leaderlock-no-tier-'));
    const before = existsSync(RESULT) ? statSync(RESULT).mtimeMs : undefined;
    try {
      const { stdout } = await run(process.execPath, ['--conditions=source', '--import', 'tsx', 'bench/handover-kube-real.ts', '--quick'], {
        cwd: ROOT,
        env: { ...process.env, LEADERLOCK_REAL_CACHE: cache },
        timeout: 60_000,
      });
      const lines = stdout.trim().split('\n');
      assert.equal(lines.length, 1, stdout);
      assert.match(skipReason(0, stdout) ?? '', /^handover-kube-real needs the real-server tier's servers and client-go peer \(.*is missing/);
      assert.equal(existsSync(RESULT) ? statSync(RESULT).mtimeMs : undefined, before, 'no result file written');
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
