// The experiment runner: every shipped spec (configs/experiments/) parses and every variant
// resolves to a valid trainer configuration, full size and --quick; refusals; the table cells;
// the real --quick run is src/cli/commands/experiment.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listExperiments, loadExperimentSpec, scoreCell, variantConfigs } from './experiments.js';
import type { MetricComparison } from './summary.js';
import { ConfigError, NotFoundError } from '../util/errors.js';

const cmp = (o: Partial<MetricComparison>): MetricComparison => ({
  metric: 'bleu',
  n: 10,
  excluded: 0,
  meanBase: 0.1,
  meanArm: 0.12,
  diff: 0.02,
  diffCi: { lo: 0.01, hi: 0.03 },
  rel: 0.2,
  relCi: { lo: 0.1, hi: 0.3 },
  wtl: { wins: 6, ties: 2, losses: 2 },
  ...o,
});

describe('experiment specs', () => {
  it('ships the four experiments of the paper', () => {
    assert.deepEqual(listExperiments(), ['headline', 'lora-rank', 'reward-ablation', 'transfer']);
  });

  for (const name of ['headline', 'lora-rank', 'reward-ablation', 'transfer']) {
    it(`${name}: every variant resolves, full size and --quick`, () => {
      const { spec, file } = loadExperimentSpec(name);
      assert.equal(spec.name, name);
      for (const quick of [false, true]) {
        const cs = variantConfigs({ spec, specFile: file, quick, outDir: '/tmp/rl4qe-exp' });
        assert.equal(cs.length, spec.variants.length);
        for (const c of cs) {
          assert.equal(c.config.run.dir, path.join('/tmp/rl4qe-exp', 'runs', c.name));
          assert.equal(c.config.data.dataset, 'ds1000');
          assert.notEqual(c.config.generator.backend, 'none');
          if (quick) assert.ok(c.config.run.steps <= 2, `${name}/${c.name} quick steps`);
        }
        // Variants differ only where the experiment says: the generator is the same for all.
        const gens = new Set(cs.map((c) => JSON.stringify(c.config.generator)));
        assert.equal(gens.size, 1, `${name}: one generator`);
      }
    });
  }

  it('variants differ in the one thing they test', () => {
    const ra = loadExperimentSpec('reward-ablation');
    const w = variantConfigs({ ...ra, specFile: ra.file, outDir: '/tmp/x' }).map(
      (c) => c.config.reward.weights,
    );
    assert.deepEqual(w, [
      { bleu: 1 },
      { rouge_l: 1 },
      { f1: 1 },
      { overlap: 1 },
      { bleu: 1, exec: 1 },
    ]);
    const lr = loadExperimentSpec('lora-rank');
    const a = variantConfigs({ ...lr, outDir: '/tmp/x' }).map((c) =>
      c.config.adapter.kind === 'full' ? 'full' : `r${c.config.adapter.r}`,
    );
    assert.deepEqual(a, ['r4', 'r8', 'r16', 'full']);
    const h = loadExperimentSpec('headline');
    assert.deepEqual(
      variantConfigs({ ...h, outDir: '/tmp/x' }).map((c) => c.config.data.split),
      ['paper', 'leak-free'],
    );
    const t = loadExperimentSpec('transfer');
    assert.deepEqual(
      variantConfigs({ ...t, outDir: '/tmp/x' }).map((c) => path.basename(c.config.refiner.model)),
      ['smollm2-135m-instruct-q4_1.gguf', 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf'],
    );
  });

  it('--set reaches every variant; --only picks variants; refusals name the problem', () => {
    const { spec } = loadExperimentSpec('lora-rank');
    const cs = variantConfigs({
      spec,
      outDir: '/tmp/x',
      overrides: { run: { steps: 7 } },
      only: ['r8', 'full'],
    });
    assert.deepEqual(
      cs.map((c) => [c.name, c.config.run.steps]),
      [
        ['r8', 7],
        ['full', 7],
      ],
    );
    assert.throws(() => variantConfigs({ spec, outDir: '/tmp/x', only: ['r2'] }), ConfigError);
    assert.throws(() => loadExperimentSpec('no-such-experiment'), NotFoundError);
    const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-spec-'));
    try {
      const f = path.join(d, 'x.yaml');
      writeFileSync(f, 'name: x\ntitle: x\nclaim: x\npaper: x\nvariants: [{name: a}, {name: a}]\n');
      assert.throws(() => loadExperimentSpec(f), /two variants share a name/);
      writeFileSync(f, 'name: x\ntitle: x\nclaim: x\npaper: x\nvariants: []\nbogus: 1\n');
      assert.throws(() => loadExperimentSpec(f), ConfigError);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('experiment tables', () => {
  it('a cell: mean, relative change and its interval, ▲/▼ when the interval excludes 0', () => {
    assert.equal(scoreCell(0.12, cmp({})), '0.120 +20.0% [+10.0%, +30.0%] ▲');
    assert.equal(
      scoreCell(
        0.08,
        cmp({
          diff: -0.02,
          diffCi: { lo: -0.03, hi: -0.01 },
          rel: -0.2,
          relCi: { lo: -0.3, hi: -0.1 },
        }),
      ),
      '0.080 -20.0% [-30.0%, -10.0%] ▼',
    );
    assert.equal(
      scoreCell(0.1, cmp({ diff: 0, diffCi: { lo: -0.01, hi: 0.01 }, rel: 0, relCi: null })),
      '0.100 +0.0%',
    );
    // No relative change when the baseline mean is 0: the difference instead.
    assert.equal(
      scoreCell(0, cmp({ meanBase: 0, diff: 0, diffCi: { lo: 0, hi: 0 }, rel: null, relCi: null })),
      '0.000 Δ +0.000 [0.000, 0.000]',
    );
    assert.equal(scoreCell(0.5, undefined), '0.500');
    assert.equal(scoreCell(null, undefined), '–');
  });
});
