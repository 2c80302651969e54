// Shared-prompt sampling and scoring (the trainer's K rewrites of one query):
//   - generate({ samplesPerPrompt: K }) prefills each prompt once and equals the call with every
//     prompt repeated K times, token for token;
//   - scoreGroups equals scoreTokens on the K separate sequences: log-probs and every LoRA
//     gradient, with unequal and empty completions;
//   - with LoRA B = 0 the adapted log-probs are the base model's exactly (withAdaptersDisabled);
//   - the sampler's per-token log-probs are what scoreGroups gives for the same tokens.
// On tiny random Llama and Qwen2 (q/k/v bias) models, on the reference backend (float64) and on
// native (float32), and on the real SmolLM2 test model (quantised weights).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { backendInfo, mul, noGrad, setBackend, sum, tensor, type Tensor } from '../tensor/index.js';
import { configFromHf } from '../models/config.js';
import { createModel } from '../models/registry.js';
import { loadGgufModel } from '../models/load.js';
import { addLora, loraParameters, withAdaptersDisabled, type CausalLM } from '../models/model.js';
import { generate } from './generate.js';
import { scoreGroups, scoreTokens, type ScoreGroup, type ScoreResult } from './score.js';
import { Rng } from '../util/rng.js';
import { cachePaths } from '../util/paths.js';
import { ConfigError } from '../util/errors.js';

type Arch = 'llama' | 'qwen2';
type Mode = { backend: 'reference' | 'native'; dtype: 'f32' | 'f64' };

const hfConfig = (arch: Arch): Record<string, unknown> => ({
  model_type: arch,
  hidden_size: 64,
  intermediate_size: 96,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 97,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-6,
  rope_theta: arch === 'qwen2' ? 1e6 : 1e4,
  tie_word_embeddings: arch === 'qwen2',
  bos_token_id: 1,
  eos_token_id: 2,
});

/** A tiny model with random weights (float64 copies of them in f64 mode). */
function tinyModel(arch: Arch, dtype: 'f32' | 'f64', seed = 1): CausalLM {
  const cfg = configFromHf(hfConfig(arch), `tiny ${arch}`);
  if (arch === 'qwen2') assert.ok(cfg.qkvBias, 'Qwen2 has q/k/v biases');
  const model = createModel(cfg);
  const rng = new Rng(seed);
  for (const s of model.slots()) {
    const w = s.get() as Tensor;
    const vals = new Float64Array(w.size);
    const norm = /norm\.weight$/.test(s.name);
    const bound = s.name.includes('embed')
      ? 0.25
      : s.shape.length === 2
        ? 1.5 / Math.sqrt(s.shape[1] as number)
        : 0.2;
    for (let i = 0; i < vals.length; i++)
      vals[i] = norm ? rng.uniform(0.8, 1.2) : rng.uniform(-bound, bound);
    s.set(tensor(vals, [...s.shape], { dtype }));
  }
  return model;
}

/** LoRA on every projection with B ≠ 0 (so A gets gradients too); float64 in f64 mode. */
function addTestLora(model: CausalLM, dtype: 'f32' | 'f64', zeroB = false): Tensor[] {
  addLora(model, {
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    r: 4,
    alpha: 8,
    rng: new Rng(5),
  });
  const rng = new Rng(6);
  for (const lin of model.linears().values()) {
    const l = lin.lora;
    if (!l) continue;
    const m = l as unknown as { a: Tensor; b: Tensor };
    for (const key of ['a', 'b'] as const) {
      const old = m[key];
      const vals = Float64Array.from(old.data);
      if (key === 'b' && !zeroB)
        for (let i = 0; i < vals.length; i++) vals[i] = rng.uniform(-0.3, 0.3);
      m[key] = tensor(vals, [...old.shape], { dtype, requiresGrad: true, name: old.name });
      old.release();
    }
  }
  return [...loraParameters(model).values()];
}

const GROUPS: ScoreGroup[] = [
  // Unequal lengths, a one-token completion (only the prompt's last row predicts it) and an
  // empty one.
  { prompt: [1, 5, 9, 14, 20], completions: [[3, 4, 5, 6], [7], [], [8, 9, 10, 11, 12, 13]] },
  {
    prompt: [1, 30, 31, 32, 33, 34, 35, 36, 37],
    completions: [
      [40, 41, 42],
      [43, 44, 45],
    ],
  },
  { prompt: [1, 50, 51], completions: [[], []] }, // nothing to score: skipped
  { prompt: [60], completions: [[61]] }, // a one-token prompt, no completion pass
  {
    prompt: [1, 70, 71, 72],
    completions: [
      [73, 74, 75, 76, 77, 78, 79],
      [80, 81],
    ],
  },
];

const flatten = (groups: readonly ScoreGroup[]) =>
  groups.flatMap((g) => g.completions.map((c) => ({ prompt: g.prompt, completion: c })));

interface Scored {
  lp: Float64Array;
  offsets: number[];
  grads: Float64Array[];
}

/** Log-probs, and the gradients of Σ wᵢ·logpᵢ (fixed random weights) w.r.t. every param. */
function scoreWithGrads(params: Tensor[], dtype: 'f32' | 'f64', f: () => ScoreResult): Scored {
  for (const p of params) p.zeroGrad();
  const r = f();
  const rng = new Rng(9);
  const w = tensor(
    Array.from({ length: r.logProbs.size }, () => rng.uniform(0.5, 1.5)),
    [r.logProbs.size],
    { dtype },
  );
  const lp = Float64Array.from(r.logProbs.data);
  sum(mul(r.logProbs, w)).backward();
  w.release();
  const grads = params.map((p) => {
    assert.ok(p.grad, `${p.name} got a gradient`);
    return Float64Array.from(p.grad.data);
  });
  for (const p of params) p.zeroGrad();
  return { lp, offsets: r.offsets, grads };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] as number));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

const modes: Mode[] = [
  { backend: 'reference', dtype: 'f64' },
  { backend: 'reference', dtype: 'f32' },
];
if (backendInfo().nativeAvailable) modes.push({ backend: 'native', dtype: 'f32' });
const initial = backendInfo().name;

function onBackend(m: Mode, fn: () => void): void {
  setBackend(m.backend);
  try {
    fn();
  } finally {
    setBackend(initial);
  }
}

for (const arch of ['llama', 'qwen2'] as const) {
  for (const mode of modes) {
    const label = `${arch} on ${mode.backend} ${mode.dtype}`;
    // float64: summation order only; float32: ~1e-6 relative.
    const tol = mode.dtype === 'f64' ? 1e-10 : 2e-5;

    test(`scoreGroups = scoreTokens on the separate sequences: log-probs and LoRA grads (${label})`, () =>
      onBackend(mode, () => {
        const model = tinyModel(arch, mode.dtype);
        const params = addTestLora(model, mode.dtype);
        const sep = scoreWithGrads(params, mode.dtype, () => scoreTokens(model, flatten(GROUPS)));
        const shared = scoreWithGrads(params, mode.dtype, () =>
          scoreGroups(model, GROUPS, { chunkRows: 5 }),
        );
        assert.deepEqual(shared.offsets, sep.offsets);
        assert.equal(shared.offsets.length, flatten(GROUPS).length + 1);
        const dlp = maxDiff(shared.lp, sep.lp);
        assert.ok(dlp < tol * 10, `log-probs: max |Δ| ${dlp}`);
        params.forEach((p, i) => {
          const g = shared.grads[i] as Float64Array;
          const want = sep.grads[i] as Float64Array;
          const scale = maxAbs(want);
          assert.ok(scale > 0, `${p.name}: the gradient reaches it`);
          const d = maxDiff(g, want) / scale;
          assert.ok(d < tol * 10, `${p.name}: relative max |Δgrad| ${d}`);
        });
        // Without a tape the same numbers, and every intermediate is freed.
        const before = backendInfo().liveBytes;
        const ng = noGrad(() => scoreGroups(model, GROUPS));
        assert.ok(maxDiff(ng.logProbs.data, shared.lp) < tol * 10);
        ng.logProbs.release();
        if (mode.dtype === 'f32') {
          assert.equal(backendInfo().liveBytes, before, 'noGrad scoring frees everything');
        }
        model.release();
      }));

    test(`LoRA B = 0: log-probs equal the base model's exactly; withAdaptersDisabled (${label})`, () =>
      onBackend(mode, () => {
        const model = tinyModel(arch, mode.dtype);
        const base = noGrad(() => Float64Array.from(scoreGroups(model, GROUPS).logProbs.data));
        addTestLora(model, mode.dtype, true);
        const lora = noGrad(() => Float64Array.from(scoreGroups(model, GROUPS).logProbs.data));
        assert.deepEqual(lora, base, 'B = 0 adds exactly nothing');
        const off = withAdaptersDisabled(model, () =>
          noGrad(() => Float64Array.from(scoreGroups(model, GROUPS).logProbs.data)),
        );
        assert.deepEqual(off, base);
        model.release();
      }));

    if (mode.dtype === 'f32') {
      test(`sampler log-probs (samplesPerPrompt) = scoreGroups log-probs; shared = repeated prompts (${label})`, () =>
        onBackend(mode, () => {
          const model = tinyModel(arch, 'f32', 3);
          addTestLora(model, 'f32');
          const prompts = [
            [1, 5, 9, 14, 20],
            [1, 30],
            [1, 40, 41, 42, 43, 44, 45, 46],
          ];
          const K = 3;
          const opts = { maxNewTokens: 10, temperature: 1.2, stopTokens: [] as number[] };
          const gens = generate(model, { ...opts, prompts, samplesPerPrompt: K, seed: 4 });
          assert.equal(gens.length, prompts.length * K);
          const rep = generate(model, {
            ...opts,
            prompts: prompts.flatMap((p) => Array.from({ length: K }, () => p)),
            seed: 4,
          });
          gens.forEach((g, i) => {
            assert.deepEqual(g.tokens, rep[i]!.tokens, `sequence ${i}`);
            assert.ok(maxDiff(g.logProbs, rep[i]!.logProbs) < 1e-5, `sequence ${i}`);
          });
          // K samples of one prompt differ (their own streams).
          assert.notDeepEqual(gens[0]!.tokens, gens[1]!.tokens);
          const groups = prompts.map((prompt, p) => ({
            prompt,
            completions: gens.slice(p * K, (p + 1) * K).map((g) => g.tokens),
          }));
          const scored = noGrad(() => scoreGroups(model, groups));
          gens.forEach((g, i) => {
            const got = scored.logProbs.data.subarray(scored.offsets[i], scored.offsets[i + 1]);
            const d = maxDiff(got, g.logProbs);
            assert.ok(d < 1e-4, `sequence ${i}: max |Δ log-prob| ${d}`);
          });
          scored.logProbs.release();
          model.release();
        }));
    }
  }
}

test('shared prefill = repeated prompts: explicit seeds, per-sequence stops, top-p/top-k, chunked prefill', () => {
  const model = tinyModel('llama', 'f32', 7);
  const prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [1, 11, 12]];
  const K = 4;
  const n = prompts.length * K;
  const seeds = Array.from({ length: n }, (_, i) => 100 + 7 * i);
  const base = { maxNewTokens: 12, temperature: 0.9, topP: 0.9, topK: 20, seeds };
  const free = generate(model, { ...base, prompts, samplesPerPrompt: K, stopTokens: [] });
  // Stop some sequences early at a token they draw, so finished rows leave the shared cache.
  const stops = free.map((g, i) => (i % 3 === 0 ? [g.tokens[3] as number] : []));
  const repeated = prompts.flatMap((p) => Array.from({ length: K }, () => p));
  for (const prefillRows of [2, 512]) {
    const a = generate(model, {
      ...base,
      prompts,
      samplesPerPrompt: K,
      stopTokens: stops,
      prefillRows,
    });
    const b = generate(model, { ...base, prompts: repeated, stopTokens: stops, prefillRows });
    assert.equal(a.length, n);
    a.forEach((g, i) => {
      assert.deepEqual(g.tokens, b[i]!.tokens, `prefillRows ${prefillRows} sequence ${i}`);
      assert.equal(g.finishReason, b[i]!.finishReason);
      assert.ok(maxDiff(g.logProbs, b[i]!.logProbs) < 1e-5);
    });
    assert.ok(a.some((g) => g.finishReason === 'stop-token'));
  }
  // samplesPerPrompt 1 is the plain call; maxNewTokens 0 still gives prompts × K results.
  const one = generate(model, { ...base, prompts, seeds: seeds.slice(0, 3), stopTokens: [] });
  const one1 = generate(model, {
    ...base,
    prompts,
    seeds: seeds.slice(0, 3),
    stopTokens: [],
    samplesPerPrompt: 1,
  });
  assert.deepEqual(one, one1);
  assert.equal(generate(model, { prompts, maxNewTokens: 0, samplesPerPrompt: K }).length, n);
  // Per-sequence lists count sequences (prompts × K), not prompts.
  const bad = (o: Partial<Parameters<typeof generate>[1]>, re: RegExp): void =>
    assert.throws(
      () => generate(model, { prompts, maxNewTokens: 2, samplesPerPrompt: K, ...o }),
      (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
    );
  bad({ stopTokens: [[2], [2], [2]] }, /one entry per sequence/);
  bad({ seeds: [1, 2, 3] }, /seeds/);
  bad({ samplesPerPrompt: 0 }, /samplesPerPrompt/);
  bad({ samplesPerPrompt: 1.5 }, /samplesPerPrompt/);
  model.release();
});

test('scoreGroups: invalid input is a ConfigError before any work', () => {
  const model = tinyModel('llama', 'f32');
  const bad = (groups: ScoreGroup[], re: RegExp): void =>
    assert.throws(
      () => scoreGroups(model, groups),
      (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
    );
  bad([], /nothing to score/);
  bad([{ prompt: [], completions: [[1]] }], /empty prompt/);
  bad([{ prompt: [1], completions: [[97]] }], /out of range/);
  bad([{ prompt: [1], completions: [[], []] }], /no completion tokens/);
  bad([{ prompt: new Array(100).fill(3), completions: [new Array(29).fill(4)] }], /context/);
  model.release();
});

test('scoreGroups: training enables LoRA dropout from the rng (reproducible), as scoreTokens', () => {
  const model = tinyModel('llama', 'f32');
  addLora(model, { targets: ['q_proj', 'v_proj'], r: 2, alpha: 4, dropout: 0.5, rng: new Rng(1) });
  for (const [name, t] of loraParameters(model))
    if (name.endsWith('lora_B.weight')) t.data.fill(0.2);
  const run = (o: Parameters<typeof scoreGroups>[2]) =>
    noGrad(() => Float64Array.from(scoreGroups(model, GROUPS, o).logProbs.data));
  const evalLp = run({});
  assert.deepEqual(run({ training: false, rng: new Rng(3) }), evalLp, 'no dropout in eval');
  const a = run({ training: true, rng: new Rng(3) });
  assert.notDeepEqual(a, evalLp, 'dropout changes the log-probs');
  assert.deepEqual(run({ training: true, rng: new Rng(3) }), a, 'same rng, same masks');
  assert.throws(() => run({ training: true }), /rng/);
  model.release();
});

test('withAdaptersDisabled detaches every adapter and restores them, also on throw', () => {
  const model = tinyModel('qwen2', 'f32');
  addTestLora(model, 'f32');
  const before = [...model.linears().values()].map((l) => l.lora);
  assert.ok(before.filter(Boolean).length > 0);
  assert.equal(
    withAdaptersDisabled(model, () => {
      for (const l of model.linears().values()) assert.equal(l.lora, null);
      return 42;
    }),
    42,
  );
  assert.deepEqual(
    [...model.linears().values()].map((l) => l.lora),
    before,
  );
  assert.throws(
    () =>
      withAdaptersDisabled(model, () => {
        throw new Error('boom');
      }),
    /boom/,
  );
  [...model.linears().values()].forEach((l, i) => assert.equal(l.lora, before[i]));
  model.release();
});

const smolFile = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');

test('SmolLM2 quantised: sampler log-probs (K = 3, shared prefill) = scoreGroups log-probs', () => {
  assert.ok(
    existsSync(smolFile),
    `missing test model ${smolFile}: run \`node scripts/fetch-test-models.mjs\``,
  );
  const { model } = loadGgufModel(smolFile, { weights: 'quantized' });
  const prompts = [
    [1, 504, 3290, 28, 9, 88],
    [1, 4000, 12],
  ];
  const K = 3;
  const gens = generate(model, {
    prompts,
    samplesPerPrompt: K,
    maxNewTokens: 8,
    temperature: 1,
    stopTokens: [],
    seed: 11,
  });
  const rep = generate(model, {
    prompts: prompts.flatMap((p) => [p, p, p]),
    maxNewTokens: 8,
    temperature: 1,
    stopTokens: [],
    seed: 11,
  });
  gens.forEach((g, i) => assert.deepEqual(g.tokens, rep[i]!.tokens, `sequence ${i}`));
  const groups = prompts.map((prompt, p) => ({
    prompt,
    completions: gens.slice(p * K, (p + 1) * K).map((g) => g.tokens),
  }));
  const scored = noGrad(() => scoreGroups(model, groups));
  gens.forEach((g, i) => {
    assert.equal(g.tokens.length, 8);
    const got = scored.logProbs.data.subarray(scored.offsets[i], scored.offsets[i + 1]);
    const d = maxDiff(got, g.logProbs);
    assert.ok(d < 1e-4, `sequence ${i}: max |Δ log-prob| ${d}`);
  });
  scored.logProbs.release();
  model.release();
});
