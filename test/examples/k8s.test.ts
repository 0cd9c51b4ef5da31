import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseRunArgs } from '../../src/cli/args.js';

/** The manifests in examples/k8s parse and agree with each other and with what the code relies on. */
const DIR = fileURLToPath(new URL('../../examples/k8s/', import.meta.url));

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

function load(): Obj[] {
  const out: Obj[] = [];
  for (const f of readdirSync(DIR).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(DIR + f, 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${f} parses`);
      const o = doc.toJS() as Obj | null;
      if (o === null) continue;
      assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${f}: apiVersion, kind and metadata.name`);
      out.push(o);
    }
  }
  return out;
}

const objs = load();
const find = (kind: string, name: string, ns?: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name && (ns === undefined || x.metadata.namespace === ns));
  assert.ok(o, `${kind} ${ns ?? '*'}/${name} exists`);
  return o;
};
const grants = (rules: Rule[], group: string, resource: string, verb: string, name?: string): boolean =>
  rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb) && (!r.resourceNames || (name !== undefined && r.resourceNames.includes(name))));

const deploy = find('Deployment', 'ha-daemon', 'ha-demo') as Obj & {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: Array<Record<string, any>> } } };
};
const pod = deploy.spec.template;
const container = pod.spec.containers[0]!;
const runArgs = parseRunArgs((container.args as string[]).slice(1), {});

describe('examples/k8s manifests', () => {
  it('the container runs a valid `leaderlock run` command line', () => {
    assert.deepEqual(container.command, ['leaderlock']);
    assert.equal((container.args as string[])[0], 'run');
    assert.deepEqual(runArgs.backend, { kind: 'kubernetes', lockKind: 'Lease' });
    assert.equal(runArgs.roleLabels, true);
    assert.equal(runArgs.bypassApiService, true);
    assert.ok(runArgs.listen);
    assert.equal(runArgs.command, '/app/daemon');
  });

  it('downward API: POD_NAME (role labels, identity) and POD_IP', () => {
    const env = container.env as Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
    const field = (n: string) => env.find((e) => e.name === n)?.valueFrom?.fieldRef?.fieldPath;
    assert.equal(field('POD_NAME'), 'metadata.name');
    assert.equal(field('LEADERLOCK_IDENTITY'), 'metadata.name');
    assert.equal(field('POD_IP'), 'status.podIP');
  });

  it('probes hit /readiness and /liveness on the port leaderlock listens on', () => {
    const ports = container.ports as Array<{ name: string; containerPort: number }>;
    const portOf = (p: string | number) => (typeof p === 'number' ? p : ports.find((x) => x.name === p)?.containerPort);
    assert.equal(container.readinessProbe.httpGet.path, '/readiness');
    assert.equal(container.livenessProbe.httpGet.path, '/liveness');
    assert.equal(portOf(container.readinessProbe.httpGet.port), runArgs.listen!.port);
    assert.equal(portOf(container.livenessProbe.httpGet.port), runArgs.listen!.port);
    assert.equal(runArgs.listen!.host, '0.0.0.0', 'probes come from the kubelet, not loopback');
  });

  it('termination grace exceeds --grace, so the daemon exits and the Lease is released before SIGKILL', () => {
    const seconds = (pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
    assert.ok(seconds * 1000 > runArgs.graceMs + 5000);
  });

  it('the primary Service selects role=primary pods of this app and targets a container port', () => {
    const svc = find('Service', 'ha-daemon-primary', 'ha-demo') as Obj & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string | number }> } };
    assert.equal(svc.spec.selector.role, 'primary'); // KubernetesLock's default leader label value
    for (const [k, v] of Object.entries(svc.spec.selector)) if (k !== 'role') assert.equal(pod.metadata.labels[k], v, `pod template carries ${k}=${v}`);
    for (const [k, v] of Object.entries(deploy.spec.selector.matchLabels)) assert.equal(pod.metadata.labels[k], v);
    assert.ok(!('role' in deploy.spec.selector.matchLabels), 'the Deployment must not select on the role label it changes');
    const names = (container.ports as Array<{ name: string }>).map((p) => p.name);
    for (const p of svc.spec.ports) assert.ok(typeof p.targetPort === 'number' || names.includes(p.targetPort));
  });

  it('RBAC: the ServiceAccount may do exactly what the lock, the role labels and the resolver do', () => {
    const ns = deploy.metadata.namespace!;
    const sa = find('ServiceAccount', pod.spec.serviceAccountName, ns);
    const boundRules = (roleNs: string): Rule[] =>
      objs
        .filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === roleNs)
        .filter((b) => (b.subjects as Array<{ kind: string; name: string; namespace: string }>).some((s) => s.kind === 'ServiceAccount' && s.name === sa.metadata.name && s.namespace === ns))
        .flatMap((b) => (find((b.roleRef as { kind: string }).kind, (b.roleRef as { name: string }).name, roleNs).rules as Rule[]));
    const own = boundRules(ns);
    for (const verb of ['get', 'update']) assert.ok(grants(own, 'coordination.k8s.io', 'leases', verb, runArgs.key), `leases ${verb} ${runArgs.key}`);
    for (const verb of ['create', 'list', 'watch']) assert.ok(grants(own, 'coordination.k8s.io', 'leases', verb), `leases ${verb}`);
    for (const verb of ['get', 'patch']) assert.ok(grants(own, '', 'pods', verb), `pods ${verb}`);
    assert.ok(!grants(own, 'coordination.k8s.io', 'leases', 'delete'), 'release never deletes the Lease: no delete needed');
    const def = boundRules('default');
    assert.ok(grants(def, 'discovery.k8s.io', 'endpointslices', 'list'), 'endpointslices list in default');
    assert.ok(grants(def, '', 'endpoints', 'get', 'kubernetes'), 'endpoints get default/kubernetes');
    assert.ok(!objs.some((o) => o.kind === 'ClusterRoleBinding'), 'nothing cluster-wide');
  });
});
