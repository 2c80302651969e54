import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compareArms,
  metricNamesFor,
  problemScores,
  summarizeArm,
  type EvalSample,
  type SampleOutcome,
} from './summary.js';

function sample(
  arm: string,
  task: string,
  o: { k?: number; css?: number; outcome?: SampleOutcome; rewrite?: string; code?: string | null },
): EvalSample {
  const failed = o.outcome === 'generator_failure' || o.outcome === 'refiner_failure';
  const css = o.css ?? 0.5;
  return {
    arm,
    task,
    stratum: task.startsWith('np') ? 'Numpy' : 'Pandas',
    k: o.k ?? 0,
    rewrite: o.rewrite ?? null,
    rewriteTokens: o.rewrite !== undefined ? 3 : null,
    generatorInput: failed ? null : 'q',
    output: failed ? null : 'x = 1',
    code: failed ? null : o.code !== undefined ? o.code : 'x = 1\n',
    components: failed ? {} : { bleu: css, rouge_l: css, f1: css, overlap: css, css },
    outcome: o.outcome ?? 'not_run',
    failure: failed ? 'timeout: no answer' : null,
    cached: { refiner: null, generator: failed ? null : false },
  };
}

test('failures are never scored: a failed problem is excluded pairwise and counted', () => {
  const base = [
    sample('original', 'np/1', { css: 0.2 }),
    sample('original', 'np/2', { css: 0.4 }),
    sample('original', 'pd/3', { css: 0.6 }),
  ];
  const arm = [
    sample('untrained', 'np/1', { css: 0.5, rewrite: 'a b c' }),
    sample('untrained', 'np/2', { outcome: 'generator_failure', rewrite: 'a' }),
    sample('untrained', 'pd/3', { css: 0.9, rewrite: 'a b' }),
  ];
  const ms = metricNamesFor(false, [1]);
  assert.deepEqual(ms, ['bleu', 'rouge_l', 'f1', 'overlap', 'css']);
  const pa = problemScores(base);
  const pb = problemScores(arm);
  assert.equal(pb[1]!.scored, 0);
  assert.equal(pb[1]!.metrics.css, null);
  const c = compareArms({ arm: 'original', scores: pa }, { arm: 'untrained', scores: pb }, ms, {
    seed: 1,
  });
  const css = c.metrics.find((m) => m.metric === 'css')!;
  assert.equal(css.n, 2);
  assert.equal(css.excluded, 1);
  assert.ok(Math.abs(css.meanBase! - 0.4) < 1e-12); // (0.2 + 0.6) / 2: np/2 left out of both arms
  assert.ok(Math.abs(css.meanArm! - 0.7) < 1e-12);
  assert.ok(Math.abs(css.diff! - 0.3) < 1e-12);
  assert.deepEqual(css.wtl, { wins: 2, ties: 0, losses: 0 });
  assert.equal(c.mcnemar, null); // no execution
  const s = summarizeArm('untrained', arm, pb, ms);
  assert.equal(s.outcomes.generator_failure, 1);
  assert.equal(s.outcomes.not_run, 2);
  assert.equal(s.unusable, 1);
  assert.equal(s.metrics.css!.n, 2);
  assert.ok(Math.abs(s.metrics.css!.mean! - 0.7) < 1e-12);
  assert.equal(s.lengths.rewriteWords, 2); // 'a b c', 'a', 'a b'
  assert.deepEqual(Object.keys(s.byStratum), ['Numpy', 'Pandas']);
  assert.equal(s.byStratum.Numpy!.problems, 2);
  assert.ok(Math.abs(s.byStratum.Numpy!.metrics.css! - 0.5) < 1e-12);
});

test('pass@k per problem from k samples (unbiased), McNemar on sample 0', () => {
  const mk = (arm: string, task: string, outs: SampleOutcome[]): EvalSample[] =>
    outs.map((outcome, k) => sample(arm, task, { k, outcome }));
  const base = [
    ...mk('original', 'np/1', ['fail', 'fail', 'pass', 'fail']),
    ...mk('original', 'np/2', ['pass', 'pass', 'fail', 'fail']),
    ...mk('original', 'np/3', ['fail', 'fail', 'fail', 'fail']),
  ];
  const arm = [
    ...mk('a', 'np/1', ['pass', 'fail', 'fail', 'fail']),
    ...mk('a', 'np/2', ['pass', 'pass', 'pass', 'pass']),
    // A harness error and a generator failure leave 2 judged samples: pass@4 is not defined.
    ...mk('a', 'np/3', ['pass', 'sandbox_error', 'generator_failure', 'fail']),
  ];
  const pa = problemScores(base, [1, 4]);
  const pb = problemScores(arm, [1, 4]);
  assert.equal(pa[0]!.metrics['pass@1'], 0.25);
  assert.equal(pa[0]!.metrics['pass@4'], 1);
  assert.equal(pa[2]!.metrics['pass@4'], 0);
  assert.equal(pb[2]!.metrics['pass@1'], 0.5);
  assert.equal(pb[2]!.metrics['pass@4'], null);
  assert.equal(pb[2]!.scored, 3); // the sandbox_error sample has code, it is only not judged
  const ms = metricNamesFor(true, [1, 4]);
  const c = compareArms({ arm: 'original', scores: pa }, { arm: 'a', scores: pb }, ms);
  // Sample 0: original F P F, arm P P P → b = 0, c = 2, p = 2 · (1/4) = 0.5.
  assert.deepEqual(
    { b: c.mcnemar!.b, c: c.mcnemar!.c, n: c.mcnemar!.n, p: c.mcnemar!.p },
    { b: 0, c: 2, n: 3, p: 0.5 },
  );
  const p4 = c.metrics.find((m) => m.metric === 'pass@4')!;
  assert.equal(p4.n, 2);
  assert.equal(p4.excluded, 1);
});

test('identical arms: zero difference with a [0, 0] interval, all ties', () => {
  const a = ['np/1', 'np/2', 'pd/3', 'pd/4'].map((t, i) =>
    sample('x', t, { css: i / 4, outcome: i % 2 ? 'pass' : 'fail' }),
  );
  const b = a.map((s) => ({ ...s, arm: 'y' }));
  const ms = metricNamesFor(true, [1]);
  const c = compareArms(
    { arm: 'x', scores: problemScores(a) },
    { arm: 'y', scores: problemScores(b) },
    ms,
  );
  for (const m of c.metrics) {
    assert.equal(m.diff, 0, m.metric);
    assert.deepEqual(m.diffCi, { lo: 0, hi: 0 });
    assert.equal(m.wtl.ties, 4);
  }
  assert.equal(c.mcnemar!.p, 1);
});
