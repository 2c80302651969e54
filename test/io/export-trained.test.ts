// Export of a run the real trainer wrote (`rl4qe train`, 2 steps on SmolLM2 with LoRA on q, k, v
// and o; the generator an echoing OpenAI-compatible server on 127.0.0.1): what the trainer's
// checkpoint holds must export in all three formats, and all three must be the same model —
// rl4qe with the PEFT directory, with the GGUF LoRA (Llama q AND k lora_b rows permuted there and
// back) and the merged directory give the same logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attachGgufLoraAdapter, attachPeftAdapter } from '../../src/generators/peft-adapter.js';
import { loadGgufModel, loadSafetensorsModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { noGrad, reshape, logits as headLogits } from '../../src/tensor/index.js';
import { exportRun } from '../../src/train/export.js';
import { startFaultServer } from '../generators/fault-server.js';
import { smollm2Path } from './export-fixture.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const PROMPT = [1, 4093, 198, 19161, 253, 5905, 1517, 338, 6765, 260, 5222, 282, 253, 1230, 30];

function logitsOf(m: CausalLM): Float32Array {
  return noGrad(() => {
    const T = PROMPT.length;
    const h = m.forward({ ids: Int32Array.from(PROMPT), shape: [1, T] });
    return Float32Array.from(headLogits(reshape(h, [T, m.config.hiddenSize]), m.headWeight()).data);
  });
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test('a trained run exports as peft, gguf-lora and merged, and all three are the same model', async () => {
  assert.ok(
    fs.existsSync(smollm2Path()),
    `missing test model ${smollm2Path()}: run \`node scripts/fetch-test-models.mjs\``,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-export-trained-'));
  const server = await startFaultServer();
  try {
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(
      cfg,
      `refiner:
  model: ${smollm2Path()}
  weights: quantized
  format: paper
  maxPromptTokens: 96
adapter:
  r: 4
  alpha: 16
  dropout: 0
  targets: [q_proj, k_proj, v_proj, o_proj]
optim:
  lr: 0.05
rollout:
  queriesPerStep: 2
  samplesPerQuery: 2
  temperature: 1.0
  maxNewTokens: 12
reward:
  weights:
    rouge_l: 1
generator:
  backend: openai
  baseUrl: ${server.url}/ok/v1
  model: echo
  cache:
    file: ${path.join(dir, 'cache.sqlite')}
  format: chat
  params:
    temperature: 0
    maxTokens: 32
data:
  dataset: ds1000
  trainLimit: 4
eval:
  problems: 0
run:
  dir: ${path.join(dir, 'run')}
  steps: 2
  seed: 3
  checkpointEvery: 1
  log: json
`,
    );
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [cli, 'train', '-c', cfg], (err, _o, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    const runDir = path.join(dir, 'run');
    const peft = exportRun({ runDir, format: 'peft' });
    const gguf = exportRun({ runDir, format: 'gguf-lora' });
    const merged = exportRun({ runDir, format: 'merged' });

    const { model } = loadGgufModel(smollm2Path());
    const base = logitsOf(model);
    const info = attachPeftAdapter(model, peft.out);
    assert.equal(info.modules.length, 30 * 4);
    const withPeft = logitsOf(model);
    assert.ok(maxDiff(withPeft, base) > 1e-3, 'the trained adapter changes the logits');
    attachGgufLoraAdapter(model, gguf.out);
    assert.deepEqual(logitsOf(model), withPeft, 'GGUF LoRA round trip: the same model exactly');
    model.release();
    const m = loadSafetensorsModel(merged.out).model;
    const d = maxDiff(logitsOf(m), withPeft);
    m.release();
    assert.ok(d < 1e-3, `merged vs base + adapter: max |Δlogit| ${d}`);
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
