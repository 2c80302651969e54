// The GGUF LoRA export run by llama.cpp itself (node-llama-cpp, CPU, one thread): the SmolLM2
// Q4_1 base + `rl4qe export --format gguf-lora` must decode the greedy tokens rl4qe decodes with
// the same adapter on its float32 load. The fixture adapter is dominated by q_proj, whose lora_b
// rows llama.cpp needs in its own (permuted) order: the same adapter written in Hugging Face row
// order decodes other tokens, so the test proves the permutation, and the adapter changes the
// base model's tokens, so it proves the adapter was applied at all. llama.cpp multiplies Q4_1
// weights with 8-bit activations, so only tokens where float32 greedy has a clear top-2 margin are
// compared (the first 12 of two prompts; their smallest margin is checked here too).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attachPeftAdapter, readPeftLoraWeights } from '../../src/generators/peft-adapter.js';
import { loadNodeLlamaCpp } from '../../src/generators/node-llama-cpp.js';
import { writeGgufLoraAdapter } from '../../src/io/gguf/lora.js';
import { ggufLoraPairsOfHf } from '../../src/models/adapter-export.js';
import { loadGgufModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { generate } from '../../src/sampling/generate.js';
import { noGrad, reshape, logits as headLogits } from '../../src/tensor/index.js';
import { exportRun } from '../../src/train/export.js';
import { exportAdapterParams, makeLoraRunDir, smollm2Path } from './export-fixture.js';

const N = 12;
const MIN_MARGIN = 0.2;
const prompts = (
  JSON.parse(fs.readFileSync('test/fixtures/models/llamacpp-smollm2.json', 'utf8')) as {
    cases: { prompt: number[] }[];
  }
).cases
  .slice(0, 2)
  .map((c) => c.prompt);

/** Smallest top-2 logit margin along a greedy continuation (float32, rl4qe). */
function minMargin(m: CausalLM, prompt: number[], toks: number[]): number {
  const all = [...prompt, ...toks.slice(0, -1)];
  return noGrad(() => {
    const T = all.length;
    const V = m.config.vocabSize;
    const h = m.forward({ ids: Int32Array.from(all), shape: [1, T] });
    const lg = headLogits(reshape(h, [T, m.config.hiddenSize]), m.headWeight()).data;
    let worst = Infinity;
    for (let t = prompt.length - 1; t < T; t++) {
      let a = -Infinity;
      let b = -Infinity;
      for (let v = 0; v < V; v++) {
        const x = lg[t * V + v] as number;
        if (x > a) [a, b] = [x, a];
        else if (x > b) b = x;
      }
      worst = Math.min(worst, a - b);
    }
    return worst;
  });
}

describe('GGUF LoRA export in llama.cpp (node-llama-cpp, SmolLM2-135M Q4_1)', () => {
  let dir: string;
  let lora: string;
  let unpermuted: string;
  let ours: number[][];
  let base: number[][];
  before(() => {
    assert.ok(
      fs.existsSync(smollm2Path()),
      `missing test model ${smollm2Path()}: run \`node scripts/fetch-test-models.mjs\``,
    );
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-export-lc-'));
    const runDir = makeLoraRunDir(path.join(dir, 'run'), {
      base: smollm2Path(),
      params: exportAdapterParams(),
    });
    lora = exportRun({ runDir, format: 'gguf-lora' }).out;
    // The negative control: the same adapter with lora_b left in Hugging Face row order (what a
    // converter that forgot the permutation would write).
    const { modules } = readPeftLoraWeights(
      path.join(runDir, 'checkpoints', 'step-000001', 'adapter'),
    );
    const { model } = loadGgufModel(smollm2Path());
    const noPerm = ggufLoraPairsOfHf({ ...model.config, architecture: 'qwen2' }, modules);
    unpermuted = path.join(dir, 'unpermuted.gguf');
    writeGgufLoraAdapter(unpermuted, { architecture: 'llama', ...noPerm });
    const greedy = (): number[][] =>
      generate(model, { prompts, maxNewTokens: N, temperature: 0, stopTokens: [] }).map(
        (g) => g.tokens,
      );
    base = greedy();
    attachPeftAdapter(model, path.join(runDir, 'checkpoints', 'step-000001', 'adapter'));
    ours = greedy();
    prompts.forEach((p, i) => {
      const m = minMargin(model, p, ours[i]!);
      assert.ok(
        m >= MIN_MARGIN,
        `prompt ${i}: float32 top-2 margin ${m} < ${MIN_MARGIN}: pick another adapter`,
      );
    });
    model.release();
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test(`llama.cpp with the exported LoRA decodes rl4qe's greedy tokens (${N} per prompt); base and unpermuted differ`, async () => {
    // Missing node-llama-cpp fails here with the install hint (UnsupportedError), never skips.
    const nlc = await loadNodeLlamaCpp();
    const llama = await nlc.getLlama({ gpu: false, logLevel: nlc.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: smollm2Path() });
    const decode = async (adapter: string): Promise<number[][]> => {
      const out: number[][] = [];
      for (const p of prompts) {
        const context = await model.createContext({
          contextSize: 256,
          batchSize: 256,
          threads: 1,
          lora: { adapters: [{ filePath: adapter }] },
        });
        const toks: number[] = [];
        for await (const t of context.getSequence().evaluate(p, { temperature: 0 })) {
          toks.push(t);
          if (toks.length >= N) break;
        }
        await context.dispose();
        out.push(toks);
      }
      return out;
    };
    try {
      const lc = await decode(lora);
      const bad = await decode(unpermuted);
      prompts.forEach((_, i) => {
        assert.deepEqual(
          lc[i],
          ours[i],
          `prompt ${i}: llama.cpp + GGUF LoRA vs rl4qe + PEFT adapter`,
        );
        assert.notDeepEqual(ours[i], base[i], `prompt ${i}: the adapter changes the base tokens`);
      });
      assert.ok(
        prompts.some((_, i) => JSON.stringify(bad[i]) !== JSON.stringify(ours[i])),
        'the unpermuted adapter must decode differently, else this test cannot see the permutation',
      );
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  });
});
