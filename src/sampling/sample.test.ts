import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  argmaxRow,
  logSoftmaxAt,
  sampleRow,
  samplingDistribution,
  validateSampling,
} from './sample.js';
import { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';

const logp = (ps: number[]): Float32Array => Float32Array.from(ps, (p) => Math.log(p));

test('sample: argmax takes the first maximum; temperature 0 is greedy', () => {
  assert.equal(argmaxRow([1, 3, 3, 2]), 1);
  const rng = new Rng(1);
  assert.equal(sampleRow([0.1, 5, 0.2], { temperature: 0 }, rng), 1);
  assert.equal(sampleRow([0.1, 5, 0.2, 4.9], { topK: 1 }, rng), 1, 'top-k 1 is greedy');
});

test('sample: log-softmax matches the definition', () => {
  const x = [1, 2, 3];
  const z = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
  assert.ok(Math.abs(logSoftmaxAt(x, 2) - (3 - z)) < 1e-12);
});

test('sample: top-p follows transformers (drop ascending cumulative mass ≤ 1 − p)', () => {
  const l = logp([0.05, 0.5, 0.15, 0.3]);
  const d8 = samplingDistribution(l, { topP: 0.8 });
  assert.deepEqual([...d8.ids], [1, 3]);
  assert.ok(Math.abs((d8.probs[0] as number) - 0.5 / 0.8) < 1e-6);
  const d81 = samplingDistribution(l, { topP: 0.81 });
  assert.deepEqual([...d81.ids], [1, 3, 2]);
  const tiny = samplingDistribution(l, { topP: 0.01 });
  assert.deepEqual([...tiny.ids], [1], 'always keeps the most likely token');
});

test('sample: temperature and top-k reshape the distribution', () => {
  const l = Float32Array.from([0, 1, 2, 3]);
  const d = samplingDistribution(l, { temperature: 2 });
  const z = [0, 0.5, 1, 1.5].map(Math.exp).reduce((a, b) => a + b);
  assert.deepEqual([...d.ids], [3, 2, 1, 0]);
  assert.ok(Math.abs((d.probs[0] as number) - Math.exp(1.5) / z) < 1e-9);
  const k2 = samplingDistribution(l, { topK: 2 });
  assert.deepEqual([...k2.ids], [3, 2]);
  assert.ok(Math.abs((k2.probs[0] as number) - Math.exp(3) / (Math.exp(3) + Math.exp(2))) < 1e-6);
});

test('sample: draws follow the distribution and are reproducible from the seed', () => {
  const l = logp([0.2, 0.5, 0.3]);
  const draw = (seed: number): number[] => {
    const rng = new Rng(seed);
    return Array.from({ length: 20000 }, () => sampleRow(l, {}, rng));
  };
  const a = draw(7);
  assert.deepEqual(a.slice(0, 50), draw(7).slice(0, 50));
  assert.notDeepEqual(a.slice(0, 50), draw(8).slice(0, 50));
  const freq = [0, 1, 2].map((k) => a.filter((x) => x === k).length / a.length);
  [0.2, 0.5, 0.3].forEach((p, k) =>
    assert.ok(Math.abs((freq[k] as number) - p) < 0.015, `token ${k}`),
  );
});

test('sample: invalid parameters are ConfigErrors', () => {
  assert.throws(() => validateSampling({ temperature: -1 }), ConfigError);
  assert.throws(() => validateSampling({ topP: 0 }), ConfigError);
  assert.throws(() => validateSampling({ topK: 1.5 }), ConfigError);
});
