// Adapter export against PEFT / transformers (scripts/fixtures_export.py) on the offline
// SmolLM2-135M GGUF: rl4qe's PEFT writer against PeftModel.save_pretrained's own files, then a
// run directory exported as peft, merged and gguf-lora, each loaded back (rl4qe; PEFT and
// transformers too when the oracle venv exists) and compared with transformers + PEFT logits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  adapterSha256,
  attachAdapter,
  attachGgufLoraAdapter,
  attachPeftAdapter,
  peftAdapterSha256,
  readPeftLoraWeights,
} from '../../src/generators/peft-adapter.js';
import { readGgufLoraAdapter, writeGgufLoraAdapter } from '../../src/io/gguf/lora.js';
import { peftAdapterConfig, writePeftAdapter } from '../../src/io/peft.js';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';
import { configFromHf } from '../../src/models/config.js';
import {
  ggufLoraPairsOfHf,
  hfLoraOfGgufPairs,
  mergeLoraInto,
} from '../../src/models/adapter-export.js';
import { loadGgufModel, loadSafetensorsModel } from '../../src/models/load.js';
import { addLora, loraParameters, type CausalLM } from '../../src/models/model.js';
import { generate } from '../../src/sampling/generate.js';
import { noGrad, reshape, logits as headLogits } from '../../src/tensor/index.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { exportRun } from '../../src/train/export.js';
import { runExport } from '../../src/cli/commands/export.js';
import { RUN_VERSION, type RunInfo } from '../../src/train/records.js';
import {
  ConfigError,
  FormatError,
  NotFoundError,
  UnsupportedError,
} from '../../src/util/errors.js';
import { cachePaths } from '../../src/util/paths.js';
import { Rng } from '../../src/util/rng.js';
import { FIXTURES, loadFixture } from '../models/fixtures.js';
import {
  ADAPTER,
  EXPORT_FIXTURES,
  exportAdapterParams,
  makeFullRunDir,
  makeLoraRunDir,
  REGEN_EXPORT,
  smollm2Path,
} from './export-fixture.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/fixtures_export.py', import.meta.url));
const hint = `(regenerate the fixture with: ${REGEN_EXPORT})`;
const REF = path.join(EXPORT_FIXTURES, 'peft-reference');
/** Same float32 arithmetic as transformers, summed in another order (test/models/gguf.test.ts). */
const TOL = 2e-3;

interface ExpectedCase {
  text: string;
  prompt: number[];
  top: { position: number; ids: number[]; values: number[] }[];
  tokens: number[];
  margins: number[];
}
const expected = JSON.parse(
  fs.readFileSync(path.join(EXPORT_FIXTURES, 'expected.json'), 'utf8'),
) as {
  cases: ExpectedCase[];
};

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-export-'));
}

/** Logits at every position of one prompt: [T·V]. */
function promptLogits(m: CausalLM, prompt: readonly number[]): Float32Array {
  return noGrad(() => {
    const T = prompt.length;
    const h = m.forward({ ids: Int32Array.from(prompt), shape: [1, T] }); // [1, T, D]
    return Float32Array.from(headLogits(reshape(h, [T, m.config.hiddenSize]), m.headWeight()).data);
  });
}

/** Largest |Δ| between the model's logits and the fixture's top-32 values, over every case. */
function maxLogitDiff(m: CausalLM): number {
  const V = m.config.vocabSize;
  let worst = 0;
  for (const c of expected.cases) {
    const lg = promptLogits(m, c.prompt);
    for (const t of c.top)
      t.ids.forEach((id, i) => {
        worst = Math.max(worst, Math.abs(lg[t.position * V + id]! - t.values[i]!));
      });
  }
  return worst;
}

/** The greedy prefix the fixture can decide: tokens before transformers' first top-2 margin < 0.05. */
function decidable(c: ExpectedCase): number[] {
  const n = c.margins.findIndex((m) => m < 0.05);
  return c.tokens.slice(0, n < 0 ? c.tokens.length : n);
}

function greedyTokens(m: CausalLM, n = 16): number[][] {
  return generate(m, {
    prompts: expected.cases.map((c) => c.prompt),
    maxNewTokens: n,
    temperature: 0,
    stopTokens: [],
  }).map((g) => g.tokens);
}

test('writePeftAdapter writes what PeftModel.save_pretrained writes (config fields, tensor names and bytes)', () => {
  const dir = tmpdir();
  const out = path.join(dir, 'adapter');
  writePeftAdapter(out, {
    params: exportAdapterParams(),
    r: ADAPTER.r,
    alpha: ADAPTER.alpha,
    dropout: 0,
    targets: ADAPTER.targets,
    baseModel: 'base',
  });
  const ours = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const ref = JSON.parse(fs.readFileSync(path.join(REF, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.deepEqual(
    Object.keys(ours),
    Object.keys(ref),
    `the same fields in the same order ${hint}`,
  );
  for (const k of Object.keys(ref)) {
    if (k === 'base_model_name_or_path') continue;
    if (k === 'target_modules') {
      // PEFT keeps a set: its list order is arbitrary.
      assert.deepEqual([...(ours[k] as string[])].sort(), [...(ref[k] as string[])].sort());
      continue;
    }
    assert.deepEqual(ours[k], ref[k], `adapter_config.json field ${k}`);
  }
  assert.equal(ours.base_model_name_or_path, 'base');
  using a = SafetensorsFile.open(path.join(out, 'adapter_model.safetensors'));
  using b = SafetensorsFile.open(path.join(REF, 'adapter_model.safetensors'));
  assert.deepEqual(a.metadata, { format: 'pt' });
  assert.deepEqual(a.metadata, b.metadata);
  assert.deepEqual(a.tensors.map((t) => t.name).sort(), b.tensors.map((t) => t.name).sort());
  assert.equal(a.tensors.length, ADAPTER.layers * 4);
  for (const t of b.tensors) {
    const o = a.tensor(t.name);
    assert.equal(o.dtype, t.dtype);
    assert.deepEqual(o.shape, t.shape);
    assert.deepEqual(a.readBytes(o), b.readBytes(t), `${t.name}: bit-identical to PEFT's ${hint}`);
  }
  assert.ok(fs.existsSync(path.join(out, 'README.md')));
  // Nothing is left beside the directory by the atomic write.
  assert.deepEqual(fs.readdirSync(dir), ['adapter']);
  fs.rmSync(dir, { recursive: true });
});

test('writePeftAdapter: typed errors for bad input, refuses to overwrite, round trip through attachPeftAdapter', () => {
  const dir = tmpdir();
  const f = loadFixture('tiny-llama');
  const { model } = loadSafetensorsModel(path.join(FIXTURES, 'tiny-llama'));
  const params = addLora(model, { r: 4, alpha: 8, targets: ['q_proj', 'o_proj'], rng: new Rng(3) });
  // B non-zero, so a reader that dropped B would be seen.
  const rng = new Rng(9);
  for (const [n, t] of params)
    if (n.includes('lora_B')) t.data.set(t.data.map(() => rng.uniform(-1, 1)));
  const plain = new Map(
    [...params].map(([n, t]) => [n, { data: Float32Array.from(t.data), shape: [...t.shape] }]),
  );
  const spec = {
    params: plain,
    r: 4,
    alpha: 8,
    dropout: 0.05,
    targets: ['q_proj', 'o_proj'],
    baseModel: 'tiny',
  };
  const out = path.join(dir, 'a');
  writePeftAdapter(out, spec);
  assert.throws(() => writePeftAdapter(out, spec), ConfigError, 'an existing output is kept');
  writePeftAdapter(out, { ...spec, overwrite: true });
  // Round trip: a fresh model gets exactly these A and B, with α/r.
  const { model: fresh } = loadSafetensorsModel(path.join(FIXTURES, 'tiny-llama'));
  const info = attachPeftAdapter(fresh, out);
  assert.equal(info.modules.length, 2 * f.config.numLayers);
  for (const [n, t] of loraParameters(fresh)) assert.deepEqual(t.data, plain.get(n)!.data, n);
  assert.ok(info.modules.every((m) => m.scaling === 2));
  // Bad input: typed errors before anything is written.
  const one = (name: string, shape: number[]) =>
    new Map([[name, { data: new Float32Array(shape[0]! * shape[1]!), shape }]]);
  const bad = path.join(dir, 'bad');
  assert.throws(
    () =>
      writePeftAdapter(bad, { ...spec, params: one('base_model.model.x.lora_A.weight', [4, 2]) }),
    FormatError,
  );
  assert.throws(
    () =>
      writePeftAdapter(bad, {
        ...spec,
        params: one('model.layers.0.self_attn.q_proj.lora_A.weight', [4, 64]),
      }),
    NotFoundError,
    'B missing',
  );
  assert.throws(
    () =>
      writePeftAdapter(bad, {
        ...spec,
        params: one('model.layers.0.mlp.up_proj.lora_A.weight', [4, 64]),
      }),
    ConfigError,
    'outside the targets',
  );
  assert.throws(() => writePeftAdapter(bad, { ...spec, r: 0 }), ConfigError);
  assert.ok(!fs.existsSync(bad));
  assert.deepEqual(peftAdapterConfig(spec).target_modules, ['o_proj', 'q_proj']);
  model.release();
  fresh.release();
  fs.rmSync(dir, { recursive: true });
});

test('GGUF LoRA names and Llama q/k lora_b rows: ggufLoraPairsOfHf and its inverse', () => {
  const f = loadFixture('tiny-llama'); // 4 heads, 2 KV heads, head dim 16
  const rng = new Rng(5);
  const mk = (nOut: number, nIn: number) => ({
    a: Float32Array.from({ length: 3 * nIn }, () => rng.uniform(-1, 1)),
    b: Float32Array.from({ length: nOut * 3 }, () => rng.uniform(-1, 1)),
    r: 3,
    nIn,
    nOut,
    scaling: 2,
  });
  const H = f.config.hiddenSize;
  const kv = f.config.numKvHeads * f.config.headDim;
  const modules = new Map([
    ['model.layers.1.self_attn.q_proj', mk(H, H)],
    ['model.layers.1.self_attn.k_proj', mk(kv, H)],
    ['model.layers.0.mlp.down_proj', { ...mk(H, f.config.intermediateSize), scaling: 0.5 }],
  ]);
  const { alpha, pairs } = ggufLoraPairsOfHf(f.config, modules);
  assert.equal(alpha, 6, 'alpha = scaling·r of the first module');
  assert.deepEqual(
    pairs.map((p) => p.base),
    ['blk.1.attn_q.weight', 'blk.1.attn_k.weight', 'blk.0.ffn_down.weight'],
  );
  const q = modules.get('model.layers.1.self_attn.q_proj')!;
  assert.deepEqual(pairs[0]!.a, q.a, 'lora_a is not permuted');
  assert.notDeepEqual(pairs[0]!.b, q.b, 'lora_b of q is permuted');
  // Row h·Dh + 2i + j of the GGUF B is row h·Dh + j·Dh/2 + i of the HF B (gguf-names.ts).
  const dh = f.config.headDim;
  const r = 3;
  for (const [h, i, j] of [
    [0, 0, 1],
    [2, 5, 0],
    [3, 7, 1],
  ] as const) {
    const g = h * dh + 2 * i + j;
    const hf = h * dh + j * (dh / 2) + i;
    assert.deepEqual(pairs[0]!.b.subarray(g * r, g * r + r), q.b.subarray(hf * r, hf * r + r));
  }
  // down_proj's scaling 0.5 ≠ alpha/r = 2: the ratio is folded into B.
  const d = modules.get('model.layers.0.mlp.down_proj')!;
  assert.ok(Math.abs(pairs[2]!.b[5]! - d.b[5]! * 0.25) < 1e-7);
  const back = hfLoraOfGgufPairs(f.config, { alpha, pairs });
  for (const [name, m] of modules) {
    const b = back.get(name)!;
    assert.deepEqual(b.a, m.a);
    // The update s·B is what must survive (down_proj's fold moved its scale into B).
    const want = m.b.map((x) => x * m.scaling);
    const got = b.b.map((x) => x * b.scaling);
    got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) < 1e-6, `${name}[${i}]`));
  }
  // Qwen2 GGUFs are not permuted.
  const qwen = loadFixture('tiny-qwen2');
  const qp = ggufLoraPairsOfHf(qwen.config, new Map([['model.layers.0.self_attn.q_proj', q]]));
  assert.deepEqual(qp.pairs[0]!.b, q.b);
  assert.throws(() => ggufLoraPairsOfHf(f.config, new Map([['lm_head', q]])), UnsupportedError);
});

test('mergeLoraInto: W + s·B·A', () => {
  const w = Float32Array.from([1, 2, 3, 4, 5, 6]); // [2, 3]
  const a = Float32Array.from([1, 0, 2]); // [1, 3]
  const b = Float32Array.from([3, -1]); // [2, 1]
  mergeLoraInto(w, { a, b, r: 1, nIn: 3, nOut: 2, scaling: 0.5 });
  assert.deepEqual([...w], [1 + 1.5, 2, 3 + 3, 4 - 0.5, 5, 6 - 1]);
  assert.throws(() =>
    mergeLoraInto(new Float32Array(5), { a, b, r: 1, nIn: 3, nOut: 2, scaling: 1 }),
  );
});

describe('rl4qe export of a SmolLM2-135M LoRA run (GGUF base)', () => {
  let dir: string;
  let runDir: string;
  let model: CausalLM;
  before(() => {
    assert.ok(
      fs.existsSync(smollm2Path()),
      `missing test model ${smollm2Path()}: run \`node scripts/fetch-test-models.mjs\``,
    );
    dir = tmpdir();
    runDir = makeLoraRunDir(path.join(dir, 'run'), {
      base: smollm2Path(),
      params: exportAdapterParams(),
    });
    model = loadGgufModel(smollm2Path()).model;
  });
  after(() => {
    model?.release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test(`peft: rl4qe with the exported adapter matches transformers + PEFT logits and greedy tokens ${hint}`, () => {
    const r = exportRun({ runDir, format: 'peft' });
    assert.equal(r.checkpoint, 'step-000001');
    assert.equal(r.out, path.join(runDir, 'export', 'step-000001-peft'));
    assert.deepEqual(r.files, ['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const base = greedyTokens(model);
    attachPeftAdapter(model, r.out);
    const d = maxLogitDiff(model);
    assert.ok(d < TOL, `max |Δlogit| vs transformers + PEFT: ${d}`);
    const ours = greedyTokens(model);
    expected.cases.forEach((c, i) => {
      const want = decidable(c);
      assert.ok(want.length >= 12, 'the fixture decides at least 12 tokens');
      assert.deepEqual(ours[i]!.slice(0, want.length), want, `case ${i}: greedy tokens`);
      assert.notDeepEqual(
        ours[i]!.slice(0, want.length),
        base[i]!.slice(0, want.length),
        'the adapter changes them',
      );
    });
    assert.throws(() => exportRun({ runDir, format: 'peft' }), ConfigError, 'no silent overwrite');
    exportRun({ runDir, format: 'peft', overwrite: true });
  });

  test(`gguf-lora: llama.cpp names, alpha, q rows permuted; attachGgufLoraAdapter gives the PEFT logits ${hint}`, () => {
    const r = exportRun({ runDir, format: 'gguf-lora' });
    assert.equal(r.out, path.join(runDir, 'export', 'step-000001-gguf-lora.gguf'));
    const ad = readGgufLoraAdapter(r.out);
    assert.equal(ad.architecture, 'llama');
    assert.equal(ad.alpha, ADAPTER.alpha);
    assert.equal(ad.pairs.length, ADAPTER.layers * 2);
    assert.ok(ad.pairs.some((p) => p.base === 'blk.29.attn_v.weight'));
    const params = exportAdapterParams();
    const q = ad.pairs.find((p) => p.base === 'blk.3.attn_q.weight')!;
    const v = ad.pairs.find((p) => p.base === 'blk.3.attn_v.weight')!;
    assert.deepEqual(q.a, params.get('model.layers.3.self_attn.q_proj.lora_A.weight')!.data);
    assert.notDeepEqual(q.b, params.get('model.layers.3.self_attn.q_proj.lora_B.weight')!.data);
    assert.deepEqual(
      v.b,
      params.get('model.layers.3.self_attn.v_proj.lora_B.weight')!.data,
      'v is not permuted',
    );
    const peftLogits = promptLogits(model, expected.cases[0]!.prompt);
    const info = attachGgufLoraAdapter(model, r.out); // replaces the PEFT adapter
    assert.equal(info.modules.length, ADAPTER.layers * 2);
    for (const [n, t] of loraParameters(model))
      assert.deepEqual(t.data, params.get(n)!.data, `${n} round trip`);
    assert.deepEqual(promptLogits(model, expected.cases[0]!.prompt), peftLogits);
    const d = maxLogitDiff(model);
    assert.ok(d < TOL, `max |Δlogit| vs transformers + PEFT: ${d}`);
  });

  test(`merged: config.json, model.safetensors and tokenizer that rl4qe (and transformers) load to the adapted logits ${hint}`, async (t) => {
    const r = exportRun({ runDir, format: 'merged' });
    assert.ok(
      r.files.includes('config.json') && r.files.includes('model.safetensors'),
      r.files.join(),
    );
    assert.ok(r.files.includes('tokenizer.json') && r.files.includes('tokenizer_config.json'));
    assert.ok(
      r.notes.some((n) => /GGUF/.test(n)),
      'says the weights are the GGUF dequantised',
    );
    const cfg = configFromHf(JSON.parse(fs.readFileSync(path.join(r.out, 'config.json'), 'utf8')));
    assert.deepEqual(cfg, model.config, 'config.json reads back to the GGUF ModelConfig');
    const merged = loadSafetensorsModel(r.out).model;
    try {
      const d = maxLogitDiff(merged);
      assert.ok(d < TOL, `merged: max |Δlogit| vs transformers + PEFT: ${d}`);
      const toks = greedyTokens(merged);
      expected.cases.forEach((c, i) => {
        const want = decidable(c);
        assert.deepEqual(toks[i]!.slice(0, want.length), want, `case ${i}: merged greedy tokens`);
      });
    } finally {
      merged.release();
    }
    const tok = await Tokenizer.fromDirectory(r.out);
    for (const c of expected.cases)
      assert.deepEqual(tok.encode(c.text), c.prompt, 'tokenizer.json');

    // PEFT and transformers load what rl4qe exported (the oracle venv; skipped without it).
    const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
    if (!fs.existsSync(py)) {
      t.diagnostic(`oracle venv missing (${py}): PEFT/transformers loading not checked`);
      return;
    }
    const peftDir = path.join(runDir, 'export', 'step-000001-peft');
    const p = spawnSync(py, [SCRIPT, '--check', '--peft', peftDir, '--merged', r.out], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    assert.equal(p.status, 0, p.stderr);
    const got = JSON.parse(p.stdout) as {
      peft: number[][][];
      merged: number[][][];
      mergedTokenizerIds: number[][];
    };
    for (const kind of ['peft', 'merged'] as const)
      expected.cases.forEach((c, i) =>
        c.top.forEach((tp, j) =>
          tp.values.forEach((v, k) => {
            const d = Math.abs(got[kind][i]![j]![k]! - v);
            assert.ok(
              d < TOL,
              `${kind} loaded by Python: case ${i} position ${tp.position}: Δ ${d}`,
            );
          }),
        ),
      );
    expected.cases.forEach((c, i) =>
      assert.deepEqual(
        got.mergedTokenizerIds[i],
        c.prompt,
        'transformers tokenizer of the merged export',
      ),
    );
  });
});

test('export refuses other run versions, missing checkpoints, adapters of full runs, bad flags', () => {
  const dir = tmpdir();
  const base = path.join(FIXTURES, 'tiny-llama');
  const params = new Map([
    [
      'model.layers.0.self_attn.q_proj.lora_A.weight',
      { data: new Float32Array(2 * 64), shape: [2, 64] },
    ],
    [
      'model.layers.0.self_attn.q_proj.lora_B.weight',
      { data: new Float32Array(64 * 2), shape: [64, 2] },
    ],
  ]);
  const old = makeLoraRunDir(path.join(dir, 'old'), { base, params, version: RUN_VERSION + 1 });
  assert.throws(
    () => exportRun({ runDir: old, format: 'peft' }),
    (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, new RegExp(`version ${RUN_VERSION}`));
      return true;
    },
  );
  const run = makeLoraRunDir(path.join(dir, 'run'), { base, params });
  assert.throws(() => exportRun({ runDir: path.join(dir, 'nope'), format: 'peft' }), NotFoundError);
  assert.throws(
    () => exportRun({ runDir: run, format: 'peft', checkpoint: 'best' }),
    NotFoundError,
  );
  assert.throws(
    () => exportRun({ runDir: run, format: 'peft', checkpoint: 'step-000009' }),
    NotFoundError,
  );
  assert.throws(
    () => exportRun({ runDir: run, format: 'peft', checkpoint: '../run' }),
    FormatError,
  );
  // run.json says tiny-llama is not the 30-layer SmolLM2 the helper records: refused.
  assert.throws(
    () => exportRun({ runDir: run, format: 'gguf-lora' }),
    /not the one the run trained/,
  );
  assert.throws(() => runExport(run, { checkpoint: 'latest' }), ConfigError, '--format required');
  assert.throws(() => runExport(run, { checkpoint: 'latest', format: 'onnx' }), ConfigError);
  // A full fine-tuning run has no adapter.
  const info = JSON.parse(fs.readFileSync(path.join(run, 'run.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ ...info, adapter: 'full' }));
  const cfg = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  fs.writeFileSync(
    path.join(run, 'config.json'),
    JSON.stringify({ ...cfg, adapter: { kind: 'full' } }),
  );
  assert.throws(() => exportRun({ runDir: run, format: 'peft' }), UnsupportedError);
  assert.throws(() => exportRun({ runDir: run, format: 'gguf-lora' }), UnsupportedError);
  fs.rmSync(dir, { recursive: true });
});

test('readPeftLoraWeights reads the PEFT-written reference with ranks and scalings', () => {
  const w = readPeftLoraWeights(REF);
  assert.equal(w.modules.size, ADAPTER.layers * 2);
  const m = w.modules.get('model.layers.0.self_attn.v_proj')!;
  assert.deepEqual([m.r, m.nIn, m.nOut, m.scaling], [2, 576, 192, 2]);
});

describe('rl4qe export with a Hugging Face directory base (tiny-llama fixture)', () => {
  const base = path.join(FIXTURES, 'tiny-llama');
  const baseInfo = { architecture: 'llama', hiddenSize: 64, numLayers: 2 };
  const targets = ['q_proj', 'v_proj', 'down_proj'];
  let dir: string;
  before(() => {
    dir = tmpdir();
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Logits of the fixture's first batch row at every position. */
  const rowLogits = (m: CausalLM): Float32Array =>
    promptLogits(m, loadFixture('tiny-llama').expected.inputIds[0]!);

  test('merged LoRA: W + (α/r)·B·A in the adapted weights, every other tensor and config.json byte-identical', () => {
    const { model } = loadSafetensorsModel(base);
    const params = addLora(model, { r: 4, alpha: 8, targets, rng: new Rng(11) });
    const rng = new Rng(12);
    for (const [n, t] of params)
      if (n.includes('lora_B')) t.data.set(t.data.map(() => rng.uniform(-0.3, 0.3)));
    const plain = new Map(
      [...params].map(([n, t]) => [n, { data: Float32Array.from(t.data), shape: [...t.shape] }]),
    );
    const runDir = makeLoraRunDir(path.join(dir, 'lora'), {
      base,
      baseInfo,
      params: plain,
      r: 4,
      alpha: 8,
      targets,
    });
    const want = rowLogits(model);
    const r = exportRun({ runDir, format: 'merged', out: path.join(dir, 'merged') });
    assert.deepEqual(r.notes, []);
    assert.deepEqual(
      fs.readFileSync(path.join(r.out, 'config.json')),
      fs.readFileSync(path.join(base, 'config.json')),
      'config.json copied byte for byte',
    );
    const merged = loadSafetensorsModel(r.out).model;
    const got = rowLogits(merged);
    let d = 0;
    got.forEach((x, i) => (d = Math.max(d, Math.abs(x - want[i]!))));
    assert.ok(d < 1e-4, `merged vs base + LoRA: max |Δlogit| ${d}`);
    merged.release();
    using a = SafetensorsFile.open(path.join(base, 'model.safetensors'));
    using b = SafetensorsFile.open(path.join(r.out, 'model.safetensors'));
    assert.deepEqual(b.tensors.map((t) => t.name).sort(), a.tensors.map((t) => t.name).sort());
    for (const t of a.tensors) {
      const adapted = targets.some((x) => t.name.endsWith(`.${x}.weight`));
      const same =
        Buffer.compare(Buffer.from(a.readBytes(t)), Buffer.from(b.readBytes(t.name))) === 0;
      assert.equal(same, !adapted, `${t.name}: ${adapted ? 'merged' : 'copied as it is'}`);
    }
    // And the gguf-lora of an HF base: q rows permuted, names mapped.
    const g = exportRun({ runDir, format: 'gguf-lora' });
    const ad = readGgufLoraAdapter(g.out);
    assert.deepEqual(ad.pairs.map((p) => p.base).sort(), [
      'blk.0.attn_q.weight',
      'blk.0.attn_v.weight',
      'blk.0.ffn_down.weight',
      'blk.1.attn_q.weight',
      'blk.1.attn_v.weight',
      'blk.1.ffn_down.weight',
    ]);
    const { model: fresh } = loadSafetensorsModel(base);
    const att = attachAdapter(fresh, g.out);
    assert.equal(att.kind, 'gguf-lora');
    assert.equal(adapterSha256(g.out).length, 64);
    assert.notEqual(
      adapterSha256(g.out),
      peftAdapterSha256(path.join(runDir, 'checkpoints', 'step-000001', 'adapter')),
    );
    const back = rowLogits(fresh);
    back.forEach((x, i) =>
      assert.ok(Math.abs(x - want[i]!) < 1e-5, `GGUF LoRA attached: logit ${i}`),
    );
    assert.equal(
      attachAdapter(fresh, path.join(runDir, 'checkpoints', 'step-000001', 'adapter')).kind,
      'peft',
    );
    model.release();
    fresh.release();
  });

  test('merged full fine-tuning: the trained tensors replace the base ones; peft/gguf-lora refused', () => {
    const f = loadFixture('tiny-llama');
    const name = 'model.layers.1.mlp.up_proj.weight';
    const w = f.weights.get(name)!;
    const trained = { data: w.data.map((x, i) => x + 0.01 * Math.sin(i)), shape: w.shape };
    const runDir = makeFullRunDir(path.join(dir, 'full'), {
      base,
      baseInfo,
      weights: new Map([[name, trained]]),
    });
    const r = exportRun({ runDir, format: 'merged' });
    assert.equal(r.out, path.join(runDir, 'export', 'step-000001-merged'));
    using b = SafetensorsFile.open(path.join(r.out, 'model.safetensors'));
    assert.deepEqual(b.readF32(name), trained.data);
    assert.deepEqual(
      b.readF32('model.layers.0.mlp.up_proj.weight'),
      f.weights.get('model.layers.0.mlp.up_proj.weight')!.data,
    );
    assert.throws(() => exportRun({ runDir, format: 'peft' }), UnsupportedError);
    // Another base file than the one run.json's digest names: refused unless told to accept it.
    const info = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')) as RunInfo;
    fs.writeFileSync(
      path.join(runDir, 'run.json'),
      JSON.stringify({ ...info, base: { ...info.base, digest: '0123456789abcdef' } }),
    );
    assert.throws(
      () => exportRun({ runDir, format: 'merged', overwrite: true }),
      /not the file the run trained on/,
    );
    exportRun({ runDir, format: 'merged', overwrite: true, verifyBase: false });
    // A trained tensor the base lacks means the wrong base: refused, nothing written.
    const bad = makeFullRunDir(path.join(dir, 'bad'), {
      base,
      baseInfo,
      weights: new Map([['model.layers.7.mlp.up_proj.weight', trained]]),
    });
    assert.throws(() => exportRun({ runDir: bad, format: 'merged' }), /without a base weight/);
    assert.ok(!fs.existsSync(path.join(bad, 'export', 'step-000001-merged')));
  });
});

test('the export command (commander): flags to exportRun, --json result, errors typed', async () => {
  const { Command } = await import('commander');
  const { registerExport } = await import('../../src/cli/commands/export.js');
  const dir = tmpdir();
  const base = path.join(FIXTURES, 'tiny-llama');
  const params = new Map([
    [
      'model.layers.0.self_attn.q_proj.lora_A.weight',
      { data: new Float32Array(2 * 64).fill(0.5), shape: [2, 64] },
    ],
    [
      'model.layers.0.self_attn.q_proj.lora_B.weight',
      { data: new Float32Array(64 * 2).fill(0.25), shape: [64, 2] },
    ],
  ]);
  const runDir = makeLoraRunDir(path.join(dir, 'run'), {
    base,
    baseInfo: { architecture: 'llama', hiddenSize: 64, numLayers: 2 },
    params,
    targets: ['q_proj'],
  });
  const cli = async (...args: string[]): Promise<string> => {
    const program = new Command('rl4qe').exitOverride();
    registerExport(program);
    const chunks: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (chunks.push(s), true)) as typeof process.stdout.write;
    try {
      await program.parseAsync(args, { from: 'user' });
    } finally {
      process.stdout.write = write;
    }
    return chunks.join('');
  };
  const out = path.join(dir, 'a.gguf');
  const r = JSON.parse(
    await cli(
      'export',
      runDir,
      '--format',
      'gguf-lora',
      '--out',
      out,
      '--checkpoint',
      'latest',
      '--json',
    ),
  ) as { out: string; format: string; checkpoint: string };
  assert.deepEqual(r, { ...r, out, format: 'gguf-lora', checkpoint: 'step-000001' });
  assert.equal(readGgufLoraAdapter(out).pairs.length, 1);
  await assert.rejects(cli('export', runDir, '--format', 'gguf-lora', '--out', out), ConfigError);
  const text = await cli('export', runDir, '--format', 'gguf-lora', '--out', out, '--force');
  assert.match(text, /gguf-lora export of step-000001/);
  await assert.rejects(cli('export', runDir, '--format', 'merged', '--dtype', 'F8'), ConfigError);
  fs.rmSync(dir, { recursive: true });
});

test('readGgufLoraAdapter / attachGgufLoraAdapter refuse a model GGUF, another architecture, a wrong size', () => {
  assert.throws(() => readGgufLoraAdapter(smollm2Path()), /not an adapter/);
  const dir = tmpdir();
  const f = loadFixture('tiny-llama');
  const file = path.join(dir, 'q.gguf');
  const pair = (nOut: number) => ({
    base: 'blk.0.attn_q.weight',
    a: new Float32Array(2 * 64).fill(0.1),
    b: new Float32Array(nOut * 2).fill(0.1),
    r: 2,
    nIn: 64,
    nOut,
  });
  const { model } = loadSafetensorsModel(path.join(FIXTURES, 'tiny-llama'));
  writeGgufLoraAdapter(file, { architecture: 'qwen2', alpha: 4, pairs: [pair(64)] });
  assert.throws(() => attachGgufLoraAdapter(model, file), /another architecture/);
  fs.rmSync(file);
  writeGgufLoraAdapter(file, { architecture: 'llama', alpha: 4, pairs: [pair(32)] });
  assert.throws(() => attachGgufLoraAdapter(model, file), /wrong shape/);
  fs.rmSync(file);
  writeGgufLoraAdapter(file, { architecture: 'llama', alpha: 0, pairs: [pair(64)] });
  const info = attachGgufLoraAdapter(model, file);
  assert.equal(info.modules[0]!.scaling, 1, "no alpha: llama.cpp's scale 1");
  assert.equal(f.config.hiddenSize, 64);
  model.release();
  fs.rmSync(dir, { recursive: true });
});
