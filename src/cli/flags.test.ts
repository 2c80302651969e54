// Flag values: durations with units, the weights mode (auto = quantized for a GGUF file, float32
// for a Hugging Face directory, also in the cache identity), and the generator a set of flags
// chooses, with errors that name the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../util/errors.js';
import { LocalEngineGenerator, defaultGgufPath, resolveLocalWeights } from '../generators/index.js';
import {
  durationFlag,
  generatorFromFlags,
  inFlagTerms,
  parseFlagsConfig,
  weightsFlag,
  withRevision,
} from './flags.js';

const TINY_DIR = 'test/fixtures/models/tiny-llama';

const refused = (f: () => unknown, flag: string): void =>
  assert.throws(f, (e: unknown) => e instanceof ConfigError && e.where === flag);

test('durations: a unit, or a bare number of seconds; anything else names the flag', () => {
  assert.equal(durationFlag('--timeout', '500ms'), 500);
  assert.equal(durationFlag('--timeout', '30s'), 30_000);
  assert.equal(durationFlag('--timeout', '2m'), 120_000);
  assert.equal(durationFlag('--timeout', '1h'), 3_600_000);
  assert.equal(durationFlag('--timeout', '1.5s'), 1500);
  assert.equal(durationFlag('--timeout', '60'), 60_000);
  assert.equal(durationFlag('--timeout', undefined), undefined);
  for (const bad of ['5x', '-1s', '', 'ms', '1e3', '2 minutes'])
    refused(() => durationFlag('--timeout', bad), '--timeout');
});

test('weights: auto resolves to quantized for a GGUF file and float32 for a directory', () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-weights-'));
  try {
    const gguf = path.join(d, 'm.gguf');
    writeFileSync(gguf, 'not read: the mode depends on file vs directory only');
    assert.equal(resolveLocalWeights(gguf, undefined), 'quantized');
    assert.equal(resolveLocalWeights(gguf, 'auto'), 'quantized');
    assert.equal(resolveLocalWeights(gguf, 'float32'), 'float32');
    assert.equal(resolveLocalWeights(d, undefined), 'float32');
    assert.equal(resolveLocalWeights(d, 'auto'), 'float32');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
  assert.equal(weightsFlag('--weights', 'auto'), 'auto');
  refused(() => weightsFlag('--weights', 'f16'), '--weights');
});

test('the cache identity follows the resolved mode: auto on a GGUF = quantized, never float32', () => {
  const gguf = defaultGgufPath();
  assert.ok(existsSync(gguf), `test model missing: ${gguf} (node scripts/fetch-test-models.mjs)`);
  const id = (weights?: 'auto' | 'float32' | 'quantized'): string => {
    const g = new LocalEngineGenerator({ model: gguf, ...(weights ? { weights } : {}) });
    assert.equal(g.weights, resolveLocalWeights(gguf, weights));
    return g.identity.model;
  };
  assert.equal(id(), id('quantized'));
  assert.equal(id('auto'), id('quantized'));
  assert.notEqual(id(), id('float32'));
  assert.match(id(), /\+weights:quantized$/);
  // A Hugging Face directory: auto is float32, the identity it always had.
  const dir = new LocalEngineGenerator({ model: TINY_DIR });
  assert.equal(dir.weights, 'float32');
  assert.equal(
    dir.identity.model,
    new LocalEngineGenerator({ model: TINY_DIR, weights: 'float32' }).identity.model,
  );
});

test('the generator flags choose a backend; misplaced flags name themselves', () => {
  assert.equal(generatorFromFlags({}), undefined);
  assert.deepEqual(generatorFromFlags({ backend: 'llama.cpp', model: TINY_DIR, batchSize: '2' }), {
    backend: 'llama.cpp',
    modelPath: TINY_DIR,
    threads: undefined,
    sequences: 2,
  });
  const local = generatorFromFlags({ backend: 'local', model: TINY_DIR, batchWait: '20ms' });
  assert.ok(local?.backend === 'local');
  assert.equal(local.weights, undefined); // auto, resolved by the engine
  assert.equal(local.batchWaitMs, 20);
  assert.deepEqual(
    generatorFromFlags({ baseUrl: 'http://h/v1', model: 'gpt', timeout: '30s', concurrency: '4' }),
    { backend: 'openai', model: 'gpt', baseUrl: 'http://h/v1', timeoutMs: 30_000, concurrency: 4 },
  );
  refused(() => generatorFromFlags({ backend: 'vllm' }), '--backend');
  refused(() => generatorFromFlags({ backend: 'llama.cpp', weights: 'float32' }), '--weights');
  refused(() => generatorFromFlags({ backend: 'local', timeout: '1s' }), '--timeout');
  refused(() => generatorFromFlags({ baseUrl: 'http://h/v1' }), '--model');
  refused(
    () => generatorFromFlags({ backend: 'local', model: TINY_DIR, weights: 'f16' }),
    '--weights',
  );
  refused(
    () => generatorFromFlags({ backend: 'openai', model: 'm', timeout: 'soon' }),
    '--timeout',
  );
  assert.throws(
    () => generatorFromFlags({ backend: 'local', model: '/absent/m.gguf' }),
    /--model: model not found/,
  );
  // A schema error on a config built from flags names the flag, not the field.
  refused(() => parseFlagsConfig({ backend: 'local', model: '' }), '--model');
});

test("the generators' hints, which name config fields, read in flag terms", () => {
  assert.equal(
    inFlagTerms(
      'check generator.baseUrl; raise generator.timeoutMs or lower generator.concurrency',
    ),
    'check --base-url; raise --timeout or lower --concurrency',
  );
  assert.equal(inFlagTerms('check generator.modelPath'), 'check --model');
  assert.equal(inFlagTerms('generator.unknownField stays'), 'generator.unknownField stays');
});

test('--revision puts the revision into a Hub id --model; a local path or another @rev is refused', () => {
  const g = generatorFromFlags({ backend: 'local', model: 'org/name', revision: 'v1' });
  assert.ok(g?.backend === 'local' && g.model === 'org/name@v1');
  const f = generatorFromFlags({ backend: 'llama.cpp', model: 'org/name/m.gguf', revision: 'abc' });
  assert.ok(f?.backend === 'llama.cpp' && f.modelPath === 'org/name@abc/m.gguf');
  assert.equal(withRevision('--model', 'org/name@v1', 'v1'), 'org/name@v1');
  refused(() => withRevision('--model', 'org/name@v1', 'v2'), '--revision');
  refused(() => withRevision('--model', TINY_DIR, 'v1'), '--revision');
  refused(() => generatorFromFlags({ backend: 'local', revision: 'v1' }), '--revision');
  refused(
    () => generatorFromFlags({ baseUrl: 'http://h/v1', model: 'm', revision: 'v1' }),
    '--revision',
  );
});
