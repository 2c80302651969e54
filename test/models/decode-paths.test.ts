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
    // The 40-token prompt makes prefill chunks of ≥ 16 query rows, which take the tiled
    // attention kernel (reading the cache in place at a batch stride ≠ the dense one).
    const long = Array.from({ length: 40 }, (_, j) => (j * 37 + 11) % 200);
    const prompts = [f.expected.greedy[0]!.prompt, f.expected.greedy[1]!.prompt, [7, 8, 9], long];
    const live = backendInfo().liveBytes;
    for (const temperature of [0, 0.8]) {
      const opts = { prompts, maxNewTokens: 12, temperature, seeds: [1, 2, 3, 4], stopTokens: [] };
      const whole = generate(model, { ...opts, prefillRows: 1 << 20 });
      for (const prefillRows of [1, 4, 7, 20]) {
        const chunked = generate(model, { ...opts, prefillRows });
        prompts.forEach((_, i) => {
          const label = `T=${temperature} prefillRows=${prefillRows} sequence ${i}`;
          assert.deepEqual(chunked[i]!.tokens, whole[i]!.tokens, label);
          assert.ok(maxAbsDiff(chunked[i]!.logProbs, whole[i]!.logProbs) < 1e-4, label);
        });
      }
      // Each sequence alone (one row: the zero-copy KV cache view) equals its row of the batch.
      prompts.forEach((p, i) => {
        const [alone] = generate(model, { ...opts, prompts: [p], seeds: [i + 1] });
        assert.deepEqual(alone!.tokens, whole[i]!.tokens, `T=${temperature} sequence ${i} alone`);
        assert.ok(maxAbsDiff(alone!.logProbs, whole[i]!.logProbs) < 1e-4, `sequence ${i} alone`);
      });
    }
    assert.equal(backendInfo().liveBytes, live, 'generation frees every intermediate');
    assert.throws(
      () => generate(model, { prompts, maxNewTokens: 2, prefillRows: 0 }),
      (e: unknown) => e instanceof ConfigError && /prefillRows/.test((e as Error).message),
    );
    model.release();
  });
}
