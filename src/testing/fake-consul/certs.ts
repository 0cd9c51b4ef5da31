/**
 * A CA and a server certificate for 127.0.0.1/localhost, for `FakeConsulServer({ tls: true })`.
 * `selfsigned` is a dev dependency and an optional peer of leaderlock: imported lazily, here only.
 */
export interface FakeConsulCerts {
  /** PEM of the CA that signed the server certificate (what CONSUL_CACERT names). */
  ca: string;
  cert: string;
  key: string;
}

export async function generateConsulCerts(host: string): Promise<FakeConsulCerts> {
  let selfsigned: typeof import('selfsigned');
  try {
    selfsigned = await import('selfsigned');
  } catch {
    throw new Error('FakeConsulServer({ tls: true }) needs the "selfsigned" package (npm install --save-dev selfsigned)');
  }
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'leaderlock-fake-consul-ca' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await selfsigned.generate([{ name: 'commonName', value: 'server.dc1.consul' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2 as const, value: 'localhost' },
          { type: 2 as const, value: 'server.dc1.consul' },
          { type: 7 as const, ip: host },
        ],
      },
    ],
  });
  return { ca: ca.cert, cert: server.cert, key: server.private };
}
