import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  GENERATOR_TRAINER_KEYS,
  configDigest,
  configKeys,
  describeConfig,
  generatorBackendConfig,
  loadConfigFile,
  loadTrainConfig,
  parseSetFlags,
  refinerWeights,
  resolveTrainConfig,
  trainConfigSchema,
  type ConfigLayer,
  type TrainConfig,
} from './config.js';
import { generatorConfigSchema } from '../generators/config.js';
import { ConfigError, FormatError, Rl4qeError } from '../util/errors.js';
import { rl4qeHome } from '../util/paths.js';

const CONFIGS = fileURLToPath(new URL('../../../configs/', import.meta.url));

/** The least a valid configuration needs: a model, and (generator 'none') a rewrite target. */
const BASE = { refiner: { model: 'm.gguf' }, reward: { target: { kind: 'rewrite' } } };

function resolve(...values: unknown[]): TrainConfig {
  return resolveTrainConfig(values.map((value, i) => ({ source: `layer${i}`, value })));
}

function tmpFiles(): { dir: string; write: (name: string, text: string) => string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-config-'));
  return {
    dir,
    write: (name, text) => {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      return f;
    },
  };
}

function throwsConfig(
  fn: () => unknown,
  check: { where?: string | RegExp; message?: RegExp; expected?: RegExp; hint?: RegExp },
  cls: typeof Rl4qeError = ConfigError,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    const err = e as Rl4qeError;
    if (typeof check.where === 'string') assert.equal(err.where, check.where, err.message);
    else if (check.where) assert.match(err.where ?? '', check.where, err.message);
    if (check.message) assert.match(err.message, check.message);
    if (check.expected) assert.match(err.expected ?? '', check.expected, err.message);
    if (check.hint) assert.match(err.hint ?? '', check.hint, err.message);
    return true;
  });
}

test('defaults resolve in every section', () => {
  const c = resolve(BASE);
  assert.equal(c.refiner.model, 'm.gguf');
  assert.equal(c.refiner.weights, 'auto');
  assert.equal(c.refiner.format, 'paper');
  assert.equal(c.refiner.maxPromptTokens, 512);
  assert.equal(c.refiner.overlong, 'truncate-middle');
  assert.deepEqual(c.adapter, {
    kind: 'lora',
    r: 8,
    alpha: 32,
    dropout: 0.1,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  });
  assert.deepEqual(c.optim, {
    lr: 1e-4,
    weightDecay: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    maxGradNorm: 1,
    warmupSteps: 0,
    schedule: 'constant',
  });
  assert.equal(c.rollout.queriesPerStep, 2);
  assert.equal(c.rollout.samplesPerQuery, 4);
  assert.equal(c.rollout.gradAccumulation, 1);
  assert.equal(c.rollout.temperature, 0.7);
  assert.equal(c.rollout.topP, 0.9);
  assert.equal(c.rollout.topK, 0);
  assert.equal(c.rollout.maxNewTokens, 128);
  assert.equal(c.rollout.sharedPrompt, true);
  assert.deepEqual(c.loss, {
    baseline: 'rloo',
    emaDecay: 0.9,
    scaleByStd: false,
    normalization: 'sequence',
    klCoef: 0,
    entropyCoef: 0,
  });
  assert.deepEqual(c.reward.weights, { bleu: 1 });
  assert.equal(c.reward.nullPolicy, 'skip');
  assert.deepEqual(c.reward.exec, { pSyntax: 0.5, pTimeout: 0.5 });
  assert.deepEqual(c.reward.target, { kind: 'rewrite' });
  assert.equal(c.generator.backend, 'none');
  assert.equal(c.generator.input, 'refined');
  assert.equal(c.generator.format, 'paper');
  assert.equal(c.generator.maxConsecutiveFailures, 20);
  assert.deepEqual(c.generator.params, { temperature: 0, maxTokens: 512 });
  assert.deepEqual(c.data, { dataset: 'ds1000', split: 'leak-free', invalidRows: 'fail' });
  assert.deepEqual(c.eval, { everySteps: 0, problems: 20, metric: 'reward', keepBest: true });
  assert.match(c.run.dir, /^runs[/\\]\d{8}-\d{6}$/);
  assert.equal(c.run.steps, 100);
  assert.equal(c.run.seed, 0);
  assert.equal(c.run.deterministic, false);
  assert.equal(c.run.checkpointEvery, 10);
  assert.equal(c.run.keepCheckpoints, 2);
  assert.equal(c.run.threads, undefined);
  assert.equal(c.run.log, 'auto');
  // The schema alone fills the same defaults.
  assert.equal(trainConfigSchema.parse(BASE).optim.lr, 1e-4);
});

test('layers override in order: file ← file ← --set; objects merge, arrays replace', () => {
  const t = tmpFiles();
  try {
    const a = t.write(
      'a.yaml',
      [
        'refiner:',
        '  model: a.gguf',
        'optim:',
        '  lr: 3.0e-5',
        '  warmupSteps: 5',
        'adapter:',
        '  targets: [q_proj, v_proj, up_proj]',
        'reward:',
        '  weights: {bleu: 1, rouge_l: 0.5}',
        '  target: {kind: rewrite}',
      ].join('\n'),
    );
    const b = t.write(
      'b.json',
      JSON.stringify({ optim: { lr: 2e-5 }, adapter: { targets: ['o_proj'] }, run: { seed: 3 } }),
    );
    const c = loadTrainConfig({
      files: [a, b],
      sets: ['optim.lr=1e-5', 'reward.weights.rouge_l=0', 'run.dir=out/x'],
    });
    assert.equal(c.refiner.model, 'a.gguf');
    assert.equal(c.optim.lr, 1e-5); // --set beats both files
    assert.equal(c.optim.warmupSteps, 5); // kept from the first file
    assert.deepEqual(c.adapter.targets, ['o_proj']); // arrays replace
    assert.deepEqual(c.reward.weights, { bleu: 1, rouge_l: 0 }); // maps merge
    assert.equal(c.run.seed, 3);
    assert.equal(c.run.dir, 'out/x');
    // Without the flags, the JSON file (later) beats the YAML file.
    assert.equal(loadTrainConfig({ files: [a, b] }).optim.lr, 2e-5);
    assert.equal(loadTrainConfig({ files: [b, a] }).optim.lr, 3e-5);
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('parseSetFlags: YAML scalars and flow collections; malformed flags name the flag', () => {
  assert.deepEqual(
    parseSetFlags([
      'optim.lr=3e-5',
      'rollout.samplesPerQuery=8',
      'rollout.sharedPrompt=false',
      'adapter.targets=[q_proj, v_proj]',
      'reward.weights={bleu: 1, exec: 0.5}',
      'refiner.model=~/m.gguf',
      'generator.system=a=b',
      'refiner.template=',
    ]),
    {
      optim: { lr: 3e-5 },
      rollout: { samplesPerQuery: 8, sharedPrompt: false },
      adapter: { targets: ['q_proj', 'v_proj'] },
      reward: { weights: { bleu: 1, exec: 0.5 } },
      refiner: { model: '~/m.gguf', template: '' },
      generator: { system: 'a=b' },
    },
  );
  throwsConfig(() => parseSetFlags(['optim.lr']), { where: '--set optim.lr', expected: /--set/ });
  throwsConfig(() => parseSetFlags(['optim..lr=1']), { where: /^--set optim\.\.lr=1/ });
});

test('unknown keys name the file and line, and suggest the key meant', () => {
  const t = tmpFiles();
  try {
    const f = t.write(
      'x.yaml',
      [
        '# a comment',
        'refiner:',
        '  model: m.gguf',
        'reward:',
        '  target:',
        '    kind: rewrite',
        'optim:',
        '  warmupSteps: 2',
        '  lrr: 1.0e-4',
      ].join('\n'),
    );
    throwsConfig(() => loadTrainConfig({ files: [f] }), {
      where: `${f}:9 (optim.lrr)`,
      message: /unknown key 'lrr'/,
      expected: /lr, weightDecay/,
      hint: /optim\.lr'/,
    });
    const g = t.write('g.yaml', 'refiner: {model: m}\nrewards:\n  weights: {bleu: 1}\n');
    throwsConfig(() => loadTrainConfig({ files: [g] }), {
      where: `${g}:2 (rewards)`,
      hint: /'reward'/,
    });
    // A reward name that does not exist; and an unknown key from a flag.
    throwsConfig(() => loadTrainConfig({ files: [f], sets: ['optim.lrr=1e-4'] }), {
      where: '--set optim.lrr',
    });
    throwsConfig(() => resolve(BASE, { reward: { weights: { blue: 1 } } }), {
      where: 'layer1 (reward.weights.blue)',
      expected: /bleu, rouge_l, f1, overlap, css, exec/,
      hint: /reward\.weights\.bleu/,
    });
    // Backend keys are checked against the chosen backend.
    throwsConfig(
      () =>
        resolve(BASE, {
          generator: { backend: 'openai', baseUrl: 'u', model: 'x', weights: 'quantized' },
        }),
      { where: 'layer1 (generator.weights)', expected: /baseUrl/ },
    );
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('wrong types and values name the key, the source and what was expected', () => {
  const t = tmpFiles();
  try {
    const f = t.write(
      'x.yaml',
      'refiner:\n  model: m\nreward:\n  target: {kind: rewrite}\noptim:\n  lr: fast\n',
    );
    throwsConfig(() => loadTrainConfig({ files: [f] }), {
      where: `${f}:6 (optim.lr)`,
      message: /wrong type/,
      expected: /number/,
    });
    throwsConfig(() => loadTrainConfig({ files: [f], sets: ['optim.lr=-1'] }), {
      where: '--set optim.lr',
      message: /out of range/,
      expected: /> 0/,
    });
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
  throwsConfig(() => resolve(BASE, { rollout: { samplesPerQuery: 2.5 } }), {
    where: 'layer1 (rollout.samplesPerQuery)',
    expected: /int/,
  });
  throwsConfig(() => resolve(BASE, { loss: { baseline: 'grpo' } }), {
    where: 'layer1 (loss.baseline)',
    expected: /"rloo" \| "none" \| "ema" \| "group"/,
  });
  throwsConfig(() => resolve(BASE, { adapter: { targets: ['q_proj', 'lm_head'] } }), {
    where: 'layer1 (adapter.targets.1)',
    expected: /gate_proj/,
  });
  throwsConfig(() => resolve(BASE, { generator: { backend: 'vllm' } }), {
    where: 'layer1 (generator.backend)',
    expected: /"none" \| "openai" \| "llama\.cpp" \| "local"/,
  });
  throwsConfig(() => resolve(BASE, { generator: { backend: 'local' } }), {
    where: 'generator.model',
    message: /missing required key/,
  });
  throwsConfig(() => resolve({ reward: { target: { kind: 'rewrite' } } }), {
    where: 'refiner.model',
    message: /missing required key/,
    hint: /--set refiner\.model=/,
  });
  throwsConfig(() => resolve(BASE, [1, 2]), { where: 'layer1', expected: /mapping/ });
});

test('impossible combinations are errors naming the key', () => {
  const cases: { base?: unknown; value: unknown; key: string; message: RegExp; hint?: RegExp }[] = [
    {
      value: { adapter: { kind: 'full' }, refiner: { model: 'm', weights: 'quantized' } },
      key: 'refiner.weights',
      message: /float32/,
    },
    {
      value: { adapter: { kind: 'full', init: 'peft/' } },
      key: 'adapter.init',
      message: /PEFT/,
    },
    {
      value: { adapter: { targets: ['q_proj', 'q_proj'] } },
      key: 'adapter.targets',
      message: /twice/,
    },
    {
      value: { rollout: { queriesPerStep: 3, gradAccumulation: 2 } },
      key: 'rollout.gradAccumulation',
      message: /does not divide/,
    },
    {
      value: { rollout: { samplesPerQuery: 1 } },
      key: 'rollout.samplesPerQuery',
      message: /rloo baseline/,
    },
    {
      value: { rollout: { samplesPerQuery: 1 }, loss: { baseline: 'group' } },
      key: 'rollout.samplesPerQuery',
      message: /group baseline/,
    },
    {
      value: { rollout: { temperature: 0 } },
      key: 'rollout.temperature',
      message: /identical/,
      hint: /rollout\.temperature/,
    },
    {
      value: { reward: { weights: { bleu: 1, exec: 1 } } },
      key: 'reward.weights.exec',
      message: /generator 'none'/,
    },
    {
      base: { refiner: { model: 'm' } },
      value: { generator: { backend: 'none' } },
      key: 'generator.backend',
      message: /on the rewrite/,
    },
    {
      value: { reward: { weights: { bleu: 0 } } },
      key: 'reward.weights',
      message: /every reward weight is 0/,
    },
    { value: { eval: { metric: 'exec' } }, key: 'eval.metric', message: /does not compute/ },
    { value: { data: { dataset: 'custom' } }, key: 'data.dataset', message: /needs a file/ },
    {
      value: { run: { deterministic: true, threads: 4 } },
      key: 'run.threads',
      message: /one thread/,
    },
    {
      value: { refiner: { model: 'm', format: 'chat', template: 'Q: {query}' } },
      key: 'refiner.template',
      message: /does not use/,
    },
    {
      value: { refiner: { model: 'm', template: 'no placeholder' } },
      key: 'refiner.template',
      message: /\{query\}/,
    },
    {
      value: { refiner: { model: 'm', chatTemplate: '{{ x }}' } },
      key: 'refiner.chatTemplate',
      message: /completion/,
    },
  ];
  for (const c of cases) {
    const base = c.base ?? BASE;
    throwsConfig(() => resolve(base, c.value), {
      where: `layer1 (${c.key})`,
      message: c.message,
      ...(c.hint ? { hint: c.hint } : {}),
    });
  }
  // With a generator: exec is fine; exec on the rewrite is not; the generator's own combos.
  const gen = { backend: 'openai', baseUrl: 'http://x', model: 'm' };
  const withGen = resolve(
    { refiner: { model: 'm' } },
    { generator: gen, reward: { weights: { exec: 1 } } },
  );
  assert.equal(withGen.generator.backend, 'openai');
  throwsConfig(() => resolve(BASE, { generator: gen, reward: { weights: { exec: 1 } } }), {
    where: 'layer1 (reward.weights.exec)',
    message: /rewrite text as code/,
  });
  throwsConfig(
    () =>
      resolve(
        { refiner: { model: 'm' } },
        { generator: { ...gen, format: 'ds1000-completion', system: 's' } },
      ),
    { where: 'layer1 (generator.system)' },
  );
  // The key named is one the layers set, even when the primary key is at its default.
  throwsConfig(() => resolve(BASE, { rollout: { samplesPerQuery: 1 } }), {
    where: 'layer1 (rollout.samplesPerQuery)',
  });
  throwsConfig(
    () => resolve(BASE, { loss: { baseline: 'group' } }, { rollout: { samplesPerQuery: 1 } }),
    {
      where: 'layer2 (rollout.samplesPerQuery)',
    },
  );
  throwsConfig(
    () => resolve(BASE, { rollout: { queriesPerStep: 3 } }, { rollout: { gradAccumulation: 2 } }),
    {
      where: 'layer2 (rollout.gradAccumulation)',
    },
  );
  // Ok: K = 1 with the ema baseline and greedy sampling; exec with a no-tests dataset is fine.
  assert.equal(
    resolve(BASE, { rollout: { samplesPerQuery: 1, temperature: 0 }, loss: { baseline: 'ema' } })
      .rollout.samplesPerQuery,
    1,
  );
});

test('a custom reward target comes only through the API', () => {
  const fn = (s: { rewrite: string }): string => s.rewrite.toUpperCase();
  const c = resolve(
    { refiner: { model: 'm' } },
    { reward: { target: { kind: 'custom', name: 'upper', fn } } },
  );
  assert.equal(c.reward.target?.kind, 'custom');
  assert.ok(c.reward.target?.kind === 'custom' && c.reward.target.fn === fn);
  const t = tmpFiles();
  try {
    const f = t.write(
      'c.yaml',
      'refiner: {model: m}\nreward:\n  target:\n    kind: custom\n    name: x\n',
    );
    throwsConfig(() => loadTrainConfig({ files: [f] }), {
      where: `${f}:3 (reward.target.fn)`,
      message: /API only/,
    });
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('YAML and JSON syntax errors name the line; JSON files resolve with lines', () => {
  const t = tmpFiles();
  try {
    const y = t.write('bad.yaml', 'refiner:\n  model: m\noptim:\n  lr: [1, 2\n  eps: 1\n');
    assert.throws(
      () => loadConfigFile(y),
      (e: unknown) =>
        e instanceof FormatError && /^.*bad\.yaml:\d+$/.test(e.where ?? '') && e.where !== `${y}:1`,
    );
    const d = t.write('dup.yaml', 'optim:\n  lr: 1\n  lr: 2\n');
    throwsConfig(() => loadConfigFile(d), { where: `${d}:3` }, FormatError);
    const jb = t.write('bad.json', '{\n  "refiner": {"model": "m"},\n  "optim": {"lr": 1,}\n}\n');
    throwsConfig(
      () => loadConfigFile(jb),
      { where: `${jb}:3`, message: /invalid JSON/ },
      FormatError,
    );
    const j = t.write(
      'ok.json',
      JSON.stringify(
        {
          refiner: { model: 'm' },
          reward: { target: { kind: 'rewrite' } },
          optim: { lr: 0.5, beta1: 'x' },
        },
        null,
        2,
      ),
    );
    const layer = loadConfigFile(j);
    assert.equal(layer.lines(['optim', 'beta1']), 12);
    throwsConfig(() => resolveTrainConfig([layer]), { where: `${j}:12 (optim.beta1)` });
    const ok = t.write('ok2.json', JSON.stringify({ ...BASE, optim: { lr: 0.5 } }));
    assert.equal(loadTrainConfig({ files: [ok] }).optim.lr, 0.5);
    throwsConfig(() => loadConfigFile(path.join(t.dir, 'x.toml')), { expected: /\.yaml/ });
    assert.throws(() => loadConfigFile(path.join(t.dir, 'missing.yaml')), /cannot read/);
    // An empty file is an empty layer.
    const empty = t.write('empty.yaml', '# nothing yet\n');
    assert.equal(
      loadTrainConfig({ files: [empty], sets: ['refiner.model=m', 'reward.target.kind=rewrite'] })
        .refiner.model,
      'm',
    );
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('path keys expand ~ and ${VAR}; an unset variable names the key and line', () => {
  const t = tmpFiles();
  const saved = process.env.RL4QE_TEST_DIR;
  try {
    process.env.RL4QE_TEST_DIR = '/data/x';
    const c = resolve({
      refiner: { model: '${RL4QE_HOME}/test-models/a.gguf', template: '~/{query} ${HOME}' },
      data: { path: '~/d.jsonl', manifest: '${RL4QE_TEST_DIR}/split.json' },
      generator: { backend: 'local', model: '~/g.gguf' },
    });
    assert.equal(c.refiner.model, path.join(rl4qeHome(), 'test-models/a.gguf'));
    assert.equal(c.refiner.template, '~/{query} ${HOME}'); // not a path: left alone
    assert.equal(c.data.path, path.join(os.homedir(), 'd.jsonl'));
    assert.equal(c.data.manifest, '/data/x/split.json');
    assert.ok(
      c.generator.backend === 'local' && c.generator.model === path.join(os.homedir(), 'g.gguf'),
    );
    delete process.env.RL4QE_TEST_DIR;
    const f = t.write('p.yaml', 'refiner:\n  model: m\ndata:\n  path: ${RL4QE_TEST_DIR}/d.jsonl\n');
    throwsConfig(() => loadTrainConfig({ files: [f] }), {
      where: `${f}:4 (data.path)`,
      message: /RL4QE_TEST_DIR is not set/,
    });
  } finally {
    if (saved === undefined) delete process.env.RL4QE_TEST_DIR;
    else process.env.RL4QE_TEST_DIR = saved;
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('configDigest: stable under key order, blind to resume-safe keys, sensitive to the rest', () => {
  const a = resolve(BASE, { optim: { lr: 1e-5, eps: 1e-7 }, run: { dir: 'a', steps: 10 } });
  const b = resolve({ run: { steps: 10, dir: 'b' }, optim: { eps: 1e-7, lr: 1e-5 } }, BASE);
  assert.match(configDigest(a), /^[0-9a-f]{64}$/);
  assert.equal(configDigest(a), configDigest(b));
  const reverseKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(reverseKeys)
      : typeof v === 'object' && v !== null
        ? Object.fromEntries(
            Object.entries(v)
              .reverse()
              .map(([k, x]) => [k, reverseKeys(x)]),
          )
        : v;
  const reordered = reverseKeys(a) as TrainConfig;
  assert.notEqual(JSON.stringify(reordered), JSON.stringify(a));
  assert.equal(configDigest(reordered), configDigest(a));
  // Resuming for more steps, elsewhere, or with another log mode keeps the digest...
  assert.equal(
    configDigest(
      resolve(BASE, { run: { steps: 50, log: 'json', dir: 'x', threads: 2, checkpointEvery: 3 } }),
    ),
    configDigest(resolve(BASE, { run: { steps: 51 } })),
  );
  // ...but a schedule that decays towards run.steps makes steps part of it.
  assert.notEqual(
    configDigest(resolve(BASE, { optim: { schedule: 'cosine' }, run: { steps: 50 } })),
    configDigest(resolve(BASE, { optim: { schedule: 'cosine' }, run: { steps: 51 } })),
  );
  assert.notEqual(configDigest(a), configDigest(resolve(BASE, { optim: { lr: 2e-5, eps: 1e-7 } })));
  assert.notEqual(configDigest(resolve(BASE)), configDigest(resolve(BASE, { run: { seed: 1 } })));
});

test('resume round trip: the resolved config written as JSON resolves to the same digest', () => {
  const c = loadTrainConfig({ files: [path.join(CONFIGS, 'ds1000-smollm2.yaml')] });
  const again = resolveTrainConfig([
    { source: 'config.json', value: JSON.parse(JSON.stringify(c)) },
  ]);
  assert.deepEqual(again, c);
  assert.equal(configDigest(again), configDigest(c));
});

/** Every leaf key of the schema, with its doc, found by walking zod's definitions. */
function schemaLeaves(): { key: string; doc?: string }[] {
  type Def = {
    type: string;
    innerType?: z.ZodType;
    out?: z.ZodType;
    shape?: Record<string, z.ZodType>;
  };
  const def = (s: z.ZodType): Def => s._zod.def as unknown as Def;
  const peel = (s: z.ZodType): { inner: z.ZodType; doc?: string } => {
    let doc: string | undefined;
    for (;;) {
      doc ??= s.description;
      const d = def(s);
      if (['default', 'prefault', 'optional', 'nullable'].includes(d.type)) s = d.innerType!;
      else if (d.type === 'pipe') s = d.out!;
      else return { inner: s, doc };
    }
  };
  const out: { key: string; doc?: string }[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [k, s] of Object.entries(shape)) {
      const { inner, doc } = peel(s);
      if (def(inner).type === 'object') walk(def(inner).shape!, `${prefix}${k}.`);
      else out.push({ key: prefix + k, doc });
    }
  };
  const top = def(peel(trainConfigSchema).inner).shape!;
  for (const [sec, s] of Object.entries(top)) {
    const { inner } = peel(s);
    if (def(inner).type === 'object') {
      walk(def(inner).shape!, `${sec}.`);
    } else {
      // The generator section is a union: walk its 'none' member (the trainer's keys).
      const none = (inner as unknown as { options: z.ZodObject[] }).options[0]!;
      walk(none.shape, `${sec}.`);
    }
  }
  return out;
}

test('describeConfig lists every key with a doc and its default', () => {
  const text = describeConfig();
  const leaves = schemaLeaves();
  assert.ok(leaves.length > 70, `walked only ${leaves.length} keys`);
  for (const { key, doc } of leaves) {
    if (key === 'generator.backend') continue; // documented by configKeys' own line
    assert.ok(doc && doc.length > 8, `${key} has no doc`);
    assert.match(text, new RegExp(`^  ${key.replace(/\./g, '\\.')}\\s`, 'm'), `${key} missing`);
  }
  assert.match(text, /^ {2}generator\.backend\s+none\|openai\|llama\.cpp\|local/m);
  assert.match(text, /optim\.lr\s+number\s+\[0\.0001\]/);
  assert.match(text, /refiner\.model\s+string\s+\(required\)/);
  assert.match(text, /run\.dir\s+string\s+\[runs\/<UTC timestamp>\]/);
  // Every backend's own keys are named (their docs live in generators/config.ts).
  for (const o of generatorConfigSchema.options) {
    for (const k of Object.keys(o.shape)) assert.ok(text.includes(k), `generator key ${k} missing`);
  }
  for (const k of configKeys()) assert.ok(k.doc, `${k.key} has no doc`);
  assert.deepEqual(GENERATOR_TRAINER_KEYS.sort(), [
    'format',
    'input',
    'maxConsecutiveFailures',
    'params',
    'system',
  ]);
});

test('the shipped configs resolve; helpers for the trainer', () => {
  const full = loadTrainConfig({ files: [path.join(CONFIGS, 'ds1000-smollm2.yaml')] });
  assert.equal(
    full.refiner.model,
    path.join(rl4qeHome(), 'test-models/smollm2-135m-instruct-q4_1.gguf'),
  );
  assert.equal(full.generator.backend, 'local');
  assert.deepEqual(full.reward.weights, { bleu: 1, exec: 1 });
  assert.equal(full.data.split, 'leak-free');
  const g = generatorBackendConfig(full);
  assert.ok(g && g.backend === 'local');
  assert.equal(g.weights, 'quantized');
  assert.ok(!('params' in g) && !('input' in g));
  assert.doesNotThrow(() => generatorConfigSchema.parse(g));
  const smoke = loadTrainConfig({
    files: [path.join(CONFIGS, 'smoke.yaml')],
    sets: ['run.dir=/tmp/x'],
  });
  assert.equal(smoke.generator.backend, 'none');
  assert.equal(generatorBackendConfig(smoke), undefined);
  assert.deepEqual(smoke.reward.target, { kind: 'rewrite' });
  assert.ok(smoke.run.steps <= 5);
  assert.equal(refinerWeights(smoke), 'quantized');
  assert.equal(refinerWeights(resolve(BASE, { refiner: { model: 'hf-dir' } })), 'float32');
  assert.equal(refinerWeights(resolve(BASE, { adapter: { kind: 'full' } })), 'float32');
  const layers: ConfigLayer[] = [{ source: 'api', value: BASE }];
  assert.equal(resolveTrainConfig(layers).refiner.model, 'm.gguf');
});
