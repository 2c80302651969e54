import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  barChart,
  escapeHtml,
  formatTick,
  lineChart,
  lttbIndices,
  movingAverage,
  niceTicks,
  stackedBar,
} from './svg-chart.js';

test('escapeHtml escapes the five HTML metacharacters', () => {
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;',
  );
});

test('niceTicks: round steps, and a finite range when all values are equal', () => {
  assert.deepEqual(niceTicks(0, 1, 5).ticks, [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
  for (const v of [0, 3, -2e-5]) {
    const { ticks, step } = niceTicks(v, v);
    assert.ok(step > 0 && Number.isFinite(step));
    assert.ok(ticks[0] < v && ticks[ticks.length - 1] > v, `ticks around ${v}`);
  }
  assert.equal(formatTick(0.0001, 0.00005), '1e-4');
  assert.equal(formatTick(25000, 5000), '25k');
  assert.equal(formatTick(5000, 5000), '5k');
  assert.equal(formatTick(0.25, 0.05), '0.25');
});

test('lttbIndices keeps both ends, the budget and the spike', () => {
  const n = 10_000;
  const x = Array.from({ length: n }, (_, i) => i);
  const y = x.map((i) => (i === 6543 ? 100 : Math.sin(i / 100)));
  const idx = lttbIndices(x, y, 500);
  assert.equal(idx.length, 500);
  assert.equal(idx[0], 0);
  assert.equal(idx[499], n - 1);
  assert.ok(idx.includes(6543));
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1]);
  assert.deepEqual(lttbIndices([1, 2], [3, 4], 500), [0, 1]);
});

test('movingAverage averages the finite values of each window, bridging short gaps only', () => {
  assert.deepEqual(movingAverage([1, 2, 3, null, 5], 3), [1.5, 2, 2.5, 4, 5]);
  assert.deepEqual(movingAverage([1, null, null, null, 5], 3), [1, 1, null, 5, 5]);
});

test('charts: empty placeholder, bars, stacked shares; user text is escaped', () => {
  const empty = lineChart({ title: 'T', xLabel: 'x', yLabel: 'y', series: [] });
  assert.match(empty, /no data yet/);
  const bad = lineChart({
    title: '<b>',
    xLabel: 'x',
    yLabel: 'y',
    series: [{ name: '</svg><script>', x: [1, 2, 3], y: [NaN, 2, Infinity] }],
  });
  assert.doesNotMatch(bad, /<script|<b>|NaN|Infinity/);
  const bars = barChart({
    title: 'B',
    bars: [
      { label: 'a<', value: 3 },
      { label: 'b', value: 1 },
    ],
  });
  assert.equal((bars.match(/data-kind="bar"/g) ?? []).length, 2);
  assert.match(bars, /a&lt;/);
  const st = stackedBar({
    title: 'S',
    segments: ['p', 'q'],
    rows: [{ label: 'r', values: [1, 3] }],
    scale: 'share',
  });
  assert.match(st, /data-segment="q"[^>]*>[\s\S]*?75\.0%/);
});
