import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBackend, withEndpoints } from '../../src/cli/backend-url.js';
import { parseDuration, formatDuration } from '../../src/cli/duration.js';
import { parseRunArgs, parseReadArgs } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/usage-error.js';

describe('--backend URL parsing (pure)', () => {
  it('etcd: one or several members, default port, TLS scheme, IPv6', () => {
    assert.deepEqual(parseBackend('etcd://127.0.0.1:2379'), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] });
    assert.deepEqual(parseBackend('etcd://10.0.0.1,10.0.0.2:2381,[::1]'), { kind: 'etcd', endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2381', 'http://[::1]:2379'] });
    assert.deepEqual(parseBackend('etcds://etcd.example:2379'), { kind: 'etcd', endpoints: ['https://etcd.example:2379'] });
    assert.deepEqual(parseBackend('etcd+https://Etcd.Example'), { kind: 'etcd', endpoints: ['https://etcd.example:2379'] });
  });
  it('--endpoint adds members (etcd only), deduplicated', () => {
    const spec = withEndpoints(parseBackend('etcd://a:2379'), ['b:2379', 'http://a:2379', 'https://c:1']);
    assert.deepEqual(spec, { kind: 'etcd', endpoints: ['http://a:2379', 'http://b:2379', 'https://c:1'] });
    assert.throws(() => withEndpoints(parseBackend('memory'), ['x:1']), /--endpoint only applies to etcd/);
  });
  it('consul: address, default port, TLS, CONSUL_HTTP_ADDR for bare "consul"', () => {
    assert.deepEqual(parseBackend('consul://127.0.0.1:8500'), { kind: 'consul', url: 'http://127.0.0.1:8500' });
    assert.deepEqual(parseBackend('consuls://consul.local'), { kind: 'consul', url: 'https://consul.local:8500' });
    assert.deepEqual(parseBackend('consul'), { kind: 'consul', url: 'http://127.0.0.1:8500' });
    assert.deepEqual(parseBackend('consul', { CONSUL_HTTP_ADDR: '10.1.1.1:8501', CONSUL_HTTP_SSL: 'true' }), { kind: 'consul', url: 'https://10.1.1.1:8501' });
    assert.deepEqual(parseBackend('consul', { CONSUL_HTTP_ADDR: 'http://agent:8500' }), { kind: 'consul', url: 'http://agent:8500' });
    assert.throws(() => parseBackend('consul://a:1,b:2'), /one agent address/);
  });
  it('kubernetes kinds and the k8s alias; memory', () => {
    assert.deepEqual(parseBackend('kubernetes'), { kind: 'kubernetes', lockKind: 'Lease' });
    assert.deepEqual(parseBackend('kubernetes:endpoints'), { kind: 'kubernetes', lockKind: 'Endpoints' });
    assert.deepEqual(parseBackend('k8s:ConfigMap'), { kind: 'kubernetes', lockKind: 'ConfigMap' });
    assert.deepEqual(parseBackend('memory'), { kind: 'memory' });
    assert.throws(() => parseBackend('kubernetes:secret'), /unknown Kubernetes lock kind "secret".*kubernetes:lease/);
  });
  it('refuses what it cannot use, saying what to write instead', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /--backend is empty/],
      ['redis://x:6379', /unknown backend scheme "redis:\/\/"/],
      ['127.0.0.1:2379', /unknown backend "127.0.0.1:2379"/],
      ['http://127.0.0.1:2379', /does not say which backend/],
      ['etcd://', /missing host/],
      ['etcd://a:0', /out of range/],
      ['etcd://a:', /empty port/],
      ['etcd://a:2379/v3', /not host:port/],
      ['etcd://u:p@a:2379', /credentials do not belong in the URL/],
      ['etcd://::1:2379', /IPv6 goes in brackets/],
    ];
    for (const [value, pattern] of bad) assert.throws(() => parseBackend(value), (e: unknown) => e instanceof UsageError && pattern.test(e.message), value);
  });
});

describe('durations and flags', () => {
  it('parses units, refuses bare numbers and junk', () => {
    assert.equal(parseDuration('ttl', '15s'), 15_000);
    assert.equal(parseDuration('ttl', '1500ms'), 1500);
    assert.equal(parseDuration('ttl', '1m30s'), 90_000);
    assert.equal(parseDuration('ttl', '0.5s'), 500);
    assert.throws(() => parseDuration('ttl', '15'), /needs a unit: 15s or 15ms/);
    assert.throws(() => parseDuration('ttl', '15 s'), /not a duration/);
    assert.throws(() => parseDuration('ttl', '0s'), /more than 0/);
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(250), '250ms');
  });
  it('run: command after --, flags before; identity defaults to hostname-pid; env fallbacks', () => {
    const a = parseRunArgs(['--backend', 'etcd://127.0.0.1:2379', '--key', '/service/demo/leader', '--ttl', '10s', '--once', '--', 'pg_ctl', '--', '-x'], { LEADERLOCK_IDENTITY: 'node-1' });
    assert.equal(a.command, 'pg_ctl');
    assert.deepEqual(a.commandArgs, ['--', '-x']);
    assert.equal(a.identity, 'node-1');
    assert.equal(a.ttlMs, 10_000);
    assert.equal(a.graceMs, 2000);
    assert.equal(a.once, true);
    const b = parseRunArgs(['--key', 'k', '--', 'true'], { LEADERLOCK_BACKEND: 'memory' });
    assert.match(b.identity, /-\d+$/);
  });
  it('auth and TLS flags are checked against the backend', () => {
    const a = parseReadArgs('status', ['--backend', 'etcds://h:2379', '--key', 'k', '--user', 'root:pw', '--cacert', '/ca.pem'], {});
    assert.equal(a.user, 'root');
    assert.equal(a.password, 'pw');
    assert.deepEqual(a.tls, { caFile: '/ca.pem' });
    const c = parseReadArgs('status', ['--backend', 'consul', '--key', 'k'], { CONSUL_HTTP_TOKEN: 't0k' });
    assert.equal(c.token, 't0k');
    const bad: Array<[string[], RegExp]> = [
      [['--backend', 'etcd://h:2379', '--key', 'k', '--cacert', '/ca'], /use etcds:\/\//],
      [['--backend', 'consul://h', '--key', 'k', '--user', 'x'], /apply to etcd/],
      [['--backend', 'etcds://h', '--key', 'k', '--cert', '/c'], /--cert and --cert-key go together/],
      [['--backend', 'memory', '--key', 'k', '--namespace', 'x'], /only applies to --backend kubernetes/],
      [['--backend', 'etcd://h', '--key', 'k', '--password', 'x'], /--password needs --user/],
      [['--backend', 'memory', '--key', 'k', 'extra'], /unexpected argument "extra"/],
    ];
    for (const [argv, pattern] of bad) assert.throws(() => parseReadArgs('status', argv, {}), (e: unknown) => e instanceof UsageError && pattern.test(e.message), argv.join(' '));
  });
});
