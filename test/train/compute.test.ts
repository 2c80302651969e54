// refiner.compute end to end: a 2-step run on SmolLM2 with compute bf16 (weights auto, so the
// GGUF loads as float32 and every projection is rounded to bf16) records what ran in run.json
// (used bf16, the units, 210 converted projections) and trains to finite losses; on a CPU that
// lacks avx512bf16 (hidden, in a child process) the same run falls back to fp32 with a one-line
// note on stderr and in run.json, never an illegal instruction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bf16Support } from '../../src/backend/index.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { readJsonlRecords, readRunInfo } from '../../src/train/run-dir.js';
import type { StepRecord } from '../../src/train/records.js';
import { train } from '../../src/train/trainer.js';
import { SMOL_FILE, tinyRunValue } from '../helpers/tiny-run.js';

function configValue(dir: string): Record<string, unknown> {
  return tinyRunValue(dir, { compute: 'bf16' });
}

test(
  'compute bf16: run.json records the units and conversions, the steps train',
  { skip: bf16Support().available ? false : `no bf16 unit: ${bf16Support().reason}` },
  async () => {
    assert.ok(
      fs.existsSync(SMOL_FILE),
      `missing test model ${SMOL_FILE}: run node scripts/fetch-test-models.mjs`,
    );
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-bf16-')), 'run');
    const cfg = resolveTrainConfig([{ source: 'test', value: configValue(dir) }]);
    const r = await train({ config: cfg, progress: 'quiet' });
    assert.equal(r.steps, 2);
    const info = readRunInfo(dir);
    assert.ok(info.compute, 'run.json has compute');
    assert.equal(info.compute.requested, 'bf16');
    assert.equal(info.compute.used, 'bf16');
    assert.match(info.compute.units, /vdpbf16ps/);
    assert.equal(info.compute.converted, 30 * 7, 'q, k, v, o, gate, up, down of 30 layers');
    assert.equal(info.compute.note, undefined);
    const steps = readJsonlRecords<StepRecord>(path.join(dir, 'metrics.jsonl')).records.filter(
      (m) => m.type === 'step',
    );
    assert.equal(steps.length, 2);
    for (const s of steps) assert.ok(Number.isFinite(s.loss), `step ${s.step} loss ${s.loss}`);
  },
);

test('compute bf16 on a CPU without avx512bf16: fp32 with a one-line note (stderr and run.json)', () => {
  assert.ok(fs.existsSync(SMOL_FILE), `missing test model ${SMOL_FILE}`);
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-bf16-')), 'run');
  const code = `
    import { resolveTrainConfig } from './dist/src/train/config.js';
    import { train } from './dist/src/train/trainer.js';
    const cfg = resolveTrainConfig([{ source: 'test', value: ${JSON.stringify(configValue(dir))} }]);
    cfg.run.steps = 1;
    await train({ config: cfg, progress: 'quiet' });
  `;
  const p = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, RL4QE_HIDE_FEATURES: 'avx512bf16' },
    encoding: 'utf8',
  });
  assert.equal(p.status, 0, p.stderr);
  const notes = p.stderr.split('\n').filter((l) => /bf16 compute unavailable/.test(l));
  assert.equal(notes.length, 1, `one note on stderr: ${p.stderr}`);
  assert.match(notes[0]!, /the CPU lacks avx512bf16\): running fp32/);
  const info = readRunInfo(dir);
  assert.equal(info.compute?.requested, 'bf16');
  assert.equal(info.compute?.used, 'fp32');
  assert.equal(info.compute?.converted, 0);
  assert.match(
    info.compute?.note ?? '',
    /^bf16 compute unavailable \(the CPU lacks avx512bf16\): running fp32$/,
  );
});
