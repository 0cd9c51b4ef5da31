import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// The example runs as documented (against FakeKubeApiServer) and exits by itself within its bound.
it('examples/k8s-controller.ts leads via a Lease on the fake, hands over on stop and exits', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', 'examples/k8s-controller.ts', '--fake', '--seconds', '3'], {
    timeout: 30_000,
    env: { ...process.env, KUBECONFIG: '/nonexistent' },
  });
  assert.match(stdout, /replica-a\s+LEADS\s+token 1/);
  assert.match(stdout, /replica-b\s+LEADS\s+token 2 \(leaseTransitions\) — handover took [\d.]+ ms/);
  assert.match(stdout, /stopped; the Lease was released/);
});
