// `rl4qe experiment`: one real --quick run (lora-rank's LoRA r 4 variant, SmolLM2 as refiner and
// generator, 3 problems, text metrics; ≈ 60 s on 2 busy cores) through `experimentCommand`: the
// run directory, the eval group, results.json (machine, commit, seeds, models, wall time) and
// results.md. With RL4QE_LONG=1 the full fine-tuning variant runs too (+ ≈ 40 s): trained, and a
// row that says why it is not evaluated. Specs and tables: src/eval/experiments.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderExperimentMarkdown, type ExperimentResult } from '../../eval/experiments.js';
import { experimentCommand } from './experiment.js';
import { cachePaths } from '../../util/paths.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');

const LONG = process.env.RL4QE_LONG === '1';
const VARIANTS = LONG ? ['r4', 'full'] : ['r4'];

describe(`rl4qe experiment lora-rank --quick --only ${VARIANTS.join(',')} (SmolLM2)`, () => {
  let d: string;
  let out: string;
  before(() => {
    assert.ok(
      existsSync(SMOL),
      `test model missing: ${SMOL}\n  run: node scripts/fetch-test-models.mjs`,
    );
    d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-experiment-'));
    out = path.join(d, 'out');
  });
  after(() => rmSync(d, { recursive: true, force: true }));

  it('trains, evaluates against the original query, writes results.json and results.md', async () => {
    let stdout = '';
    const r = (await experimentCommand(
      'lora-rank',
      { quick: true, out, set: [], only: VARIANTS.join(','), quiet: true },
      { stdout: (s) => (stdout += s), stderr: () => {} },
    )) as ExperimentResult;
    assert.equal(r.experiment, 'lora-rank');
    assert.equal(r.quick, true);
    assert.deepEqual(
      r.variants.map((v) => [v.name, v.train.status, v.train.steps]),
      VARIANTS.map((n) => [n, 'trained', 2]),
    );
    assert.equal(r.variants[0]!.eval.status, 'evaluated');
    if (LONG) {
      assert.equal(r.variants[1]!.eval.status, 'not-evaluated');
      assert.match(r.variants[1]!.eval.reason ?? '', /full fine-tuning/);
    }
    assert.equal(r.evals.length, 1);
    const e = r.evals[0]!;
    assert.equal(e.problems, 3);
    assert.equal(e.exec, false);
    assert.deepEqual(Object.keys(e.means), ['original', 'untrained', 'r4']);
    assert.deepEqual(Object.keys(e.comparisons), ['untrained', 'r4']);
    assert.deepEqual(e.metrics, ['bleu', 'rouge_l', 'f1', 'overlap', 'css']);
    for (const m of e.comparisons.r4!) assert.equal(m.n + m.excluded, 3);
    assert.ok(existsSync(path.join(e.dir, 'eval.json')));
    assert.ok(existsSync(path.join(e.dir, 'report.html')));
    for (const v of r.variants) assert.ok(existsSync(path.join(v.runDir, 'report.html')), v.name);
    // The record a reader needs to trust the table.
    const saved = JSON.parse(
      readFileSync(path.join(out, 'results.json'), 'utf8'),
    ) as ExperimentResult;
    assert.equal(saved.experiment, 'lora-rank');
    assert.equal(
      saved.command,
      `rl4qe experiment lora-rank --quick --only ${VARIANTS.join(',')} --out ${out}`,
    );
    assert.ok(saved.machine.cores > 0 && saved.machine.cpu.length > 0);
    assert.ok(saved.wallSeconds > 0);
    assert.deepEqual(saved.seeds.train, [0]);
    assert.ok(saved.models.refiners['smollm2-135m-instruct-q4_1.gguf']);
    assert.match(saved.models.generator, /^local smollm2/);
    assert.ok(saved.commit === null || /^[0-9a-f]{40}(-dirty)?$/.test(saved.commit));
    const md = readFileSync(path.join(out, 'results.md'), 'utf8');
    assert.equal(md, renderExperimentMarkdown(saved));
    assert.equal(stdout, md);
    assert.match(md, /--quick smoke run: not a result/);
    assert.match(md, /\| LoRA r 4 \| \d\.\d{3}/);
    if (LONG)
      assert.match(md, /\| full fine-tuning \|.*no: rl4qe eval does not load full fine-tuning/);
    assert.match(md, /Settings that match the paper/);
    process.stderr.write(`# experiment lora-rank --quick: ${r.wallSeconds.toFixed(1)} s\n`);
  });

  it('a second run into the same directory reuses the finished runs and calls no model', async () => {
    const r = (await experimentCommand(
      'lora-rank',
      { quick: true, out, set: [], only: VARIANTS.join(','), quiet: true },
      { stdout: () => {}, stderr: () => {} },
    )) as ExperimentResult;
    assert.deepEqual(
      r.variants.map((v) => v.train.status),
      VARIANTS.map(() => 'reused'),
    );
    const calls = r.evals[0]!.calls;
    assert.equal(calls.refiner.backend, 0);
    assert.equal(calls.generator.backend, 0);
  });

  it('a run directory of another configuration is refused, not reused', async () => {
    const r = (await experimentCommand(
      'lora-rank',
      { quick: true, out, set: ['optim.lr=0.5'], only: 'r4', quiet: true },
      { stdout: () => {}, stderr: () => {} },
    )) as ExperimentResult;
    assert.equal(r.variants[0]!.train.status, 'failed');
    assert.match(r.variants[0]!.train.error ?? '', /another configuration|digest|config/);
    assert.equal(r.evals.length, 0);
  });
});
