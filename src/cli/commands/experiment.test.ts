// `rl4qe experiment`: one real --quick run (lora-rank, LoRA r 4 and full fine-tuning, SmolLM2 as
// refiner and generator, 3 problems, text metrics) through `experimentCommand`: run directories,
// the eval group, results.json (machine, commit, seeds, models, wall time) and results.md. The
// specs and tables are unit-tested in src/eval/experiments.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderExperimentMarkdown, type ExperimentResult } from '../../eval/experiments.js';
import { experimentCommand } from './experiment.js';
import { cachePaths } from '../../util/paths.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');

describe('rl4qe experiment lora-rank --quick (SmolLM2 refiner and generator, r 4 and full)', () => {
  let d: string;
  before(() => {
    assert.ok(
      existsSync(SMOL),
      `test model missing: ${SMOL}\n  run: node scripts/fetch-test-models.mjs`,
    );
    d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-experiment-'));
  });
  after(() => rmSync(d, { recursive: true, force: true }));

  it('trains both, evaluates the LoRA run, says why full fine-tuning is not evaluated', async () => {
    const out = path.join(d, 'out');
    let stdout = '';
    const r = (await experimentCommand(
      'lora-rank',
      { quick: true, out, set: [], only: 'r4,full', quiet: true },
      { stdout: (s) => (stdout += s), stderr: () => {} },
    )) as ExperimentResult;
    assert.equal(r.experiment, 'lora-rank');
    assert.equal(r.quick, true);
    assert.deepEqual(
      r.variants.map((v) => [v.name, v.train.status, v.train.steps]),
      [
        ['r4', 'trained', 2],
        ['full', 'trained', 2],
      ],
    );
    assert.equal(r.variants[0]!.eval.status, 'evaluated');
    assert.equal(r.variants[1]!.eval.status, 'not-evaluated');
    assert.match(r.variants[1]!.eval.reason ?? '', /full fine-tuning/);
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
    assert.match(md, /\| full fine-tuning \|.*no: rl4qe eval does not load full fine-tuning/);
    assert.match(md, /Settings that match the paper/);
    process.stderr.write(
      `# experiment lora-rank --quick (r4, full): ${r.wallSeconds.toFixed(1)} s\n`,
    );
  });
});
