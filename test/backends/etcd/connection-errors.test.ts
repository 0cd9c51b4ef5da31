/**
 * etcd connection errors say why (issue 13, item 4): they all used to read "Deadline exceeded …
 * waiting for name resolution" — the last retry's text — although the first attempt knew the reason.
 * Loopback only: a closed 127.0.0.x port, a `.invalid` name (resolved locally, RFC 6761), and a TLS
 * etcd started here with generated certificates (client-cert-auth on).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdLock, type EtcdTlsOptions } from '../../../src/backends/etcd/index.js';
import { BackendUnavailableError } from '../../../src/core/errors.js';
import { ETCD_BIN, freePort } from '../../helpers/etcd-cluster.js';

const RT = 1000;
let etcd: ChildProcess | undefined;
let dir = '';
let url = '';
let pki: { ca: string; otherCa: string; cert: string; key: string };

async function certificates(): Promise<typeof pki & { serverCert: string; serverKey: string }> {
  const selfsigned = await import('selfsigned');
  const caExt = [
    { name: 'basicConstraints' as const, cA: true, critical: true },
    { name: 'keyUsage' as const, keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
  ];
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'leaderlock test CA' }], { keyType: 'ec', algorithm: 'sha256', extensions: caExt });
  const other = await selfsigned.generate([{ name: 'commonName', value: 'some other CA' }], { keyType: 'ec', algorithm: 'sha256', extensions: caExt });
  const leaf = (cn: string, eku: Record<string, boolean>, alt: boolean) =>
    selfsigned.generate([{ name: 'commonName', value: cn }], {
      keyType: 'ec',
      algorithm: 'sha256',
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints' as const, cA: false },
        { name: 'keyUsage' as const, digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage' as const, ...eku },
        ...(alt ? [{ name: 'subjectAltName' as const, altNames: [{ type: 7 as const, ip: '127.0.0.1' }] }] : []),
      ],
    });
  const server = await leaf('etcd', { serverAuth: true, clientAuth: true }, true);
  const client = await leaf('client', { clientAuth: true }, false);
  return { ca: ca.cert, otherCa: other.cert, cert: client.cert, key: client.private, serverCert: server.cert, serverKey: server.private };
}

before(async () => {
  const c = await certificates();
  pki = c;
  dir = mkdtempSync(join(tmpdir(), 'leaderlock-etcd-tls-'));
  for (const [name, pem] of Object.entries({ 'ca.pem': c.ca, 'server.pem': c.serverCert, 'server-key.pem': c.serverKey })) writeFileSync(join(dir, name), pem);
  const port = await freePort();
  const peer = await freePort();
  url = `https://127.0.0.1:${port}`;
  etcd = spawn(
    ETCD_BIN,
    [
      '--name=tls',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=tls=http://127.0.0.1:${peer}`,
      `--cert-file=${join(dir, 'server.pem')}`,
      `--key-file=${join(dir, 'server-key.pem')}`,
      `--trusted-ca-file=${join(dir, 'ca.pem')}`,
      '--client-cert-auth',
      '--log-level=error',
    ],
    { stdio: 'ignore' },
  );
  // Ready when a correctly configured client can read (bounded).
  const good = new EtcdLock({ endpoints: url, key: '/tls/ready', tls: { ca: c.ca, cert: c.cert, key: c.key }, requestTimeoutMs: 1000 });
  try {
    for (let i = 0; ; i++) {
      try {
        await good.get();
        break;
      } catch (err) {
        if (i >= 30) throw new Error(`TLS etcd did not come up: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  } finally {
    await good.close();
  }
});
after(async () => {
  etcd?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function failure(endpoint: string, tls?: EtcdTlsOptions): Promise<Error> {
  const l = new EtcdLock({ endpoints: endpoint, key: '/conn/leader', ttlMs: 5000, requestTimeoutMs: RT, ...(tls ? { tls } : {}) });
  try {
    await l.get();
  } catch (err) {
    assert.ok(err instanceof BackendUnavailableError, String(err));
    return err;
  } finally {
    await l.close().catch(() => undefined);
  }
  assert.fail('get() succeeded');
}

describe('etcd connection errors name the reason', { concurrency: true }, () => {
  it('refused port (closed 127.0.0.x port)', async () => {
    const err = await failure(`http://127.0.0.7:${await freePort()}`);
    assert.match(err.message, /^etcd read: connection refused/);
    assert.doesNotMatch(err.message.split('(')[0]!, /name resolution/);
  });

  it('unknown host (.invalid)', async () => {
    const err = await failure('http://leaderlock-test.invalid:2379');
    assert.match(err.message, /^etcd read: unknown host/);
  });

  it('wrong CA: the server certificate is not trusted', async () => {
    const err = await failure(url, { ca: pki.otherCa, cert: pki.cert, key: pki.key });
    assert.match(err.message, /^etcd read: TLS: the server's certificate is not trusted/);
  });

  it('missing client certificate: refused in the handshake', async () => {
    const err = await failure(url, { ca: pki.ca });
    assert.match(err.message, /^etcd read: TLS: the server refused the connection during the handshake \(client certificate/);
  });

  it('the right CA and client certificate work (the harness etcd is sound)', async () => {
    const l = new EtcdLock({ endpoints: url, key: '/conn/ok', tls: { ca: pki.ca, cert: pki.cert, key: pki.key }, requestTimeoutMs: RT });
    try {
      assert.deepEqual(await l.get(), {});
    } finally {
      await l.close();
    }
  });
});
