/**
 * A CA and a server certificate it signed, generated in-process for the fake servers' TLS.
 * `selfsigned` is a dev dependency and an optional peer of leaderlock: it is imported here, lazily,
 * so production entry points never load it.
 */
export interface ServerCertificates {
  /** PEM of the CA that signed the server certificate. */
  ca: string;
  cert: string;
  key: string;
}

export interface ServerCertificateOptions {
  /** Common name of the CA certificate. */
  caName: string;
  /** Common name of the server certificate. */
  serverName: string;
  /** DNS subject alternative names, in this order, before the IPs. */
  dnsNames: readonly string[];
  /** IP subject alternative names. */
  ips: readonly string[];
  /** The error message when `selfsigned` cannot be imported. */
  missingMessage: string;
}

export async function generateServerCertificates(options: ServerCertificateOptions): Promise<ServerCertificates> {
  let selfsigned: typeof import('selfsigned');
  try {
    selfsigned = await import('selfsigned');
  } catch {
    throw new Error(options.missingMessage);
  }
  const ca = await selfsigned.generate([{ name: 'commonName', value: options.caName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await selfsigned.generate([{ name: 'commonName', value: options.serverName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...options.dnsNames.map((value) => ({ type: 2 as const, value })), ...options.ips.map((ip) => ({ type: 7 as const, ip }))],
      },
    ],
  });
  return { ca: ca.cert, cert: server.cert, key: server.private };
}
