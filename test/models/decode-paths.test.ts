// The decoding fast paths of src/sampling against the plain ones on the tiny random-weight
// fixtures (scripts/fixtures_models.py): prefill in chunks through the KV cache gives the same
// tokens and log-probs as one whole-prompt forward, batched and with left padding, and frees
// every intermediate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { backendInfo } from '../../src/tensor/index.js';
import { loadSafetensorsModel } from '../../src/models/load.js';
import { generate } from '../../src/sampling/generate.js';
import { ConfigError } from '../../src/util/errors.js';
import { FIXTURES, loadFixture, maxAbsDiff } from './fixtures.js';

for (const name of ['tiny-llama', 'tiny-qwen2'] as const) {
  test(`${name}: chunked prefill equals one-shot prefill (batched, left-padded)`, () => {
    const f = loadFixture(name);
    const { model } = loadSafetensorsModel(path.join(FIXTURES, f.name));
    const prompts = [f.expected.greedy[0]!.prompt, f.expected.greedy[1]!.prompt, [7, 8, 9]];
    const live = backendInfo().liveBytes;
    for (const temperature of [0, 0.8]) {
      const opts = { prompts, maxNewTokens: 12, temperature, seeds: [1, 2, 3], stopTokens: [] };
      const whole = generate(model, { ...opts, prefillRows: 1 << 20 });
      for (const prefillRows of [1, 4, 7]) {
        const chunked = generate(model, { ...opts, prefillRows });
        prompts.forEach((_, i) => {
          const label = `T=${temperature} prefillRows=${prefillRows} sequence ${i}`;
          assert.deepEqual(chunked[i]!.tokens, whole[i]!.tokens, label);
          assert.ok(maxAbsDiff(chunked[i]!.logProbs, whole[i]!.logProbs) < 1e-4, label);
        });
      }
      // Greedy of sequence 0 alone (one row: the zero-copy KV cache view) equals the batch.
      const [alone] = generate(model, { ...opts, prompts: [prompts[0]!], seeds: [1] });
      assert.deepEqual(alone!.tokens, whole[0]!.tokens, `T=${temperature} batch 1`);
    }
    assert.equal(backendInfo().liveBytes, live, 'generation frees every intermediate');
    assert.throws(
      () => generate(model, { prompts, maxNewTokens: 2, prefillRows: 0 }),
      (e: unknown) => e instanceof ConfigError && /prefillRows/.test((e as Error).message),
    );
    model.release();
  });
}
