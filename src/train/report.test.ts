import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderReport, writeReport, TABLE_ROWS } from './report.js';
import {
  RUN_VERSION,
  type RunInfo,
  type SampleRecord,
  type StepRecord,
  type ValRecord,
} from './records.js';
import { FormatError } from '../util/errors.js';

const XSS = '<script>alert(1)</script>';

function runInfo(): RunInfo {
  return {
    version: RUN_VERSION,
    rl4qe: '0.1.0',
    createdAt: '2026-12-04T10:00:00.000Z',
    base: {
      model: 'models/tiny.gguf',
      digest: 'abcdef0123456789',
      architecture: 'qwen2',
      hiddenSize: 64,
      numLayers: 2,
    },
    adapter: 'lora',
    commit: 'b636e82',
  };
}

function step(i: number): StepRecord {
  return {
    type: 'step',
    step: i,
    time: `2026-12-04T10:${String(i).padStart(2, '0')}:00.000Z`,
    elapsed: i * 12.5,
    lr: i < 5 ? 1e-4 * (i / 5) : 1e-4,
    loss: 1 / i,
    gradNorm: 0.5 + (i % 3) * 0.1,
    reward: 0.2 + i * 0.01,
    rewardStd: 0.05,
    components: { bleu: 0.1 + i * 0.005, exec: i % 2 === 0 ? 0.5 : null },
    passRate: 0.3 + i * 0.01,
    kl: 0.001 * i,
    entropy: 1.5 - i * 0.01,
    rewriteTokens: 40 + i,
    samples: 8,
    scored: 7,
    dropped: { 'generator:timeout': 1 },
    sampleTokensPerSec: 300 + i,
    updateTokensPerSec: 900 + i,
    generator: { calls: 8, cached: 2, failures: 1, costUsd: 0.001 },
    times: { sample: 4, generate: 3, reward: 1, update: 2, total: 9.5 },
  };
}

function val(i: number, value: number, best: boolean): ValRecord {
  return {
    type: 'val',
    step: i,
    time: '2026-12-04T11:00:00.000Z',
    metric: 'reward',
    value,
    components: { bleu: value / 2 },
    passRate: 0.4,
    problems: 20,
    best,
    seconds: 30,
  };
}

function sample(i: number, over: Partial<SampleRecord> = {}): SampleRecord {
  return {
    step: 1 + Math.floor(i / 4),
    task: `ds1000/${i % 8}`,
    k: i % 4,
    query: `How do I reshape array ${i}? ` + 'x'.repeat(i === 3 ? 400 : 10),
    rewrite: `Reshape the numpy array number ${i} with a < b && c > "d"`,
    generatorInput: null,
    output: null,
    code: `result = a.reshape(${i}, -1)\nprint(result)`,
    // A permutation of 0..39 / 40: every total distinct, so the rank order is unambiguous.
    total: ((i * 37) % 40) / 40,
    components: { bleu: ((i * 37) % 40) / 80, exec: 1 },
    info: {},
    outcome: i % 5 === 0 ? 'fail' : 'pass',
    baseline: 0.4,
    advantage: ((i * 37) % 40) / 40 - 0.4,
    logProb: -20,
    promptTokens: 30,
    rewriteTokens: 25,
    finishReason: 'stop',
    dropped: i % 10 === 9 ? 'reward-null' : null,
    ...over,
  };
}

/** 40 samples: 36 plain training samples, 3 validation samples with the highest totals, one XSS. */
function samples(): SampleRecord[] {
  const out: SampleRecord[] = [];
  for (let i = 0; i < 40; i++) {
    if (i >= 36 && i < 39) out.push(sample(i, { validation: true, total: 5 + i }));
    else if (i === 39)
      out.push(
        sample(i, { query: XSS, rewrite: `${XSS} </script>`, code: '</script><img src=x>' }),
      );
    else out.push(sample(i));
  }
  return out;
}

function metrics(): (StepRecord | ValRecord)[] {
  const out: (StepRecord | ValRecord)[] = [];
  for (let i = 1; i <= 30; i++) {
    out.push(step(i));
    if (i === 10) out.push(val(10, 0.31, true));
    if (i === 20) out.push(val(20, 0.42, true));
    if (i === 30) out.push(val(30, 0.39, false));
  }
  return out;
}

function makeRunDir(opts: { truncated?: boolean } = {}): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-report-'));
  writeFileSync(path.join(d, 'run.json'), JSON.stringify(runInfo()));
  writeFileSync(path.join(d, 'config.json'), JSON.stringify({ lr: 1e-4, note: XSS, k: 4 }));
  let m = metrics()
    .map((r) => JSON.stringify(r) + '\n')
    .join('');
  // A run killed mid-write leaves half a record and no newline.
  if (opts.truncated) m += JSON.stringify(step(31)).slice(0, 57);
  writeFileSync(path.join(d, 'metrics.jsonl'), m);
  let s = samples()
    .map((r) => JSON.stringify(r) + '\n')
    .join('');
  if (opts.truncated) s += '{"step": 11, "task": "ds1000/';
  writeFileSync(path.join(d, 'samples.jsonl'), s);
  return d;
}

/** The <svg> of one chart. */
function chart(html: string, id: string): string {
  const m = new RegExp(`<svg class="chart" data-chart="${id}"[\\s\\S]*?</svg>`).exec(html);
  assert.ok(m, `chart ${id} present`);
  return m[0];
}

/** Point counts of the polylines of one series (data-kind raw / avg). */
function polylinePoints(svg: string, kind: string, series?: string): number[] {
  const out: number[] = [];
  const re = /<polyline ([^>]*)\/>/g;
  for (let m = re.exec(svg); m; m = re.exec(svg)) {
    const attrs = m[1];
    if (!attrs.includes(`data-kind="${kind}"`)) continue;
    if (series !== undefined && !attrs.includes(`data-series="${series}"`)) continue;
    const pts = /points="([^"]*)"/.exec(attrs)![1].trim().split(/\s+/);
    for (const p of pts) assert.match(p, /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/, `finite point ${p}`);
    out.push(pts.length);
  }
  return out;
}

function tableTasks(html: string, id: string): string[] {
  const m = new RegExp(`<table id="${id}">[\\s\\S]*?</table>`).exec(html);
  assert.ok(m, `table ${id}`);
  return [...m[0].matchAll(/<tr data-task="([^"]*)"/g)].map((x) => x[1]);
}

function assertOffline(html: string): void {
  assert.doesNotMatch(html, /https?:\/\//, 'no http(s) references');
  assert.doesNotMatch(
    html,
    /<link\b|<script\b|@import|url\(|<[a-z][^>]*\s(src|href)="(?!#)/i,
    'nothing loaded from anywhere',
  );
  assert.doesNotMatch(html, /NaN|Infinity/, 'no NaN or Infinity in coordinates or labels');
}

test('writeReport: plots, tables, escaping and a truncated last line of a killed run', () => {
  const d = makeRunDir({ truncated: true });
  try {
    const out = writeReport(d);
    assert.equal(out, path.join(d, 'report.html'));
    assert.ok(existsSync(out));
    // Atomic write: no temporary file left behind.
    assert.deepEqual(
      readdirSync(d).filter((f) => f.includes('.tmp')),
      [],
    );
    const html = readFileSync(out, 'utf8');
    assert.match(html, /^<!doctype html>/);
    assertOffline(html);

    // One SVG per plot; every line series has its raw and moving-average polylines of 30 points.
    for (const id of [
      'reward',
      'components',
      'loss',
      'kl',
      'entropy',
      'gradnorm',
      'length',
      'passrate',
      'throughput',
    ]) {
      const svg = chart(html, id);
      assert.ok(polylinePoints(svg, 'raw').length >= 1, `${id} has a raw line`);
      for (const n of polylinePoints(svg, 'raw')) assert.equal(n, 30, `${id} raw`);
      for (const n of polylinePoints(svg, 'avg')) assert.equal(n, 30, `${id} avg`);
      if (id !== 'components') {
        assert.equal(
          polylinePoints(svg, 'avg').length,
          polylinePoints(svg, 'raw').length,
          `${id}: avg per raw`,
        );
      }
    }
    // The std band around the reward.
    assert.match(chart(html, 'reward'), /data-kind="band"/);
    // Both reward components on one chart; exec (null every other step) breaks into 1-point gaps.
    const comp = chart(html, 'components');
    assert.deepEqual(polylinePoints(comp, 'raw', 'bleu'), [30]);
    assert.match(comp, /<circle [^>]*data-series="exec" data-kind="raw"/);
    // ...while its moving average bridges those one-step gaps: one line over all 30 steps.
    assert.deepEqual(polylinePoints(comp, 'avg', 'exec'), [30]);
    // Learning rate: one series, not smoothed, drawn as one thick line.
    assert.deepEqual(polylinePoints(chart(html, 'lr'), 'raw'), [30]);
    // Validation: three points, the best (0.42 at step 20) marked.
    const v = chart(html, 'validation');
    assert.equal((v.match(/data-kind="point"/g) ?? []).length, 3);
    assert.equal((v.match(/data-kind="mark"/g) ?? []).length, 1);
    assert.match(v, /best 0\.42/);
    // Time: four stages stacked.
    const t = chart(html, 'time');
    for (const s of ['sample', 'generate', 'reward', 'update'])
      assert.match(t, new RegExp(`data-segment="${s}"`));
    assert.match(html, /best validation<\/th><td>reward = <b>0\.42<\/b> at step 20/);

    // Best / worst: training samples only (validation totals of 41+ left out), by total reward.
    const train = samples().filter((s) => s.validation !== true);
    const ranked = [...train].sort((a, b) => b.total! - a.total!);
    assert.deepEqual(
      tableTasks(html, 'best'),
      ranked.slice(0, TABLE_ROWS).map((s) => s.task),
    );
    assert.deepEqual(
      tableTasks(html, 'worst'),
      ranked
        .slice(-TABLE_ROWS)
        .reverse()
        .map((s) => s.task),
    );
    assert.doesNotMatch(html, /<b>4[1-9]<\/b>/, 'validation samples are not in the tables');
    // First vs last: ds1000/0 is sampled at steps 1, 3, 5, 7, 9 (i = 0, 8, ..., 32).
    assert.match(html, /<div class="changed" data-task="ds1000\/\d">/);
    assert.match(html, /step 1 \(mean reward/);

    // Escaping: the script tag from a query, a rewrite, code and the config renders as text.
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /<img/i);
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(html.includes('a &lt; b &amp;&amp; c &gt; &quot;d&quot;'));

    // The truncated lines were skipped and the page says so; the complete records are all there.
    assert.match(html, /metrics\.jsonl: the last line \(line 34, 57 characters\) is incomplete/);
    assert.match(html, /samples\.jsonl: the last line \(line 41, \d+ characters\) is incomplete/);
    assert.match(html, /steps done<\/th><td>30 /);
    // Dropped by reason, from the samples (i = 9, 19, 29; 39 is the XSS sample, dropped too).
    assert.match(chart(html, 'dropped'), />reward-null</);
    assert.match(html, /4 of 37 training samples/);
    // Generator totals over the 30 steps.
    assert.match(html, /<th>calls<\/th><td>240<\/td>/);
    assert.match(html, /<th>cache hits<\/th><td>60 /);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('writeReport refuses a damaged line in the middle of a file', () => {
  const d = makeRunDir();
  try {
    const f = path.join(d, 'metrics.jsonl');
    const lines = readFileSync(f, 'utf8').split('\n');
    lines[5] = lines[5].slice(0, 20);
    writeFileSync(f, lines.join('\n'));
    assert.throws(
      () => writeReport(d),
      (err: unknown) => err instanceof FormatError && /metrics\.jsonl:6/.test(err.message),
    );
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('an empty run (no steps, no samples) and a missing run dir', () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-report-empty-'));
  try {
    writeFileSync(path.join(d, 'run.json'), JSON.stringify(runInfo()));
    writeFileSync(path.join(d, 'metrics.jsonl'), '');
    const html = readFileSync(writeReport(d), 'utf8');
    assertOffline(html);
    assert.match(html, /no steps yet/);
    assert.match(html, /steps done<\/th><td><b>none yet<\/b>/);
    assert.match(chart(html, 'reward'), /no data yet/);
    assert.match(html, /No scored training samples yet/);
    assert.match(html, /config\.json is missing/);
    assert.throws(() => writeReport(path.join(d, 'nope')), /run directory not found/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
  // No run dir at all: renderReport alone.
  const html = renderReport({ run: null, config: null, metrics: [], samples: [] });
  assertOffline(html);
  assert.match(html, /unknown \(no run\.json\)/);
});

test('a single step, null rewards and constant values give finite axes', () => {
  const s = step(1);
  s.reward = null;
  s.rewardStd = null;
  s.components = { bleu: null };
  const html = renderReport({
    run: runInfo(),
    config: {},
    metrics: [s, step(2)],
    samples: [sample(0, { total: null })],
  });
  assertOffline(html);
  // Reward: only step 2 has a value, drawn as one point.
  assert.match(chart(html, 'reward'), /<circle [^>]*data-kind="raw"/);
  // One step only: points, not empty polylines, and no NaN.
  const one = renderReport({ run: null, config: null, metrics: [step(7)], samples: [] });
  assertOffline(one);
  assert.match(chart(one, 'loss'), /<circle [^>]*data-series="loss" data-kind="raw"/);
  assert.deepEqual(polylinePoints(chart(one, 'loss'), 'raw'), []);
  // A null-total sample is not ranked.
  assert.match(html, /No scored training samples yet/);
});

test('a long run is downsampled to at most 2,000 points per polyline', () => {
  const ms: StepRecord[] = [];
  for (let i = 1; i <= 5000; i++) {
    const s = step(i);
    s.reward = Math.sin(i / 50) + (i === 2500 ? 5 : 0);
    ms.push(s);
  }
  const html = renderReport({ run: runInfo(), config: {}, metrics: ms, samples: [] });
  assertOffline(html);
  const svg = chart(html, 'reward');
  assert.deepEqual(polylinePoints(svg, 'raw'), [2000]);
  assert.deepEqual(polylinePoints(svg, 'avg'), [2000]);
  // The downsampling kept the spike at step 2500 (its y is the chart's top).
  const raw = /<polyline [^>]*data-kind="raw"[^>]*points="([^"]*)"/
    .exec(svg)![1]
    .split(' ')
    .map((p) => Number(p.split(',')[1]));
  const avg = /<polyline [^>]*data-kind="avg"[^>]*points="([^"]*)"/
    .exec(svg)![1]
    .split(' ')
    .map((p) => Number(p.split(',')[1]));
  assert.ok(Math.min(...raw) < Math.min(...avg) - 20, 'spike survives in the raw line');
  // Steps done counts the records, the x axis spans 1..5000.
  assert.match(html, /steps done<\/th><td>5000 /);
  assert.ok(html.length < 3_000_000, `report size ${html.length}`);
});
