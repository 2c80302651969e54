// Bad runs stop cleanly and say why: a non-finite loss stops the run at that step, saves the
// offending samples and names the op that produced the first non-finite value; an initial
// adapter of another base model is refused before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train, Trainer } from '../../src/train/trainer.js';
import { writePeftAdapter } from '../../src/io/peft.js';
import type { RewardFn } from '../../src/rewards/types.js';
import { SMOL_FILE, tinyRunValue } from '../helpers/tiny-run.js';

function config(
  dir: string,
  extra: Record<string, unknown> = {},
): ReturnType<typeof resolveTrainConfig> {
  return resolveTrainConfig([
    {
      source: 'test',
      value: { ...tinyRunValue(path.join(dir, 'run'), { weights: 'quantized' }), ...extra },
    },
  ]);
}

test('a non-finite loss stops the run at that step, saves its samples and names the op', async () => {
  assert.ok(
    fs.existsSync(SMOL_FILE),
    `missing test model ${SMOL_FILE}: run node scripts/fetch-test-models.mjs`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-nan-'));
  // A finite reward so large that advantage × log-prob overflows float32 in the loss.
  let k = 0;
  const huge: RewardFn = { name: 'huge', score: (b) => b.map(() => (k++ % 2 === 0 ? 1e38 : 0)) };
  await assert.rejects(train({ config: config(dir), reward: huge }), (e: Error) => {
    assert.equal(e.name, 'NumericError');
    assert.match(e.message, /loss is not finite/);
    assert.match(e.message, /train step 1/);
    assert.match(e.message, /produced by op \w+/, 'the op that first went non-finite is named');
    return true;
  });
  const dump = path.join(dir, 'run', 'nan-step-1.json');
  assert.ok(fs.existsSync(dump), 'the offending samples are saved');
  const saved = JSON.parse(fs.readFileSync(dump, 'utf8')) as { samples: { total: number }[] };
  assert.equal(saved.samples.length, 2);
  assert.ok(
    !fs.existsSync(path.join(dir, 'run', 'checkpoints', 'latest')),
    'no checkpoint of a broken step',
  );
});

test('an initial adapter with other shapes (another base model) is refused before any step', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-init-'));
  const adapter = path.join(dir, 'qwen-adapter');
  // A LoRA for a model with hidden size 896 (Qwen2.5-0.5B), not SmolLM2's 576.
  writePeftAdapter(adapter, {
    params: new Map([
      [
        'model.layers.0.self_attn.q_proj.lora_A.weight',
        { data: new Float32Array(4 * 896), shape: [4, 896] },
      ],
      [
        'model.layers.0.self_attn.q_proj.lora_B.weight',
        { data: new Float32Array(896 * 4), shape: [896, 4] },
      ],
    ]),
    r: 4,
    alpha: 8,
    dropout: 0,
    targets: ['q_proj'],
    baseModel: 'Qwen/Qwen2.5-0.5B',
  });
  const cfg = config(dir, { adapter: { r: 4, alpha: 8, dropout: 0, init: adapter } });
  await assert.rejects(train({ config: cfg }), /initial adapter does not fit this refiner/);
  assert.ok(
    !fs.existsSync(path.join(dir, 'run', 'metrics.jsonl')) ||
      fs.readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8') === '',
  );
});

test('invalid dataset rows: fatal with file and line by default, skipped and counted with invalidRows: skip', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-rows-'));
  const data = path.join(dir, 'tasks.jsonl');
  const good = (i: number): string =>
    JSON.stringify({ id: `t${i}`, query: `Sum the list ${i}.`, reference: 'sum(x)' });
  fs.writeFileSync(
    data,
    [good(1), good(2), '{"id": "t3", "reference": 1}', good(4), good(5), good(6)].join('\n') + '\n',
  );
  const dataCfg = (invalidRows: string): Record<string, unknown> => ({
    data: { dataset: 'custom', path: data, invalidRows, testSize: 1, validationSize: 0 },
    run: { dir: path.join(dir, `run-${invalidRows}`), steps: 1, log: 'quiet' },
  });
  await assert.rejects(train({ config: config(dir, dataCfg('fail')) }), (e: Error) => {
    assert.match(e.message, /tasks\.jsonl:3/);
    assert.match(e.message, /field query/);
    return true;
  });
  const t = new Trainer({ config: config(dir, dataCfg('skip')) });
  try {
    await t.setup();
    assert.equal(t.invalidRows.length, 1);
    assert.match(t.invalidRows[0]!, /tasks\.jsonl:3/);
  } finally {
    await t.dispose();
  }
});
