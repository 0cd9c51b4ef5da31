import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalise, skipReason, table } from '../../bench/run.js';

describe('npm run bench: merging the benchmarks\' result files', () => {
  it('maps every result shape onto median / p99 / in-run baseline / ratio', () => {
    const raw = normalise('kube-lock', { rows: [
      { op: 'raw GET', requests: 'GET', n: 10, medianMs: 0.5, p99Ms: 2, rawMedianMs: 0.5, ratio: 1 },
      { op: 'renew', requests: 'PUT', n: 10, medianMs: 0.6, p99Ms: 3, rawMedianMs: 0.4, ratio: 1.5 },
    ] });
    assert.equal(raw[0]!.baseline, undefined, 'a raw row is its own baseline: no ratio shown');
    assert.equal(raw[0]!.ratio, undefined);
    assert.deepEqual({ b: raw[1]!.baseline, m: raw[1]!.baselineMedian, r: raw[1]!.ratio }, { b: 'raw requests (PUT)', m: 0.4, r: 1.5 });

    const etcd = normalise('etcd', { rows: [{ metric: 'handover', n: 5, unit: 'ms', median: 13, p99: 90, baseline: 'etcdctl elect', baselineMedian: 9, ratio: 1.44 }, { metric: 'scale', n: 1000, unit: '% CPU', median: 3, p99: 3 }] });
    assert.deepEqual({ m: etcd[0]!.median, p: etcd[0]!.p99, r: etcd[0]!.ratio, u: etcd[1]!.unit }, { m: 13, p: 90, r: 1.44, u: '% CPU' });

    const kf = normalise('kube-failover', { rows: [
      { fault: 'refused', via: 'service', n: 15, medianMs: 100, p99Ms: 400 },
      { fault: 'refused', via: 'endpoints', n: 15, medianMs: 20, p99Ms: 70 },
    ] });
    assert.equal(kf[0]!.ratio, undefined);
    assert.deepEqual({ metric: kf[1]!.metric, b: kf[1]!.baseline, r: kf[1]!.ratio }, { metric: 'refused API server, via endpoints', b: 'via service', r: 0.2 });
    assert.deepEqual(normalise('x', { nothing: true }), []);
  });

  it('prints one markdown table headed by date and machine, failures included', () => {
    const text = table(
      {
        date: '2026-11-26T03:00:00.000Z',
        machine: 'AMD EPYC × 2',
        node: 'v20.20.2',
        quick: false,
        benches: {
          memory: { status: 'ok', date: '', seconds: 1, command: '', rows: normalise('memory', { rows: [{ op: 'handover', n: 3, medianMs: 0.25, p99Ms: 12.5, baseline: 'polling', baselineMedianMs: 150, ratio: 0.0017 }] }) },
          etcd: { status: 'failed', date: '', seconds: 1, command: '', rows: [], error: 'etcd not found' },
        },
      },
      ['memory', 'etcd'],
    );
    assert.match(text, /^Measured 2026-11-26 on AMD EPYC × 2, Node v20.20.2; command: `npm run bench`\./);
    assert.match(text, /\| memory \| handover \| 3 \| 250 µs \| 12.5 ms \| polling \(150 ms\) \| 0.002× \|/);
    assert.match(text, /\| etcd \| \*\*failed\*\*: etcd not found \|/);
  });

  it('a benchmark whose servers are not here is skipped, not failed, only when it exits 0 with a skipped: line', () => {
    const line = 'skipped: kube-real needs the real-server tier (kube-apiserver is missing)\n';
    assert.equal(skipReason(0, `some output\n${line}`), 'kube-real needs the real-server tier (kube-apiserver is missing)');
    assert.equal(skipReason(1, line), undefined, 'a crash that printed the line still fails');
    assert.equal(skipReason(0, '| table |\nwrote bench/results/x.json\n'), undefined);
    assert.equal(skipReason(0, 'not skipped: mid-line\n'), undefined);
  });
});
