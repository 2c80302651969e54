// GGUF LoRA adapter export: llama.cpp's layout and metadata, and gguf-py reads our files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachePaths } from '../../util/paths.js';
import { GgufFile } from './reader.js';
import { writeGgufLoraAdapter } from './lora.js';
import { GgmlType } from './types.js';

const SCRIPT = fileURLToPath(new URL('../../../../scripts/fixtures_gguf.py', import.meta.url));

function adapter(dir: string, type: GgmlType.F32 | GgmlType.F16) {
  const r = 4;
  const nIn = 64;
  const nOut = 96;
  const a = Float32Array.from({ length: r * nIn }, (_, i) => Math.cos(i) * 0.1);
  const b = Float32Array.from({ length: nOut * r }, (_, i) => Math.sin(i) * 0.01);
  const file = path.join(dir, `adapter-${type}.gguf`);
  writeGgufLoraAdapter(file, {
    architecture: 'qwen2',
    alpha: 8,
    type,
    name: 'test adapter',
    pairs: [{ base: 'blk.0.attn_q.weight', a, b, r, nIn, nOut }],
  });
  return { file, a, b, r, nIn, nOut };
}

test('LoRA adapter in llama.cpp layout: a dims [nIn, r], b dims [r, nOut], metadata', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-lora-'));
  const { file, a, r, nIn, nOut } = adapter(dir, GgmlType.F32);
  using f = GgufFile.open(file);
  assert.equal(f.getString('general.type'), 'adapter');
  assert.equal(f.getString('adapter.type'), 'lora');
  assert.equal(f.getNumber('adapter.lora.alpha'), 8);
  assert.equal(f.architecture, 'qwen2');
  const ta = f.tensor('blk.0.attn_q.weight.lora_a');
  const tb = f.tensor('blk.0.attn_q.weight.lora_b');
  assert.deepEqual(ta.dims, [nIn, r]);
  assert.deepEqual(tb.dims, [r, nOut]);
  assert.equal(ta.dims[1], tb.dims[0], "llama.cpp's transposition check");
  assert.deepEqual(f.readTensorF32(ta), a);
  fs.rmSync(dir, { recursive: true });
});

test('gguf-py reads our GGUF files (oracle venv)', (t) => {
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  if (!fs.existsSync(py)) {
    t.skip(`oracle venv missing (${py})`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-lora-'));
  for (const type of [GgmlType.F32, GgmlType.F16] as const) {
    const { file, a, b } = adapter(dir, type);
    const r = spawnSync(py, [SCRIPT, '--read', file], { encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as {
      fields: Record<string, unknown>;
      tensors: Record<string, { type: string; shape: number[]; values: number[] }>;
    };
    assert.equal(got.fields['general.type'], 'adapter');
    assert.equal(got.fields['adapter.type'], 'lora');
    assert.equal(got.fields['adapter.lora.alpha'], 8);
    const ga = got.tensors['blk.0.attn_q.weight.lora_a'];
    const gb = got.tensors['blk.0.attn_q.weight.lora_b'];
    assert.equal(ga.type, GgmlType[type]);
    assert.deepEqual(ga.shape, [64, 4]); // gguf-py lists ggml dims (ne0 first)
    assert.deepEqual(gb.shape, [4, 96]);
    using f = GgufFile.open(file);
    assert.deepEqual(Float32Array.from(ga.values), f.readTensorF32('blk.0.attn_q.weight.lora_a'));
    assert.deepEqual(Float32Array.from(gb.values), f.readTensorF32('blk.0.attn_q.weight.lora_b'));
    if (type === GgmlType.F32) {
      assert.deepEqual(Float32Array.from(ga.values), a);
      assert.deepEqual(Float32Array.from(gb.values), b);
    }
  }
  fs.rmSync(dir, { recursive: true });
});
