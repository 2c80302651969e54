// Real weights end to end: SmolLM2-135M-Instruct Q4_1 GGUF (the offline test model), loaded and
// dequantised by rl4qe, greedy-decoded, against two oracles on the same file:
//  - transformers on the float32-dequantised GGUF (scripts/fixtures_gguf_hf.py): the same
//    arithmetic as ours, so tokens must be identical;
//  - llama.cpp via node-llama-cpp (scripts/fixtures_llamacpp.mjs): it multiplies Q4_1 weights with
//    8-bit-quantised activations, so it may leave float32 greedy at near-ties. We must agree with it
//    wherever float32 greedy (transformers) does, and the test reports where the two part.
// Default: one short prompt, 12 tokens (the reference backend is slow). RL4QE_LONG=1: all three
// prompts, 64 tokens each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { noGrad, reshape, slice, logits as headLogits } from '../../src/tensor/index.js';
import { loadGgufModel } from '../../src/models/load.js';
import { generate } from '../../src/sampling/generate.js';
import { cachePaths } from '../../src/util/paths.js';

interface Case {
  prompt: number[];
  tokens: number[];
}
const hf = JSON.parse(readFileSync('test/fixtures/models/hf-smollm2-gguf.json', 'utf8')) as {
  cases: Array<Case & { firstLogitsTop: { ids: number[]; values: number[] } }>;
};
const lc = JSON.parse(readFileSync('test/fixtures/models/llamacpp-smollm2.json', 'utf8')) as {
  cases: Case[];
};
const file = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const LONG = process.env.RL4QE_LONG === '1';

function firstDiff(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

test('SmolLM2-135M GGUF: greedy tokens equal transformers (same file, float32) and llama.cpp where float32 allows', (t) => {
  assert.ok(
    existsSync(file),
    `missing test model ${file}: run \`node scripts/fetch-test-models.mjs\` (then re-run the tests)`,
  );
  const { model, config } = loadGgufModel(file);
  assert.equal(config.numLayers, 30);
  assert.equal(config.tieEmbeddings, true);
  const picks = LONG ? [0, 1, 2] : [1];
  const N = LONG ? 64 : 12;
  // First-step logits: top-10 of transformers within 2e-3.
  const c0 = hf.cases[picks[0] as number]!;
  const lg = noGrad(() => {
    const T = c0.prompt.length;
    const h = model.forward({ ids: Int32Array.from(c0.prompt), shape: [1, T] });
    return headLogits(reshape(slice(h, 1, T - 1, T), [1, config.hiddenSize]), model.headWeight())
      .data;
  });
  c0.firstLogitsTop.ids.forEach((id, i) => {
    const d = Math.abs((lg[id] as number) - (c0.firstLogitsTop.values[i] as number));
    assert.ok(d < 2e-3, `logit of token ${id}: ${lg[id]} vs ${c0.firstLogitsTop.values[i]}`);
  });
  const prompts = picks.map((i) => hf.cases[i]!.prompt);
  const outs = generate(model, { prompts, maxNewTokens: N, temperature: 0, stopTokens: [] });
  picks.forEach((ci, j) => {
    const ours = outs[j]!.tokens;
    const hfT = hf.cases[ci]!.tokens.slice(0, N);
    const lcT = lc.cases[ci]!.tokens.slice(0, N);
    assert.deepEqual(lc.cases[ci]!.prompt, prompts[j], 'fixtures share prompts');
    assert.deepEqual(ours, hfT, `case ${ci}: tokens vs transformers`);
    const hfVsLc = firstDiff(hfT, lcT);
    const oursVsLc = firstDiff(ours, lcT);
    t.diagnostic(
      `case ${ci}: agrees with llama.cpp for ${oursVsLc}/${N} tokens (transformers float32: ${hfVsLc}/${N})`,
    );
    assert.ok(oursVsLc >= hfVsLc, `case ${ci}: left llama.cpp at ${oursVsLc} < ${hfVsLc}`);
  });
  model.release();
});
