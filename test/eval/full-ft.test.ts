// Evaluating a full fine-tuning run (adapter.kind 'full': the checkpoint holds every weight, not a
// LoRA delta), on a real one-step run of SmolLM2 (float32) with a refiner prompt budget small
// enough that DS-1000 queries are cut (refiner.maxPromptTokens 64, truncate-middle). Greedy
// decoding of the same weights on the same prompts gives the same tokens, so evaluation must
// reproduce the trainer's own validation rewrites: the untrained arm those of step 0, the run's
// arm those of step 1. That holds only if evaluation fits the prompts as training did and puts
// every trained weight in. Then the refusals: the run's base digest changed, the checkpoint
// outside its run directory, another model as the refiner: each before any model call.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate, EvalRefusedError, type EvalOptions } from '../../src/eval/index.js';
import { FullWeightsGenerator } from '../../src/eval/full-weights.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readJsonlRecords } from '../../src/train/run-dir.js';
import type { SampleRecord } from '../../src/train/records.js';
import type { RewardFn } from '../../src/rewards/types.js';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';
import { LocalEngineGenerator } from '../../src/generators/index.js';
import { cachePaths } from '../../src/util/paths.js';
import type { Tensor } from '../../src/tensor/index.js';
import { requireTestModel } from '../generators/test-model.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const QWEN = path.join(cachePaths.testModels(), 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf');

/** A reward that tells any two different rewrites apart, so every group has an advantage. */
const distinct: RewardFn = {
  name: 'distinct',
  score: (batch) =>
    batch.map((s) => {
      let h = 0;
      for (const c of s.refinedQuery ?? '') h = (h * 31 + c.charCodeAt(0)) % 1000;
      return h / 1000;
    }),
};

describe('eval of a full fine-tuning run (SmolLM2 float32, one step)', () => {
  let d: string;
  let run: string;
  let val: SampleRecord[];

  before(async () => {
    requireTestModel();
    d = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-eval-fullft-'));
    run = path.join(d, 'run');
    const cfg = resolveTrainConfig([
      {
        source: 'test',
        value: {
          refiner: { model: SMOL, weights: 'float32', format: 'paper', maxPromptTokens: 64 },
          adapter: { kind: 'full' },
          optim: { lr: 1e-3 },
          rollout: { queriesPerStep: 1, samplesPerQuery: 2, temperature: 1, maxNewTokens: 8 },
          reward: { weights: { bleu: 1 }, target: { kind: 'rewrite' } },
          generator: { backend: 'none' },
          data: { dataset: 'ds1000', trainLimit: 2, valLimit: 2 },
          eval: { everySteps: 0, problems: 2 },
          run: { dir: run, steps: 1, seed: 3, keepCheckpoints: 1, log: 'quiet' },
        },
      },
    ]);
    await train({ config: cfg, reward: distinct, progress: 'quiet' });
    val = readJsonlRecords<SampleRecord>(path.join(run, 'samples.jsonl')).records.filter(
      (s) => s.validation === true,
    );
  });
  after(() => fs.rmSync(d, { recursive: true, force: true }));

  const opts = (over: Partial<EvalOptions> = {}): EvalOptions => ({
    dataset: 'ds1000',
    split: 'validation',
    limit: 2,
    refiner: { model: SMOL, weights: 'float32' },
    generator: { backend: 'local', model: SMOL, weights: 'quantized' },
    arms: [{ kind: 'untrained' }, { kind: 'adapter', path: run }],
    maxTokens: 4,
    exec: 'off',
    bootstrapResamples: 100,
    cache: path.join(d, 'cache.sqlite'),
    ...over,
  });

  it("reproduces the trainer's validation rewrites: step 0 untrained, step 1 the full weights", async () => {
    const r = await evaluate(opts());
    const ad = r.arms[1]!.adapter!;
    assert.equal(ad.kind, 'full');
    assert.equal(ad.base.via, 'run-digest');
    assert.equal(ad.dir, path.join(run, 'checkpoints', 'step-000001', 'weights'));
    // The run's prompt budget is the arms' (read from its config.json), and it cut queries.
    assert.deepEqual(r.arms[1]!.fit, { maxPromptTokens: 64, overlong: 'truncate-middle' });
    assert.deepEqual(r.arms[0]!.fit, { maxPromptTokens: 64, overlong: 'truncate-middle' });
    assert.equal(r.settings.refiner.maxPromptTokens, 64);
    assert.ok(r.arms[0]!.truncatedPrompts! > 0, 'precondition: a DS-1000 query was cut');
    assert.equal(r.settings.refiner.maxTokens, 8);
    const rewrites = (arm: string): Map<string, string | null> =>
      new Map(r.samples.filter((s) => s.arm === arm).map((s) => [s.task, s.rewrite]));
    const fromTrainer = (step: number): Map<string, string> =>
      new Map(val.filter((s) => s.step === step).map((s) => [s.task, s.rewrite]));
    const untrained = rewrites('untrained');
    const trained = rewrites(r.arms[1]!.name);
    assert.equal(untrained.size, 2);
    assert.deepEqual(untrained, fromTrainer(0));
    assert.deepEqual(trained, fromTrainer(1));
    assert.notDeepEqual(
      fromTrainer(1),
      fromTrainer(0),
      'precondition: the step changed what the refiner writes',
    );
  });

  it('puts every checkpoint weight into the model, under its own cache identity', async () => {
    const weights = path.join(run, 'checkpoints', 'step-000001', 'weights');
    const g = new FullWeightsGenerator({ local: { model: SMOL }, weightsDir: weights });
    // The float32 base the run was trained from (a GGUF's default, auto, would keep its blocks).
    const base = new LocalEngineGenerator({ model: SMOL, weights: 'float32' });
    try {
      assert.match(g.identity.model, /\+full:.*:[0-9a-f]{16}$/);
      assert.notEqual(g.identity.model, base.identity.model);
      const E = await g.engine();
      const B = await base.engine();
      using f = SafetensorsFile.open(path.join(weights, 'model.safetensors'));
      let changed = 0;
      const baseSlots = new Map(B.model.slots().map((s) => [s.name, s]));
      for (const s of E.model.slots()) {
        const want = f.readF32(s.name);
        const got = (s.get() as Tensor).data as Float32Array;
        assert.equal(got.length, want.length, s.name);
        assert.ok(
          got.every((v, i) => Object.is(v, want[i])),
          `${s.name}: the model holds the checkpoint's values`,
        );
        const b = (baseSlots.get(s.name)!.get() as Tensor).data as Float32Array;
        if (b.some((v, i) => v !== want[i])) changed++;
      }
      assert.equal(E.model.slots().length, f.tensors.length);
      assert.ok(changed > 0, 'precondition: training changed the weights');
    } finally {
      await g.dispose();
      await base.dispose();
    }
  });

  it('refuses, before any model call, another base digest, a checkpoint outside its run, another refiner', async () => {
    const cache = path.join(d, 'refused.sqlite');
    // The run's base digest changed (a run of another model).
    const runJson = path.join(run, 'run.json');
    const info = fs.readFileSync(runJson, 'utf8');
    const edited = JSON.parse(info) as { base: { digest: string } };
    edited.base.digest = 'feedfacefeedface';
    fs.writeFileSync(runJson, JSON.stringify(edited));
    try {
      await assert.rejects(
        evaluate(opts({ cache })),
        (e: unknown) =>
          e instanceof EvalRefusedError && e.reason === 'base-model' && /feedface/.test(e.message),
      );
    } finally {
      fs.writeFileSync(runJson, info);
    }
    // The checkpoint outside its run directory: nothing says which model its weights belong to.
    const loose = path.join(d, 'loose');
    fs.mkdirSync(loose);
    fs.symlinkSync(
      path.join(run, 'checkpoints', 'step-000001', 'weights'),
      path.join(loose, 'weights'),
    );
    await assert.rejects(
      evaluate(opts({ cache, arms: [{ kind: 'untrained' }, { kind: 'adapter', path: loose }] })),
      (e: unknown) =>
        e instanceof EvalRefusedError &&
        e.reason === 'base-model' &&
        /outside its run directory/.test(e.message),
    );
    // Another model as the refiner.
    if (fs.existsSync(QWEN))
      await assert.rejects(
        evaluate(opts({ cache, refiner: { model: QWEN, weights: 'quantized' } })),
        (e: unknown) => e instanceof EvalRefusedError && e.reason === 'base-model',
      );
    assert.ok(!fs.existsSync(cache), 'no cache opened: nothing was generated');
  });
});
