// Real weights, second architecture: the offline Qwen2.5-Coder-0.5B-Instruct GGUF (Q4_K_M: Q4_K,
// Q5_0, Q6_K, Q8_0 tensors; Qwen2 with q/k/v biases, tied embeddings, NEOX RoPE so no Q/K
// un-permutation), loaded by rl4qe and greedy-decoded, against transformers running the same
// file dequantised to float32 (scripts/fixtures_gguf_hf.py qwen): tokens must be identical.
// Default: one prompt, 6 tokens; RL4QE_LONG=1: both prompts, 32 tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadGgufModel } from '../../src/models/load.js';
import { generate } from '../../src/sampling/generate.js';
import { cachePaths } from '../../src/util/paths.js';

const fixture = JSON.parse(readFileSync('test/fixtures/models/hf-qwen2-gguf.json', 'utf8')) as {
  model: { file: string };
  cases: Array<{ prompt: number[]; tokens: number[] }>;
};
const file = path.join(cachePaths.testModels(), fixture.model.file);
const LONG = process.env.RL4QE_LONG === '1';

test('Qwen2.5-Coder-0.5B GGUF: greedy tokens equal transformers on the same file (float32)', () => {
  assert.ok(
    existsSync(file),
    `missing test model ${file}: run \`node scripts/fetch-test-models.mjs\` (then re-run the tests)`,
  );
  const { model, config } = loadGgufModel(file);
  assert.equal(config.architecture, 'qwen2');
  assert.equal(config.qkvBias, true);
  const picks = LONG ? fixture.cases.map((_, i) => i) : [0];
  const N = LONG ? 32 : 6;
  const outs = generate(model, {
    prompts: picks.map((i) => fixture.cases[i]!.prompt),
    maxNewTokens: N,
    temperature: 0,
    stopTokens: [],
  });
  picks.forEach((ci, j) => {
    assert.deepEqual(outs[j]!.tokens, fixture.cases[ci]!.tokens.slice(0, N), `case ${ci}`);
  });
  model.release();
});
