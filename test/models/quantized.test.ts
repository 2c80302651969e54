// Models loaded with weights: 'quantized' keep their GGUF blocks (QTensor) instead of float32.
// The values are the same by definition, so the outside oracle is the same as for float32:
// transformers on the float32-dequantised file (fixtures of scripts/fixtures_gguf_hf.py). Greedy
// tokens must equal it, logits agree to float32 summation order, and a LoRA adapter on the
// quantised base must get the gradients it gets on the float32 base.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  noGrad,
  QTensor,
  reshape,
  slice,
  sum,
  logits as headLogits,
  type Tensor,
} from '../../src/tensor/index.js';
import { openGguf } from '../../src/io/gguf/index.js';
import { loadGgufModel } from '../../src/models/load.js';
import { addLora, loraParameters, type CausalLM } from '../../src/models/model.js';
import { generate } from '../../src/sampling/generate.js';
import { scoreTokens } from '../../src/sampling/score.js';
import { cachePaths } from '../../src/util/paths.js';
import { Rng } from '../../src/util/rng.js';

interface Case {
  prompt: number[];
  tokens: number[];
  firstLogitsTop?: { ids: number[]; values: number[] };
}
const smol = JSON.parse(readFileSync('test/fixtures/models/hf-smollm2-gguf.json', 'utf8')) as {
  cases: Case[];
};
const qwen = JSON.parse(readFileSync('test/fixtures/models/hf-qwen2-gguf.json', 'utf8')) as {
  model: { file: string };
  cases: Case[];
};
const smolFile = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const qwenFile = path.join(cachePaths.testModels(), qwen.model.file);
const need = (f: string): void =>
  assert.ok(
    existsSync(f),
    `missing test model ${f}: run \`node scripts/fetch-test-models.mjs\` (then re-run the tests)`,
  );

/** Greedy decoding of n tokens equals the oracle's first n: on the float path, and with int8
 * decoding steps (the avx512vnni kernels, where the CPU has them; the float path elsewhere). */
function assertGreedy(model: CausalLM, c: Case, n: number): void {
  for (const int8Decoding of [false, true]) {
    const out = generate(model, {
      prompts: [c.prompt],
      maxNewTokens: n,
      temperature: 0,
      stopTokens: [],
      int8Decoding,
    });
    assert.deepEqual(out[0]!.tokens, c.tokens.slice(0, n), `int8Decoding: ${int8Decoding}`);
  }
}

test('SmolLM2 quantised: the blocks are the file bytes, logits and greedy tokens equal transformers (float32 oracle)', () => {
  need(smolFile);
  const { model, config } = loadGgufModel(smolFile, { weights: 'quantized' });
  // Every projection and the (tied) embedding hold the file's blocks, byte for byte in size.
  const g = openGguf(smolFile);
  let qBytes = 0;
  let f32Bytes = 0;
  for (const [name, lin] of model.linears()) {
    assert.ok(lin.weight instanceof QTensor, name);
    const info = g.tensor(
      name
        .replace(/^model\.layers\.(\d+)\.(self_attn|mlp)\./, 'blk.$1.')
        .replace(/q_proj$/, 'attn_q.weight')
        .replace(/k_proj$/, 'attn_k.weight')
        .replace(/v_proj$/, 'attn_v.weight')
        .replace(/o_proj$/, 'attn_output.weight')
        .replace(/gate_proj$/, 'ffn_gate.weight')
        .replace(/up_proj$/, 'ffn_up.weight')
        .replace(/down_proj$/, 'ffn_down.weight'),
    );
    assert.equal(lin.weight.byteLength, info.nBytes, name);
    assert.equal(lin.weight.type, info.type, name);
    qBytes += lin.weight.byteLength;
    f32Bytes += lin.inFeatures * lin.outFeatures * 4;
  }
  g.close();
  assert.ok(model.headWeight() instanceof QTensor, 'tied head = quantised embedding');
  assert.ok(qBytes * 6 < f32Bytes, `Q4_1 is 5 bits a weight: ${qBytes} vs ${f32Bytes}`);

  const c = smol.cases[1]!;
  const T = c.prompt.length;
  const lg = noGrad(() => {
    const h = model.forward({ ids: Int32Array.from(c.prompt), shape: [1, T] });
    return headLogits(reshape(slice(h, 1, T - 1, T), [1, config.hiddenSize]), model.headWeight())
      .data;
  });
  c.firstLogitsTop!.ids.forEach((id, i) => {
    const d = Math.abs(lg[id]! - c.firstLogitsTop!.values[i]!);
    assert.ok(d < 2e-3, `logit of token ${id}: ${lg[id]} vs ${c.firstLogitsTop!.values[i]}`);
  });
  assertGreedy(model, c, 12);
  model.release();
});

test('Qwen2.5-Coder-0.5B quantised (Q5_0, Q8_0, Q4_K, Q6_K blocks): greedy tokens equal transformers (float32 oracle)', () => {
  need(qwenFile);
  const { model } = loadGgufModel(qwenFile, { weights: 'quantized' });
  const types = new Set([...model.linears().values()].map((l) => (l.weight as QTensor).type));
  for (const t of [6, 8, 12, 14]) assert.ok(types.has(t), `ggml type ${t} among the projections`);
  assert.ok(model.headWeight() instanceof QTensor);
  assertGreedy(model, qwen.cases[0]!, 6);
  model.release();
});

test('LoRA on a quantised base: log-probs and LoRA gradients equal those on the float32 base', () => {
  need(smolFile);
  const run = (weights: 'float32' | 'quantized') => {
    const { model } = loadGgufModel(smolFile, { weights });
    addLora(model, { targets: ['q_proj', 'v_proj', 'down_proj'], r: 4, alpha: 8, rng: new Rng(7) });
    // B starts at zero (no gradient path to A): give it values so both factors get gradients.
    const r = new Rng(8);
    for (const [name, t] of loraParameters(model)) {
      if (name.endsWith('lora_B.weight'))
        for (let i = 0; i < t.size; i++) t.data[i] = r.uniform(-0.02, 0.02);
    }
    const res = scoreTokens(model, [
      { prompt: [1, 504, 3290, 28], completion: [330, 1107, 314] },
      { prompt: [9, 88], completion: [4000, 12] },
    ]);
    const lp = Float32Array.from(res.logProbs.data);
    sum(res.logProbs).backward();
    const grads = new Map<string, Float32Array>();
    for (const [name, t] of loraParameters(model))
      grads.set(name, Float32Array.from((t.grad as Tensor).data));
    model.release();
    return { lp, grads };
  };
  const f = run('float32');
  const q = run('quantized');
  f.lp.forEach((v, i) =>
    assert.ok(Math.abs(v - q.lp[i]!) < 1e-3, `log-prob ${i}: ${v} vs ${q.lp[i]}`),
  );
  for (const [name, gf] of f.grads) {
    const gq = q.grads.get(name)!;
    let err = 0;
    let scale = 0;
    for (let i = 0; i < gf.length; i++) {
      err = Math.max(err, Math.abs(gf[i]! - gq[i]!));
      scale = Math.max(scale, Math.abs(gf[i]!));
    }
    assert.ok(scale > 0, `${name} has a gradient`);
    assert.ok(err <= 2e-3 * scale, `${name}: max diff ${err} vs max |grad| ${scale}`);
  }
});
