// The PEFT writer and plain reader without a model: round trip, the names PEFT uses, atomic
// replacement. (Parity with PeftModel.save_pretrained itself: test/io/export.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FormatError } from '../util/errors.js';
import { writeDirAtomic } from './atomic.js';
import { PEFT_PREFIX, readPeftAdapterTensors, writePeftAdapter } from './peft.js';
import { SafetensorsFile, writeSafetensors } from './safetensors/index.js';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-peft-'));

function params(): Map<string, { data: Float32Array; shape: number[] }> {
  const m = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const l of [0, 1]) {
    const n = `model.layers.${l}.self_attn.q_proj`;
    m.set(`${n}.lora_A.weight`, {
      data: Float32Array.from({ length: 2 * 8 }, (_, i) => i + l),
      shape: [2, 8],
    });
    m.set(`${n}.lora_B.weight`, {
      data: Float32Array.from({ length: 8 * 2 }, (_, i) => -i - l),
      shape: [8, 2],
    });
  }
  return m;
}

test('writePeftAdapter → readPeftAdapterTensors round trip; file names, prefix, metadata, sorted config', () => {
  const d = tmp();
  const out = path.join(d, 'adapter');
  const p = params();
  const r = writePeftAdapter(out, {
    params: p,
    r: 2,
    alpha: 4,
    dropout: 0,
    targets: ['q_proj'],
    baseModel: null,
  });
  assert.deepEqual(r.modules, [
    'model.layers.0.self_attn.q_proj',
    'model.layers.1.self_attn.q_proj',
  ]);
  assert.deepEqual(r.files, ['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.deepEqual(Object.keys(cfg), Object.keys(cfg).sort());
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.task_type, 'CAUSAL_LM');
  assert.equal(cfg.base_model_name_or_path, null);
  using f = SafetensorsFile.open(path.join(out, 'adapter_model.safetensors'));
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.ok(
    f.tensors.every((t) => t.name.startsWith(PEFT_PREFIX) && !t.name.includes('.default.')),
  );
  const back = readPeftAdapterTensors(out);
  assert.deepEqual([...back.keys()].sort(), [...p.keys()].sort());
  for (const [n, t] of p) assert.deepEqual(back.get(n), t, n);
  // F16 on request.
  writePeftAdapter(out, {
    params: p,
    r: 2,
    alpha: 4,
    dropout: 0,
    targets: ['q_proj'],
    baseModel: 'b',
    dtype: 'F16',
    overwrite: true,
  });
  using h = SafetensorsFile.open(path.join(out, 'adapter_model.safetensors'));
  assert.ok(h.tensors.every((t) => t.dtype === 'F16'));
  assert.deepEqual(fs.readdirSync(d), ['adapter'], 'no temporary directory is left');
  fs.rmSync(d, { recursive: true });
});

test('readPeftAdapterTensors: a raw state_dict name (.default) is accepted, other tensors are refused', () => {
  const d = tmp();
  writeSafetensors(path.join(d, 'adapter_model.safetensors'), {
    tensors: [
      {
        name: 'base_model.model.m.q_proj.lora_A.default.weight',
        shape: [1, 2],
        dtype: 'F32',
        data: new Float32Array(2),
      },
    ],
  });
  assert.deepEqual([...readPeftAdapterTensors(d).keys()], ['m.q_proj.lora_A.weight']);
  writeSafetensors(path.join(d, 'adapter_model.safetensors'), {
    tensors: [
      {
        name: 'base_model.model.m.q_proj.lora_magnitude_vector',
        shape: [2],
        dtype: 'F32',
        data: new Float32Array(2),
      },
    ],
  });
  assert.throws(() => readPeftAdapterTensors(d), FormatError);
  fs.rmSync(d, { recursive: true });
});

test('writeDirAtomic: a failing fill leaves the old directory as it was and nothing beside it', () => {
  const d = tmp();
  const out = path.join(d, 'x');
  writeDirAtomic(out, (t) => fs.writeFileSync(path.join(t, 'a'), '1'));
  assert.throws(
    () =>
      writeDirAtomic(
        out,
        (t) => {
          fs.writeFileSync(path.join(t, 'a'), '2');
          throw new Error('disk full');
        },
        { overwrite: true },
      ),
    /disk full/,
  );
  assert.equal(fs.readFileSync(path.join(out, 'a'), 'utf8'), '1');
  assert.deepEqual(fs.readdirSync(d), ['x']);
  writeDirAtomic(out, (t) => fs.writeFileSync(path.join(t, 'b'), '3'), { overwrite: true });
  assert.deepEqual(fs.readdirSync(out), ['b']);
  assert.deepEqual(fs.readdirSync(d), ['x']);
  fs.rmSync(d, { recursive: true });
});
