// Shared helpers for the model tests: the tiny-model fixtures written by
// scripts/fixtures_models.py, read with src/io/safetensors.
import { readFileSync } from 'node:fs';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';
import path from 'node:path';
import { configFromHf, type ModelConfig } from '../../src/models/config.js';

export const REGEN = '~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py';
export const FIXTURES = path.join('test', 'fixtures', 'models');

export interface RawTensor {
  data: Float32Array;
  shape: number[];
}

/** Reads a float32 safetensors file into name → tensor (through src/io/safetensors). */
export function readSafetensorsF32(file: string): Map<string, RawTensor> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.tensors.map((t) => [t.name, { data: f.readF32(t), shape: [...t.shape] }]));
  } finally {
    f.close();
  }
}

export interface GreedyCase {
  prompt: number[];
  tokens: number[];
  minMargin: number;
}

export interface Expected {
  inputIds: number[][];
  positions: number[][];
  loss: number;
  loraLoss: number;
  lora: { r: number; alpha: number; targets: string[] };
  adamw: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    steps: number;
    clipNorm: number;
  };
  adamwLosses: number[];
  adamwGradNorms: number[];
  greedy: GreedyCase[];
}

export interface Fixture {
  name: string;
  config: ModelConfig;
  weights: Map<string, RawTensor>;
  lora: Map<string, RawTensor>;
  expectedTensors: Map<string, RawTensor>;
  expected: Expected;
}

export function loadFixture(name: 'tiny-llama' | 'tiny-qwen2'): Fixture {
  const dir = path.join(FIXTURES, name);
  return {
    name,
    config: configFromHf(
      JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')),
      path.join(dir, 'config.json'),
    ),
    weights: readSafetensorsF32(path.join(dir, 'model.safetensors')),
    lora: readSafetensorsF32(path.join(dir, 'lora.safetensors')),
    expectedTensors: readSafetensorsF32(path.join(dir, 'expected.safetensors')),
    expected: JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected,
  };
}

/** Largest |a − b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Largest |a − b| / (max |b| over the array) — a scale-free error for gradients. */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s = Math.max(s, Math.abs(b[i] as number));
  return maxAbsDiff(a, b) / (s || 1);
}
