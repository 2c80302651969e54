// A real Hugging Face checkpoint directory, as transformers' save_pretrained writes it (bf16
// safetensors in two shards + model.safetensors.index.json, tokenizer.json, tokenizer_config.json,
// chat_template.jinja, generation_config.json; scripts/fixtures_hf_checkpoint.py), loads and
// matches transformers: from the directory, and by repo id from a local Hub-layout server into
// the Hugging Face cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';
import { loadModel, loadSafetensorsModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { logits as headLogits, noGrad, reshape } from '../../src/tensor/index.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { fakeHubProcess, type FakeHubSpec } from './fake-hub.js';
import { isolatedHfHome } from '../helpers/hf-env.js';

const DIR = path.join('test', 'fixtures', 'io', 'hf-checkpoint');
const REGEN = '~/.cache/rl4qe/oracle/bin/python scripts/fixtures_hf_checkpoint.py';
const NAMES = ['tiny-qwen2-bf16', 'tiny-llama-bf16'] as const;
/**
 * Both sides compute in float32 on the same bf16-rounded weights; what differs is summation
 * order (and transformers' SDPA kernel), ~1e-6 relative. 1e-4 absolute on logits of magnitude
 * up to ~10 leaves room for that and nothing else (bf16 compute would be off by ~0.15).
 */
const TOL = 1e-4;

interface Expected {
  prompt: string;
  ids: number[];
  vocab: number;
  shards: string[];
  max_abs_bf16_vs_f32: number;
}

function expected(name: string): { e: Expected; logits: Float32Array } {
  const e = JSON.parse(
    fs.readFileSync(path.join(DIR, `${name}.expected.json`), 'utf8'),
  ) as Expected;
  using f = SafetensorsFile.open(path.join(DIR, `${name}.expected.safetensors`));
  return { e, logits: f.readF32('logits') };
}

function allLogits(m: CausalLM, ids: number[]): Float32Array {
  return noGrad(() => {
    const h = m.forward({ ids: Int32Array.from(ids), shape: [1, ids.length] }); // [1, T, D]
    const lg = headLogits(reshape(h, [ids.length, m.config.hiddenSize]), m.headWeight()); // [T, V]
    return Float32Array.from(lg.data);
  });
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

for (const name of NAMES) {
  test(`${name}: a save_pretrained bf16 checkpoint in two shards loads and matches transformers within ${TOL} (regenerate: ${REGEN})`, async () => {
    const dir = path.join(DIR, name);
    const { e, logits } = expected(name);
    // It really is what the issue asks for: bf16, two shards with an index, the side files.
    assert.equal(e.shards.length, 2);
    for (const s of e.shards) {
      using f = SafetensorsFile.open(path.join(dir, s));
      assert.ok(
        f.tensors.every((t) => t.dtype === 'BF16'),
        `${s} holds BF16 tensors`,
      );
    }
    for (const f of ['model.safetensors.index.json', 'tokenizer.json', 'generation_config.json'])
      assert.ok(fs.existsSync(path.join(dir, f)), f);
    assert.ok(
      e.max_abs_bf16_vs_f32 > 10 * TOL,
      'the tolerance separates float32 from bf16 compute',
    );

    // transformers' tokenizer ids == rl4qe's from tokenizer.json.
    const tok = await Tokenizer.fromDirectory(dir);
    assert.deepEqual(tok.encode(e.prompt), e.ids);

    const { model, config } = loadSafetensorsModel(dir);
    try {
      assert.equal(config.vocabSize, e.vocab);
      const got = allLogits(model, e.ids);
      const d = maxAbs(got, logits);
      assert.ok(d < TOL, `max |Δlogit| ${d} over ${e.ids.length} positions`);
    } finally {
      model.release();
    }
    // loadModel dispatches a directory to the same loader.
    const again = loadModel(dir);
    try {
      assert.ok(maxAbs(allLogits(again.model, e.ids), logits) < TOL);
    } finally {
      again.model.release();
    }
  });
}

const hf = isolatedHfHome('rl4qe-hfck-');

test('the checkpoint by repo id: downloaded from a local Hub into the HF cache, then loaded offline', async () => {
  const name = 'tiny-qwen2-bf16';
  const dir = path.join(DIR, name);
  const files: FakeHubSpec['repos'][string]['files'] = {};
  for (const f of fs.readdirSync(dir))
    files[f] = { path: path.join(dir, f), lfs: f.endsWith('.safetensors') };
  files['README.md'] = { text: '# not needed' };
  const commit = 'b'.repeat(40);
  // Its own process: the resolver blocks this one while its download child runs.
  const hub = await fakeHubProcess({ repos: { [`org/${name}`]: { sha: commit, files } } });
  const { e, logits } = expected(name);
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    const { model } = loadSafetensorsModel(`org/${name}`);
    try {
      assert.ok(maxAbs(allLogits(model, e.ids), logits) < TOL);
    } finally {
      model.release();
    }
    const snap = path.join(hf.home, 'hub', `models--org--${name}`, 'snapshots', commit);
    assert.ok(fs.existsSync(path.join(snap, 'model-00002-of-00002.safetensors')));
    assert.ok(!fs.existsSync(path.join(snap, 'README.md')), 'only the model files');
  } finally {
    await hub.close();
  }
  // Offline now: found in the cache, no network (the server is gone).
  process.env.HF_HUB_OFFLINE = '1';
  const { model } = loadModel(`org/${name}@main`);
  try {
    assert.ok(maxAbs(allLogits(model, e.ids), logits) < TOL);
  } finally {
    model.release();
  }
});
