import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHtml, renderMarkdown } from './report.js';
import {
  compareArms,
  metricNamesFor,
  problemScores,
  summarizeArm,
  type EvalSample,
} from './summary.js';
import type { EvalResult } from './evaluate.js';

function result(): EvalResult {
  const ms = metricNamesFor(true, [1]);
  const mk = (
    arm: string,
    task: string,
    css: number,
    pass: boolean,
    rewrite: string | null,
  ): EvalSample => ({
    arm,
    task,
    stratum: 'Numpy',
    k: 0,
    rewrite,
    rewriteTokens: rewrite === null ? null : 4,
    generatorInput: 'q',
    output: '```python\nx = 1\n```',
    code: 'x = 1 | 2\n',
    components: { bleu: css, rouge_l: css, f1: css, overlap: css, css, exec: pass ? 1 : 0 },
    outcome: pass ? 'pass' : 'fail',
    failure: null,
    cached: { refiner: null, generator: false },
  });
  const samples = [
    mk('original', 'ds1000/1', 0.2, false, null),
    mk('original', 'ds1000/2', 0.4, true, null),
    mk('untrained', 'ds1000/1', 0.6, true, '<script>alert(1)</script>'),
    mk('untrained', 'ds1000/2', 0.8, true, 'keep names'),
  ];
  const by = (a: string): EvalSample[] => samples.filter((s) => s.arm === a);
  const po = problemScores(by('original'));
  const pu = problemScores(by('untrained'));
  return {
    version: 1,
    createdAt: '2026-12-04T00:00:00Z',
    settings: {
      dataset: 'ds1000',
      split: 'test',
      splitSource: 'leak-free split, seed 0',
      limit: 2,
      tasks: 2,
      refiner: {
        model: '/m/smol.gguf',
        weights: 'quantized',
        maxTokens: 16,
        digest: 'abc',
        maxPromptTokens: 512,
        overlong: 'truncate-middle',
      },
      generator: { identity: { backend: 'local', model: 'g' }, input: 'refined', format: 'chat' },
      maxTokens: 16,
      samples: 1,
      temperature: 0,
      passK: [1],
      exec: true,
      execNote: 'on',
      bootstrap: { resamples: 2000, seed: 0, level: 0.95 },
      baseline: 'original',
    },
    arms: [
      { name: 'original', kind: 'original' },
      { name: 'untrained', kind: 'untrained', format: 'chat' },
    ],
    summaries: [
      summarizeArm('original', by('original'), po, ms),
      summarizeArm('untrained', by('untrained'), pu, ms),
    ],
    comparisons: [
      compareArms({ arm: 'original', scores: po }, { arm: 'untrained', scores: pu }, ms),
    ],
    promptSearch: null,
    tasks: [
      {
        id: 'ds1000/1',
        stratum: 'Numpy',
        group: 'Numpy/1',
        query: 'a | b <b>bold</b>',
        reference: 'x = 1',
      },
      { id: 'ds1000/2', stratum: 'Numpy', group: 'Numpy/2', query: 'q2', reference: 'y = 2' },
    ],
    samples,
    calls: {
      refiner: { requests: 2, backend: 2, cached: 0, failures: 0 },
      generator: { requests: 4, backend: 4, cached: 0, failures: 0 },
    },
    seconds: 1.5,
    timings: {
      schedule: 'pipelined',
      chunkSize: 8,
      stages: { refine: 0.5, generate: 0.8, rewards: 0.01, sandbox: 0.4 },
      sandboxStartSeconds: null,
    },
  };
}

test('Markdown: means, the paired table with its interval and the resolved mark, McNemar', () => {
  const md = renderMarkdown(result());
  assert.match(md, /^# rl4qe eval: ds1000 test \(2 problems\)/);
  assert.match(
    md,
    /\| untrained \| 0\.700 \| 0\.700 \| 0\.700 \| 0\.700 \| 0\.700 \| 1\.000 \| 2 \| 0 \|/,
  );
  // css: +0.4 on both problems: the interval is [0.4, 0.4] and excludes 0.
  assert.match(md, /\| css \| 2 \| 0 \| 0\.300 \| 0\.700 \| \+0\.400 \[0\.400, 0\.400\] ▲ \|/);
  assert.match(md, /McNemar \(exact, pass@1 of sample 0\): original only 0, untrained only 1/);
  assert.match(md, /\| Numpy \| 2 \|/);
});

test('HTML: self-contained, every text escaped, a chart per metric', () => {
  const html = renderHtml(result());
  assert.ok(!html.includes('<script>'), 'rewrites are escaped');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('a | b &lt;b&gt;bold&lt;/b&gt;'));
  assert.ok(!/<link|src=|href=/i.test(html), 'nothing loaded from anywhere');
  assert.equal(
    (html.match(/difference to original \(95% paired bootstrap\)<\/title>/g) ?? []).length,
    6,
  );
  assert.match(html, /<details><summary>ds1000\/1 \(Numpy\)<\/summary>/);
});
