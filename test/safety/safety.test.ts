import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSchedule } from './schedule.js';

// `npm test` runs 1,000 schedules; LEADERLOCK_SAFETY_RUNS=10000 runs more, LEADERLOCK_SAFETY_SEED=n
// replays one (the seed of a failure is printed in the assertion message).
const RUNS = Number(process.env.LEADERLOCK_SAFETY_RUNS ?? 1_000);
const FIRST = Number(process.env.LEADERLOCK_SAFETY_SEED ?? 1);
const ONLY_ONE = process.env.LEADERLOCK_SAFETY_SEED !== undefined && process.env.LEADERLOCK_SAFETY_RUNS === undefined;
const PARALLEL = 8;

describe('safety under randomized faults (memory backend, virtual clocks with drift, pauses)', () => {
  it(`never two valid leaders, tokens strictly increase, no term starts beside an earlier term's running work before its validUntil — ${ONLY_ONE ? `seed ${FIRST}` : `${RUNS} schedules from seed ${FIRST}`}`, async () => {
    const total = ONLY_ONE ? 1 : RUNS;
    let terms = 0;
    let faults = 0;
    for (let batch = 0; batch < total; batch += PARALLEL) {
      const seeds = Array.from({ length: Math.min(PARALLEL, total - batch) }, (_, i) => FIRST + batch + i);
      const results = await Promise.all(seeds.map((s) => runSchedule(s)));
      for (const r of results) {
        terms += r.intervals.length;
        faults += r.faults.length;
        assert.deepEqual(
          r.violations,
          [],
          `seed ${r.seed} (replay: LEADERLOCK_SAFETY_SEED=${r.seed} npm test -- safety)\nfaults:\n  ${r.faults.join('\n  ')}`,
        );
      }
    }
    // The schedules must actually exercise elections, or the property proves nothing.
    assert.ok(terms >= total * 2, `only ${terms} terms in ${total} schedules`);
    console.log(`# safety: ${total} schedules, ${terms} terms, ${faults} faults, no violation`);
  });

  it('the checker is not vacuous: clocks slower than the drift tolerance do produce overlaps it reports', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => runSchedule(10_000 + i, { slowestRate: 0.5 })));
    const found = results.filter((r) => r.violations.some((v) => v.startsWith('overlap') || v.includes('both valid')));
    assert.ok(found.length > 0, 'a 2× slow clock must be caught at least once in 16 schedules');
  });
});
