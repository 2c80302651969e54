import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../util/errors.js';
import { lrAt, type LrSchedule } from './schedule.js';

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-15;

test('lrAt: warm-up from 0, then constant / linear / cosine as transformers, by hand', () => {
  const base = { lr: 1e-3, warmupSteps: 10, totalSteps: 110 };
  // step → [constant, linear, cosine]; after warm-up progress = (step − 10) / 100.
  const table: [number, number, number, number][] = [
    [0, 0, 0, 0], // the first step of a warm-up has lr 0, as transformers' LambdaLR
    [5, 5e-4, 5e-4, 5e-4],
    [10, 1e-3, 1e-3, 1e-3],
    // progress 0.25: linear (110 − 35)/100 = 0.75; cosine ½(1 + cos(π/4)) = 0.8535533905932737
    [35, 1e-3, 7.5e-4, 8.535533905932737e-4],
    [60, 1e-3, 5e-4, 5e-4], // progress 0.5
    [110, 1e-3, 0, 0], // the end
    [200, 1e-3, 0, 0], // past the end: 0 (cosine clamped, see lrAt)
  ];
  const kinds: LrSchedule[] = ['constant', 'linear', 'cosine'];
  for (const [step, ...want] of table) {
    kinds.forEach((schedule, i) => {
      const got = lrAt(step, { ...base, schedule });
      assert.ok(close(got, want[i]), `${schedule} at step ${step}: ${got} vs ${want[i]}`);
    });
  }
  // Without warm-up the first step has the full rate.
  for (const schedule of kinds) {
    assert.equal(lrAt(0, { lr: 2e-4, warmupSteps: 0, totalSteps: 50, schedule }), 2e-4);
  }
  assert.ok(
    close(lrAt(25, { lr: 2e-4, warmupSteps: 0, totalSteps: 50, schedule: 'linear' }), 1e-4),
  );
});

test('lrAt: invalid options are ConfigErrors', () => {
  const o = { lr: 1e-3, warmupSteps: 2, totalSteps: 10, schedule: 'linear' as const };
  assert.throws(() => lrAt(-1, o), ConfigError);
  assert.throws(() => lrAt(1.5, o), ConfigError);
  assert.throws(() => lrAt(0, { ...o, lr: -1 }), ConfigError);
  assert.throws(() => lrAt(0, { ...o, totalSteps: 0 }), ConfigError);
  assert.throws(() => lrAt(0, { ...o, warmupSteps: -2 }), ConfigError);
  assert.throws(() => lrAt(5, { ...o, schedule: 'step' as LrSchedule }), ConfigError);
});
