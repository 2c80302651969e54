// Shared helpers for the model tests: the tiny-model fixtures written by
// scripts/fixtures_models.py, and a minimal float32 safetensors reader (test-only; the real
// reader with validation lives in src/io once that lands).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configFromHf, type ModelConfig } from '../../src/models/config.js';

export const REGEN = '~/.cache/rl4qe/oracle/bin/python scripts/fixtures_models.py';
export const FIXTURES = path.join('test', 'fixtures', 'models');

export interface RawTensor {
  data: Float32Array;
  shape: number[];
}

/** Reads an F32-only safetensors file into name → tensor. */
export function readSafetensorsF32(file: string): Map<string, RawTensor> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + n;
  const out = new Map<string, RawTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (h.dtype !== 'F32') throw new Error(`${file}: ${name} is ${h.dtype}, expected F32`);
    const [s, e] = h.data_offsets;
    const bytes = buf.subarray(base + s, base + e);
    const data = new Float32Array(bytes.byteLength / 4);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * 4);
    out.set(name, { data, shape: h.shape });
  }
  return out;
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
