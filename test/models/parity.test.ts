// Parity of src/models + src/sampling with transformers/PEFT/torch on the tiny random-weight
// Llama and Qwen2 fixtures (scripts/fixtures_models.py), on the active backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backendInfo,
  noGrad,
  logits as headLogits,
  reshape,
  scale,
  sum,
} from '../../src/tensor/index.js';
import path from 'node:path';
import { loadSafetensorsModel } from '../../src/models/load.js';
import { addLora, type CausalLM } from '../../src/models/model.js';
import { generate } from '../../src/sampling/generate.js';
import { scoreTokens } from '../../src/sampling/score.js';
import { AdamW, clipGradNorm } from '../../src/nn/optim.js';
import { Rng } from '../../src/util/rng.js';
import { ConfigError } from '../../src/util/errors.js';
import { FIXTURES, loadFixture, maxAbsDiff, relMaxDiff, REGEN, type Fixture } from './fixtures.js';

const NAMES = ['tiny-llama', 'tiny-qwen2'] as const;
const hint = `(regenerate the fixture with: ${REGEN})`;

function build(f: Fixture): CausalLM {
  const { model, config } = loadSafetensorsModel(path.join(FIXTURES, f.name));
  assert.deepEqual(config, f.config);
  return model;
}

/** Full-recompute next-token logits for a [B, T] batch at every position: [B, T, V]. */
function allLogits(m: CausalLM, ids: number[][]): Float32Array {
  const B = ids.length;
  const T = (ids[0] as number[]).length;
  return noGrad(() => {
    const h = m.forward({ ids: Int32Array.from(ids.flat()), shape: [B, T] }); // [B, T, D]
    const lg = headLogits(reshape(h, [B * T, m.config.hiddenSize]), m.headWeight()); // [B·T, V]
    return Float32Array.from(lg.data);
  });
}

/** Sum of token log-probs of the fixture batch (next-token), as the PEFT loss's negative·N. */
function lmLoss(m: CausalLM, ids: number[][]): ReturnType<typeof scoreTokens> {
  return scoreTokens(
    m,
    ids.map((row) => ({ prompt: row.slice(0, 1), completion: row.slice(1) })),
  );
}

for (const name of NAMES) {
  const f = loadFixture(name);
  const V = f.config.vocabSize;

  test(`${name}: logits at chosen positions within 1e-3 of transformers ${hint}`, () => {
    const m = build(f);
    const lg = allLogits(m, f.expected.inputIds);
    const T = (f.expected.inputIds[0] as number[]).length;
    const want = f.expectedTensors.get('logits')!.data; // [B, 3, V]
    f.expected.positions.forEach((ps, b) =>
      ps.forEach((p, j) => {
        const got = lg.subarray((b * T + p) * V, (b * T + p + 1) * V);
        const exp = want.subarray((b * ps.length + j) * V, (b * ps.length + j + 1) * V);
        const d = maxAbsDiff(got, exp);
        assert.ok(d < 1e-3, `batch ${b} position ${p}: max |Δlogit| ${d}`);
      }),
    );
  });

  test(`${name}: loss, PEFT LoRA gradients and AdamW steps match torch ${hint}`, () => {
    const m = build(f);
    const lora = addLora(m, {
      r: f.expected.lora.r,
      alpha: f.expected.lora.alpha,
      targets: f.expected.lora.targets,
      rng: new Rng(0),
    });
    // Use the fixture's A and B (B non-zero so that A gets gradients too).
    for (const [n, t] of lora) {
      const src = f.lora.get(n);
      assert.ok(src, `fixture lacks ${n}`);
      t.data.set(src.data);
    }
    const params = [...lora.values()];
    const N = f.expected.inputIds.length * ((f.expected.inputIds[0] as number[]).length - 1);
    const step = (): number => {
      for (const p of params) p.zeroGrad();
      const { logProbs } = lmLoss(m, f.expected.inputIds);
      const loss = scale(sum(logProbs), -1 / N);
      loss.backward();
      return loss.item();
    };
    const l0 = step();
    assert.ok(Math.abs(l0 - f.expected.loraLoss) < 1e-4, `loss ${l0} vs ${f.expected.loraLoss}`);
    for (const [n, t] of lora) {
      const want = f.expectedTensors.get(`grad.${n}`)!;
      const d = relMaxDiff(t.grad!.data, want.data);
      assert.ok(d < 1e-3, `${n}: relative max |Δgrad| ${d}`);
    }
    const a = f.expected.adamw;
    const opt = new AdamW(params, {
      lr: a.lr,
      beta1: a.beta1,
      beta2: a.beta2,
      eps: a.eps,
      weightDecay: a.weightDecay,
    });
    for (let s = 0; s < a.steps; s++) {
      const l = step();
      assert.ok(Math.abs(l - (f.expected.adamwLosses[s] as number)) < 2e-4, `step ${s} loss ${l}`);
      const norm = clipGradNorm(params, a.clipNorm);
      assert.ok(
        Math.abs(norm - (f.expected.adamwGradNorms[s] as number)) < 1e-3 * norm,
        `step ${s} grad norm ${norm}`,
      );
      opt.update();
    }
    for (const [n, t] of lora) {
      const want = f.expectedTensors.get(`adamw.${n}`)!;
      const d = maxAbsDiff(t.data, want.data);
      assert.ok(d < 2e-4, `${n} after ${a.steps} AdamW steps: max |Δ| ${d}`);
    }
  });

  test(`${name}: greedy 64 tokens identical to transformers; KV cache equals recompute ${hint}`, () => {
    const m = build(f);
    for (const g of f.expected.greedy) {
      const [out] = generate(m, {
        prompts: [g.prompt],
        maxNewTokens: 64,
        temperature: 0,
        stopTokens: [],
      });
      assert.deepEqual(out!.tokens, g.tokens, `prompt ${JSON.stringify(g.prompt)}`);
      // Full recomputation (no cache) of the same sequence gives the same log-probs.
      const full = [...g.prompt, ...g.tokens];
      const lg = allLogits(m, [full]);
      out!.tokens.forEach((tok, i) => {
        const row = lg.subarray((g.prompt.length - 1 + i) * V, (g.prompt.length + i) * V);
        let mx = -Infinity;
        for (const x of row) mx = Math.max(mx, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - mx);
        const lp = (row[tok] as number) - mx - Math.log(z);
        assert.ok(
          Math.abs(lp - (out!.logProbs[i] as number)) < 1e-4,
          `step ${i}: ${lp} vs ${out!.logProbs[i]}`,
        );
      });
    }
  });

  test(`${name}: batched decoding of different-length prompts equals unbatched; scoring agrees`, () => {
    const m = build(f);
    const prompts = [f.expected.greedy[0]!.prompt, f.expected.greedy[1]!.prompt, [7, 8, 9]];
    const opts = { maxNewTokens: 20, temperature: 0.8, topP: 0.95, topK: 50, seeds: [11, 12, 13] };
    const live = backendInfo().liveBytes;
    const batched = generate(m, { ...opts, prompts });
    assert.equal(backendInfo().liveBytes, live, 'generation frees every intermediate');
    prompts.forEach((p, i) => {
      const [alone] = generate(m, { ...opts, prompts: [p], seeds: [opts.seeds[i] as number] });
      assert.deepEqual(batched[i]!.tokens, alone!.tokens, `sequence ${i}`);
      assert.ok(maxAbsDiff(batched[i]!.logProbs, alone!.logProbs) < 1e-4);
    });
    // Per-sequence stop tokens: stop sequence 1 at its 5th token.
    const stopAt = batched[1]!.tokens[4] as number;
    const stopped = generate(m, { ...opts, prompts, stopTokens: [[], [stopAt], []] });
    assert.equal(stopped[1]!.finishReason, 'stop-token');
    assert.equal(stopped[1]!.tokens.at(-1), stopAt);
    assert.ok(stopped[1]!.tokens.length <= 5);
    // Sequence 1 leaves the batch (and the KV cache) early; the others must not notice.
    assert.deepEqual(stopped[0]!.tokens, batched[0]!.tokens, 'other sequences unaffected');
    assert.deepEqual(stopped[2]!.tokens, batched[2]!.tokens, 'other sequences unaffected');
    assert.ok(maxAbsDiff(stopped[2]!.logProbs, batched[2]!.logProbs) < 1e-5);
    // The trainer's scorer gives the same log-probs as sampling reported.
    const scored = noGrad(() =>
      scoreTokens(
        m,
        prompts.map((p, i) => ({ prompt: p, completion: batched[i]!.tokens })),
      ),
    );
    prompts.forEach((_, i) => {
      const got = scored.logProbs.data.subarray(scored.offsets[i], scored.offsets[i + 1]);
      assert.ok(maxAbsDiff(got, batched[i]!.logProbs) < 1e-4, `sequence ${i}`);
    });
  });
}

test('generate/score: over-long input is a ConfigError before any work', () => {
  const m = build(loadFixture('tiny-llama'));
  assert.equal(m.maxPositions, 256);
  assert.throws(
    () => generate(m, { prompts: [new Array(200).fill(5)], maxNewTokens: 58 }),
    (e: unknown) => e instanceof ConfigError && /context/.test(e.message),
  );
  assert.equal(
    generate(m, { prompts: [new Array(200).fill(5)], maxNewTokens: 57, stopTokens: [] })[0]!.tokens
      .length,
    57,
  );
  assert.throws(
    () => scoreTokens(m, [{ prompt: new Array(250).fill(5), completion: new Array(7).fill(6) }]),
    ConfigError,
  );
  assert.throws(
    () => generate(m, { prompts: [[300]], maxNewTokens: 1 }),
    /vocabulary do not match/,
  );
});

test('generate: stop strings and text through a decode function', () => {
  const f = loadFixture('tiny-llama');
  const m = build(f);
  const decode = (ids: readonly number[]): string =>
    ids.map((i) => String.fromCharCode(65 + (i % 26))).join('');
  const g = f.expected.greedy[0]!;
  const [plain] = generate(m, {
    prompts: [g.prompt],
    maxNewTokens: 30,
    temperature: 0,
    stopTokens: [],
    decode,
  });
  const text = plain!.text!;
  assert.equal(text, decode(g.tokens.slice(0, 30)));
  const stop = text.slice(10, 12);
  const [cut] = generate(m, {
    prompts: [g.prompt],
    maxNewTokens: 30,
    temperature: 0,
    stopTokens: [],
    stopStrings: [stop],
    decode,
  });
  assert.equal(cut!.finishReason, 'stop-string');
  assert.equal(cut!.text, text.slice(0, text.indexOf(stop)));
});
