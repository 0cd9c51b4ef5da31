/**
 * issue 12: the README's API tour is run as written — extracted from README.md, with only the etcd
 * endpoint pointed at a test etcd and a stub `writeSomething` — in two processes: node-a leads,
 * SIGUSR2 hands over to node-b, SIGTERM makes both exit on their own (no hang).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEtcd, type EtcdCluster } from '../helpers/etcd-cluster.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Inside the package, so `import 'leaderlock'` resolves to the package itself (source condition).
const SCRIPT = fileURLToPath(new URL('./readme-tour.tmp.ts', import.meta.url));

/** The first ```ts block after the "## API tour" heading. */
export function apiTour(readme: string): string {
  const section = readme.slice(readme.indexOf('\n## API tour'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('no ts block in the API tour');
  return m[1]!;
}

const STUB = `async function writeSomething(_: { fencingToken: bigint; signal: AbortSignal }): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 20));
}
`;

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function run(name: string): Proc {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', SCRIPT], { cwd: ROOT, env: { ...process.env, POD_NAME: name }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

/** Resolves when `p`'s output matches `re`; fails after `ms`. */
async function waitFor(p: Proc, re: RegExp, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(p.out())) {
    if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms; output: ${p.out()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function exitsWithin(p: Proc, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not exit within ${ms} ms; output: ${p.out()}`)), ms)));
  try {
    return await Promise.race([p.exited, bound]);
  } finally {
    clearTimeout(timer);
  }
}

let cluster: EtcdCluster;
const procs: Proc[] = [];
before(async () => {
  cluster = await startEtcd();
});
after(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  rmSync(SCRIPT, { force: true });
  await cluster?.stop();
});

/** The first ```ts block after `marker`. */
function blockAfter(readme: string, marker: string): string {
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README has no ${JSON.stringify(marker)}`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error(`no ts block after ${JSON.stringify(marker)}`);
  return m[1]!;
}

describe('README FakeKubeApiServer quick start', () => {
  it('issue 12: runs as written and leads; the install line names selfsigned', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const marker = 'A controller test on `FakeKubeApiServer`';
    assert.match(readme.slice(readme.indexOf(marker)), /^npm install --save-dev selfsigned/m);
    const script = fileURLToPath(new URL('./readme-kube.tmp.ts', import.meta.url));
    writeFileSync(script, blockAfter(readme, marker));
    try {
      const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      const p: Proc = { child, out: () => out, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      procs.push(p);
      assert.equal(await exitsWithin(p, 60_000), 0, out);
      assert.match(out, /leading: true/);
    } finally {
      rmSync(script, { force: true });
    }
  });
});

describe('README API tour', () => {
  it('issue 12: runs as written: leads, hands over on SIGUSR2, exits on SIGTERM', async () => {
    const tour = apiTour(readFileSync(new URL('../../README.md', import.meta.url), 'utf8'));
    assert.match(tour, /http:\/\/127\.0\.0\.1:2379/);
    writeFileSync(SCRIPT, STUB + tour.replace('http://127.0.0.1:2379', cluster.endpoints[0]!));
    const a = run('node-a');
    procs.push(a);
    await waitFor(a, /leading with token \d+/, 20_000);
    const b = run('node-b');
    procs.push(b);
    await waitFor(b, /leader is now node-a/, 20_000);
    a.child.kill('SIGUSR2');
    await waitFor(b, /leading with token \d+/, 10_000);
    await waitFor(a, /lost \d+ handover/, 5_000);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    assert.equal(await exitsWithin(a, 10_000), 0, a.out());
    assert.equal(await exitsWithin(b, 10_000), 0, b.out());
    assert.match(b.out(), /lost \d+ stopped/);
  });
});
