/**
 * A real Consul agent in `-dev` mode on 127.0.0.1 (free ports, DNS/gRPC/WAN off), with the update
 * check off twice over (`disable_update_check` and CHECKPOINT_DISABLE=1) and no telemetry sink, so
 * it never reaches beyond loopback. Killed and its data removed in `stop()` and at exit.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../helpers/etcd-cluster.js';
import { realBin, realVersion } from './bins.js';
import { atExit, startProc, waitFor, type Proc } from './procs.js';

export interface ConsulAgent {
  readonly version: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly proc: Proc;
  stop(): Promise<void>;
}

export async function startConsul(): Promise<ConsulAgent> {
  const bin = realBin('consul');
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'leaderlock-consul-'));
  const dropExitHook = atExit(() => rmSync(dir, { recursive: true, force: true }));
  const [http, serfLan, server] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'agent.hcl'),
    [
      'disable_update_check = true',
      'telemetry { disable_hostname = true }',
      `ports { http = ${http}, https = -1, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = ${serfLan}, serf_wan = -1, server = ${server} }`,
      'bind_addr = "127.0.0.1"',
      'client_addr = "127.0.0.1"',
      'advertise_addr = "127.0.0.1"',
      '',
    ].join('\n'),
  );
  const proc = startProc('consul', bin, ['agent', '-dev', `-config-file=${join(dir, 'agent.hcl')}`, '-node=leaderlock-real', '-log-level=warn'], {
    log: join(dir, 'consul.log'),
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
  });
  const url = `http://127.0.0.1:${http}`;
  const stop = async (): Promise<void> => {
    await proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    dropExitHook();
  };
  try {
    await waitFor('consul leader', 60_000, async () => {
      if (!proc.running()) throw new Error('exited');
      const res = await fetch(`${url}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
      return res.ok && (await res.text()).length > 4;
    }, () => proc.tail());
  } catch (err) {
    const tail = proc.tail();
    await stop();
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
  return { version: realVersion('consul'), url, host: '127.0.0.1', port: http, proc, stop };
}
