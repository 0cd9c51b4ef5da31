/**
 * Certificates for the fake API nodes, generated in-process. `selfsigned` is a dev dependency and an
 * optional peer of leaderlock: it is imported here, lazily, so production entry points never load it.
 */
export interface FakeKubeCerts {
  /** PEM of the CA that signed the server certificate (what a kubeconfig's certificate-authority-data holds). */
  ca: string;
  cert: string;
  key: string;
}

/** The names every API node certificate carries, as kubeadm issues them. */
export const SERVICE_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'];

export async function generateCerts(ips: readonly string[]): Promise<FakeKubeCerts> {
  let selfsigned: typeof import('selfsigned');
  try {
    selfsigned = await import('selfsigned');
  } catch {
    throw new Error('FakeKubeApiServer needs the "selfsigned" package (npm install --save-dev selfsigned) to generate its certificates');
  }
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'leaderlock-fake-kubernetes-ca' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const server = await selfsigned.generate([{ name: 'commonName', value: 'kube-apiserver' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...SERVICE_NAMES.map((value) => ({ type: 2 as const, value })), ...ips.map((ip) => ({ type: 7 as const, ip }))] },
    ],
  });
  return { ca: ca.cert, cert: server.cert, key: server.private };
}
