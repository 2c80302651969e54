// The GGUF reader on the real offline test models (scripts/fetch-test-models.mjs). Fails, with the
// command to run, when a model is missing. Under RL4QE_LONG=1 every tensor is dequantised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GgufFile } from '../../src/io/gguf/index.js';
import { cachePaths } from '../../src/util/paths.js';

const FETCH = 'node scripts/fetch-test-models.mjs';
const FIXTURE = fileURLToPath(
  new URL('../../../test/fixtures/io/gguf/dequant.gguf', import.meta.url),
);

function model(name: string): string {
  const p = path.join(cachePaths.testModels(), name);
  if (!fs.existsSync(p)) assert.fail(`test model ${p} is missing; run: ${FETCH}`);
  return p;
}

const CASES = [
  {
    file: 'smollm2-135m-instruct-q4_1.gguf',
    arch: 'llama',
    tensors: 272,
    blocks: 30,
    vocab: 49152,
    fixture: { 'Q8_0.model': 'token_embd.weight', 'Q4_1.model': 'blk.0.ffn_down.weight' },
  },
  {
    file: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf',
    arch: 'qwen2',
    tensors: 291,
    blocks: 24,
    vocab: 151936,
    fixture: {
      'Q5_0.model': 'token_embd.weight',
      'Q4_K.model': 'blk.11.ffn_down.weight',
      'Q6_K.model': 'blk.0.ffn_down.weight',
    },
  },
];

for (const c of CASES) {
  test(`GGUF test model ${c.file}: metadata, and first rows equal gguf-py's dequantisation`, () => {
    const t0 = performance.now();
    using f = GgufFile.open(model(c.file));
    const headerMs = performance.now() - t0;
    assert.equal(f.version, 3);
    assert.equal(f.architecture, c.arch);
    assert.equal(f.tensors.length, c.tensors);
    assert.equal(f.getNumber(`${c.arch}.block_count`), c.blocks);
    assert.equal(f.getStringArray('tokenizer.ggml.tokens').length, c.vocab);
    assert.equal(f.getString('tokenizer.ggml.model'), 'gpt2');
    using fx = GgufFile.open(FIXTURE);
    for (const [fixtureName, tensorName] of Object.entries(c.fixture)) {
      const expected = fx.readTensorF32(`${fixtureName}.f32`);
      const t = f.tensor(tensorName);
      // The fixture holds the first elements of the tensor (gguf-py dequantised them).
      const rows = Math.ceil(expected.length / t.dims[0]);
      const got = f.readRowsF32(t, 0, rows).subarray(0, expected.length);
      assert.deepEqual(got, expected, `${c.file}:${tensorName} first ${expected.length} values`);
    }
    if (process.env.RL4QE_LONG === '1') {
      const t1 = performance.now();
      let n = 0;
      for (const t of f.tensors) n += f.readTensorF32(t).length;
      const ms = performance.now() - t1;
      console.log(
        `# ${c.file}: header ${headerMs.toFixed(0)} ms, dequant ${n} weights ${ms.toFixed(0)} ms`,
      );
    }
  });
}
