/**
 * Certificates for the fake API nodes, generated in-process by the shared `../certs.ts`, which imports
 * the optional `selfsigned` peer lazily, so production entry points never load it.
 */
import { generateServerCertificates, type ServerCertificates } from '../certs.js';

export interface FakeKubeCerts extends ServerCertificates {
  /** PEM of the CA that signed the server certificate (what a kubeconfig's certificate-authority-data holds). */
  ca: string;
}

/** The names every API node certificate carries, as kubeadm issues them. */
export const SERVICE_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'];

export async function generateCerts(ips: readonly string[]): Promise<FakeKubeCerts> {
  return generateServerCertificates({
    caName: 'leaderlock-fake-kubernetes-ca',
    serverName: 'kube-apiserver',
    dnsNames: SERVICE_NAMES,
    ips,
    missingMessage: 'FakeKubeApiServer needs the "selfsigned" package (npm install --save-dev selfsigned) to generate its certificates',
  });
}
