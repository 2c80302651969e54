// refiner.compute (src/train/config.ts): the default, --set, 'auto' weights under bf16, and the
// refusal of bf16 with full fine-tuning (nothing is frozen) before any model is loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTrainConfig, refinerWeights, resolveTrainConfig, type TrainConfig } from './config.js';

const BASE = { refiner: { model: 'm.gguf' }, reward: { target: { kind: 'rewrite' } } };

function resolve(...values: unknown[]): TrainConfig {
  return resolveTrainConfig(values.map((value, i) => ({ source: `layer${i}`, value })));
}

test('refiner.compute: fp32 by default; bf16 by --set; auto weights load a GGUF as float32 for bf16', () => {
  assert.equal(resolve(BASE).refiner.compute, 'fp32');
  assert.equal(refinerWeights(resolve(BASE)), 'quantized');
  const b = resolve(BASE, { refiner: { compute: 'bf16' } });
  assert.equal(b.refiner.compute, 'bf16');
  assert.equal(refinerWeights(b), 'float32', 'bf16 rounds float32 weights: auto → float32');
  // An explicit quantized choice is kept (its GGUF blocks then stay as they are).
  assert.equal(refinerWeights(resolve(b, { refiner: { weights: 'quantized' } })), 'quantized');
  const s = loadTrainConfig({
    files: [],
    sets: ['refiner.model=m.gguf', 'reward.target.kind=rewrite', 'refiner.compute=bf16'],
  });
  assert.equal(s.refiner.compute, 'bf16');
});

test('refiner.compute: an unknown mode and bf16 with full fine-tuning are ConfigErrors naming the keys', () => {
  assert.throws(
    () => resolve(BASE, { refiner: { compute: 'fp16' } }),
    /refiner\.compute[\s\S]*fp32[\s\S]*bf16/,
  );
  assert.throws(
    () => resolve(BASE, { refiner: { compute: 'bf16' }, adapter: { kind: 'full' } }),
    /\(refiner\.compute\): impossible combination: the bf16 compute mode[\s\S]*full fine-tuning freezes none[\s\S]*adapter\.kind = "full"/,
  );
});
