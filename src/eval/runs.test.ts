import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  EvalRefusedError,
  baseModelInfo,
  checkBaseModel,
  checkSplitOverlap,
  normalizeModelName,
  readRunInfo,
  resolveAdapter,
} from './runs.js';
import { modelDigest } from '../train/run-dir.js';
import { makeSplit } from '../data/splits.js';
import type { CodeTask } from '../data/tasks.js';
import { cachePaths } from '../util/paths.js';
import { repoRoot } from '../data/paths.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const ADAPTER = path.join(repoRoot(), 'test/fixtures/generators/local/adapter-smollm2');

function needModel(): void {
  assert.ok(
    existsSync(SMOL),
    `test model missing: ${SMOL}\n  run: node scripts/fetch-test-models.mjs`,
  );
}

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'rl4qe-eval-runs-'));
}

function writeRun(
  dir: string,
  o: {
    version?: number;
    digest?: string;
    hiddenSize?: number;
    checkpoints?: string[];
    best?: string;
  },
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'run.json'),
    JSON.stringify({
      version: o.version ?? 1,
      rl4qe: '0.1.0',
      createdAt: '2026-12-04T00:00:00Z',
      base: {
        model: SMOL,
        digest: o.digest ?? modelDigest(SMOL),
        architecture: 'llama',
        hiddenSize: o.hiddenSize ?? 576,
        numLayers: 30,
      },
      adapter: 'lora',
    }),
  );
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      refiner: { format: 'chat' },
      generator: { input: 'original+refined' },
      rollout: { maxNewTokens: 48 },
    }),
  );
  const cks = o.checkpoints ?? ['step-000001'];
  for (const c of cks)
    cpSync(ADAPTER, path.join(dir, 'checkpoints', c, 'adapter'), { recursive: true });
  writeFileSync(path.join(dir, 'checkpoints', 'latest'), cks[cks.length - 1]! + '\n');
  if (o.best) writeFileSync(path.join(dir, 'checkpoints', 'best'), o.best + '\n');
}

test('model names reduce to comparable stems', () => {
  assert.equal(normalizeModelName('smollm2-135m-instruct-q4_1.gguf'), 'smollm2-135m-instruct');
  assert.equal(normalizeModelName('SmolLM2-135M-Instruct.Q4_1.gguf'), 'smollm2-135m-instruct');
  assert.equal(normalizeModelName('HuggingFaceTB/SmolLM2-135M-Instruct'), 'smollm2-135m-instruct');
  assert.equal(
    normalizeModelName('/m/qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf'),
    'qwen2.5-coder-0.5b-instruct-awq',
  );
  assert.notEqual(normalizeModelName('Qwen/Qwen2.5-Coder-0.5B-Instruct'), 'smollm2-135m-instruct');
});

test('a run directory resolves to its best checkpoint, else latest; its settings are read', async () => {
  const d = tmp();
  try {
    writeRun(d, { checkpoints: ['step-000002', 'step-000003'], best: 'step-000002' });
    const best = await resolveAdapter(d);
    assert.equal(best.checkpoint?.name, 'step-000002');
    assert.equal(best.checkpoint?.via, 'best');
    assert.equal(best.adapterDir, path.join(d, 'checkpoints', 'step-000002', 'adapter'));
    assert.equal(best.prompt.format, 'chat');
    assert.equal(best.prompt.generatorInput, 'original+refined');
    assert.equal(best.prompt.maxNewTokens, 48);
    const latest = await resolveAdapter(d, { checkpoint: 'latest' });
    assert.equal(latest.checkpoint?.name, 'step-000003');
    rmSync(path.join(d, 'checkpoints', 'best'));
    const fallback = await resolveAdapter(d);
    assert.deepEqual(fallback.checkpoint, { name: 'step-000003', via: 'latest' });
    // An adapter directory inside a run is traced back to the run (and its guards).
    const inner = await resolveAdapter(path.join(d, 'checkpoints', 'step-000002', 'adapter'));
    assert.equal(inner.runDir, d);
    assert.equal(inner.checkpoint?.via, 'given');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('a run directory of another version is refused', async () => {
  const d = tmp();
  try {
    writeRun(d, { version: 2 });
    assert.throws(
      () => readRunInfo(d),
      (e: unknown) =>
        e instanceof EvalRefusedError && e.reason === 'run-version' && /version 2/.test(e.message),
    );
    await assert.rejects(resolveAdapter(d), EvalRefusedError);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('base model: the run digest and shape must be the refiner; adapter names must match', async () => {
  needModel();
  const refiner = baseModelInfo(SMOL);
  assert.equal(refiner.digest, modelDigest(SMOL));
  assert.equal(refiner.architecture, 'llama');
  assert.equal(refiner.hiddenSize, 576);
  const d = tmp();
  try {
    writeRun(path.join(d, 'ok'), {});
    const ok = checkBaseModel(await resolveAdapter(path.join(d, 'ok')), refiner);
    assert.equal(ok.via, 'run-digest');
    writeRun(path.join(d, 'digest'), { digest: '0123456789abcdef' });
    const digest = await resolveAdapter(path.join(d, 'digest'));
    assert.throws(
      () => checkBaseModel(digest, refiner),
      (e: unknown) => e instanceof EvalRefusedError && e.reason === 'base-model',
    );
    writeRun(path.join(d, 'shape'), { hiddenSize: 896 });
    const shape = await resolveAdapter(path.join(d, 'shape'));
    assert.throws(() => checkBaseModel(shape, refiner), /another base model/);
    // A bare PEFT adapter: base_model_name_or_path.
    const fixture = await resolveAdapter(ADAPTER);
    assert.equal(checkBaseModel(fixture, refiner).via, 'adapter-name');
    const other = path.join(d, 'qwen-adapter');
    cpSync(ADAPTER, other, { recursive: true });
    const cfgFile = path.join(other, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      cfgFile,
      JSON.stringify({ ...cfg, base_model_name_or_path: 'Qwen/Qwen2.5-Coder-0.5B-Instruct' }),
    );
    const qwen = await resolveAdapter(other);
    assert.throws(
      () => checkBaseModel(qwen, refiner),
      (e: unknown) =>
        e instanceof EvalRefusedError &&
        e.reason === 'base-model' &&
        /Qwen2\.5-Coder/.test(e.message),
    );
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, base_model_name_or_path: null }));
    assert.equal(checkBaseModel(await resolveAdapter(other), refiner).via, 'unchecked');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('split overlap: an evaluation task in the run training split is refused; families counted', () => {
  const tasks: CodeTask[] = Array.from({ length: 20 }, (_, i) => ({
    id: `t/${i}`,
    source: 'custom',
    query: `q${i}`,
    reference: `r${i}`,
    stratum: 's',
    group: `g${Math.floor(i / 2)}`,
  }));
  const m = makeSplit(tasks, { seed: 1, strategy: 'paper', testSize: 5, dataset: 'custom' });
  const a = {
    arg: 'run',
    kind: 'lora' as const,
    adapterDir: 'run/adapter',
    runDir: 'run',
    split: m,
    prompt: {},
  };
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const test_ = m.ids.test.map((id) => byId.get(id)!);
  const ok = checkSplitOverlap(a, test_, tasks);
  assert.equal(ok.trainOverlap, 0);
  assert.equal(ok.checked, true);
  // The paper strategy splits families: some test tasks have a sibling in train.
  assert.ok(ok.familyOverlap > 0);
  const leaked = [...test_, byId.get(m.ids.train[0]!)!];
  assert.throws(
    () => checkSplitOverlap(a, leaked, tasks),
    (e: unknown) =>
      e instanceof EvalRefusedError &&
      e.reason === 'split-overlap' &&
      e.message.includes(m.ids.train[0]!),
  );
  assert.equal(checkSplitOverlap({ ...a, split: undefined }, leaked, tasks).checked, false);
});
