import { test } from 'node:test';
import assert from 'node:assert/strict';
import { armsFrom, evalOptionsFrom, type EvalFlags } from './eval.js';
import { ConfigError } from '../../util/errors.js';

const base: EvalFlags = {
  refinerModel: 'm.gguf',
  backend: 'local',
  model: 'g.gguf',
  dataset: 'ds1000',
  split: 'test',
  exec: 'auto',
  checkpoint: 'best',
  cache: true,
};

test('eval flags → options: defaults, arms, weights auto (resolved by the loader), split names', () => {
  const o = evalOptionsFrom(base);
  assert.deepEqual(
    o.arms!.map((a) => a.kind),
    ['original', 'untrained', 'prompt-search'],
  );
  // auto: generators/local.ts resolves it per model (cli/flags.test.ts checks GGUF vs directory).
  assert.equal(o.refiner.weights, 'auto');
  assert.equal(o.generator.backend, 'local');
  assert.ok(o.generator.backend === 'local' && o.generator.model === 'g.gguf');
  assert.equal(o.generator.weights, undefined);
  assert.deepEqual(o.generator.cache, { enabled: true });
  const f32 = evalOptionsFrom({ ...base, weights: 'float32', refinerWeights: 'float32' });
  assert.equal(f32.refiner.weights, 'float32');
  assert.ok(f32.generator.backend === 'local' && f32.generator.weights === 'float32');
  assert.equal(o.split, 'test');
  assert.equal('cache' in o, false); // the shared default cache
  const v = evalOptionsFrom({
    ...base,
    split: 'val',
    limit: '5',
    samples: '4',
    temperature: '0.7',
    refinerAdapter: ['runs/a', 'adapters/b'],
    cache: false,
    refinerFormat: 'chat-ds1000',
    generatorInput: 'original+refined',
  });
  assert.equal(v.split, 'validation');
  assert.equal(v.limit, 5);
  assert.equal(v.samples, 4);
  assert.equal(v.temperature, 0.7);
  assert.equal(v.cache, false);
  assert.equal(v.refiner.format, 'chat-ds1000');
  assert.equal(v.generatorInput, 'original+refined');
  assert.deepEqual(
    v.arms!.map((a) => (a.kind === 'adapter' ? a.path : a.kind)),
    ['original', 'untrained', 'runs/a', 'adapters/b', 'prompt-search'],
  );
  assert.deepEqual(
    armsFrom({ arms: 'original, adapter', refinerAdapter: ['x'] }).map((a) => a.kind),
    ['original', 'adapter'],
  );
});

test('eval flags: bad values are ConfigErrors naming the flag', () => {
  const bad = (f: Partial<EvalFlags>, flag: RegExp): void =>
    assert.throws(
      () => evalOptionsFrom({ ...base, ...f }),
      (e: unknown) => e instanceof ConfigError && flag.test(e.message),
    );
  bad({ config: 'gen.json' }, /exactly one generator/);
  bad({ backend: undefined, model: undefined }, /exactly one generator/);
  bad({ refinerModel: undefined }, /--refiner-model is required/);
  bad({ weights: 'f16' }, /--weights/);
  bad({ refinerWeights: 'f16' }, /--refiner-weights/);
  bad({ arms: 'original,nope' }, /--arms/);
  bad({ arms: 'original,adapter' }, /needs --refiner-adapter/);
  bad({ refinerAdapter: ['x'], arms: 'original,untrained' }, /no adapter arm/);
  bad({ split: 'train' }, /--split/);
  bad({ limit: '0' }, /--limit/);
  bad({ exec: 'maybe' }, /--exec/);
  bad({ refinerFormat: 'fancy' }, /--refiner-format/);
  bad({ generatorInput: 'original' }, /--generator-input/);
  bad({ refinerMaxPromptTokens: '0' }, /--refiner-max-prompt-tokens/);
  bad({ overlong: 'cut' }, /--overlong/);
  bad({ schedule: 'parallel' }, /--schedule/);
});

test('eval flags: the prompt budget and the schedule', () => {
  const o = evalOptionsFrom({
    ...base,
    refinerMaxPromptTokens: '256',
    overlong: 'skip',
    schedule: 'sequential',
  });
  assert.equal(o.refiner.maxPromptTokens, 256);
  assert.equal(o.refiner.overlong, 'skip');
  assert.equal(o.schedule, 'sequential');
  const d = evalOptionsFrom(base);
  assert.equal('maxPromptTokens' in d.refiner, false); // the run's, else the trainer's default
  assert.equal('schedule' in d, false);
});
