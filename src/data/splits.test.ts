import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadDs1000 } from './ds1000.js';
import {
  apportion,
  applySplit,
  ensureRunSplit,
  ds1000Tasks,
  makeSplit,
  readSplitManifest,
  writeSplitManifest,
} from './splits.js';
import type { CodeTask } from './tasks.js';
import { ConfigError, FormatError } from '../util/errors.js';

const tasksP = loadDs1000().then(ds1000Tasks);

function groupsOf(tasks: CodeTask[], ids: string[]): Set<string> {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  return new Set(ids.map((id) => byId.get(id)!.group));
}

test('DS-1000 families follow origin chains (library-local ids; Sklearn 54 → 53 → 51)', async () => {
  const tasks = await tasksP;
  const byId = new Map(tasks.map((t) => [t.id, t]));
  assert.equal(byId.get('ds1000/871')!.group, 'Sklearn/51');
  assert.equal(byId.get('ds1000/870')!.group, 'Sklearn/51');
  assert.equal(byId.get('ds1000/1')!.group, 'Pandas/0');
  // Every family root is an Origin problem and families never cross libraries.
  assert.equal(new Set(tasks.map((t) => t.group)).size, 452);
  for (const t of tasks) assert.ok(t.group.startsWith(t.stratum + '/'));
});

test('leak-free: 800/200 exactly, no family straddles any two splits, stratified', async () => {
  const tasks = await tasksP;
  for (const seed of [0, 1, 2, 42, 1234]) {
    const m = makeSplit(tasks, { seed, validationSize: 80 });
    assert.equal(m.strategy, 'leak-free');
    assert.deepEqual(m.sizes, { train: 720, validation: 80, test: 200 });
    const all = [...m.ids.train, ...m.ids.validation, ...m.ids.test];
    assert.equal(new Set(all).size, 1000);
    const g = {
      train: groupsOf(tasks, m.ids.train),
      val: groupsOf(tasks, m.ids.validation),
      test: groupsOf(tasks, m.ids.test),
    };
    for (const x of g.test) assert.ok(!g.train.has(x) && !g.val.has(x), `seed ${seed}: ${x} leaks`);
    for (const x of g.val) assert.ok(!g.train.has(x), `seed ${seed}: ${x} leaks into validation`);
    // Stratification: each library's test count within ±2 of its exact share (20%).
    const total = new Map<string, number>();
    for (const t of tasks) total.set(t.stratum, (total.get(t.stratum) ?? 0) + 1);
    for (const [lib, n] of total) {
      const c = m.countsByStratum[lib]!;
      assert.equal(c.train + c.validation + c.test, n);
      assert.ok(Math.abs(c.test - n * 0.2) <= 2, `seed ${seed} ${lib}: ${c.test} vs ${n * 0.2}`);
      assert.ok(Math.abs(c.validation - n * 0.08) <= 3, `seed ${seed} ${lib} val ${c.validation}`);
    }
  }
});

test('paper: 800/200 uniform, and (as expected) it leaks families', async () => {
  const tasks = await tasksP;
  const m = makeSplit(tasks, { seed: 0, strategy: 'paper' });
  assert.deepEqual(m.sizes, { train: 800, validation: 0, test: 200 });
  const tr = groupsOf(tasks, m.ids.train);
  const leaked = [...groupsOf(tasks, m.ids.test)].filter((g) => tr.has(g));
  assert.ok(leaked.length > 20, `paper split leaked ${leaked.length} families`);
});

test('determinism per seed; different seeds differ', async () => {
  const tasks = await tasksP;
  for (const strategy of ['paper', 'leak-free'] as const) {
    const a = makeSplit(tasks, { seed: 7, strategy });
    const b = makeSplit(tasks, { seed: 7, strategy });
    const c = makeSplit(tasks, { seed: 8, strategy });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids.test, c.ids.test);
  }
  // Independent of input order? No: but of nothing else. Same input, same output.
});

test('manifest round-trip, applySplit, bad manifests and bad options', async () => {
  const tasks = await tasksP;
  const m = makeSplit(tasks, { seed: 3, dataset: 'ds1000' });
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-split-'));
  try {
    const f = path.join(d, 'sub', 'split.json');
    await writeSplitManifest(f, m);
    const back = await readSplitManifest(f);
    assert.deepEqual(back, m);
    const s = applySplit(tasks, back);
    assert.equal(s.test.length, 200);
    assert.equal(s.test[0]!.id, m.ids.test[0]);
    writeFileSync(f, JSON.stringify({ ...m, seed: 'x' }));
    await assert.rejects(
      readSplitManifest(f),
      (e: unknown) => e instanceof FormatError && /field seed/.test(e.message),
    );
    assert.throws(() => applySplit(tasks.slice(0, 10), m), FormatError);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
  assert.throws(() => makeSplit(tasks, { seed: 0, testSize: 1001 }), ConfigError);
  assert.throws(() => makeSplit(tasks, { seed: 0, testSize: 2.5 }), ConfigError);
});

test('apportion sums exactly and follows the largest remainders', () => {
  const a = apportion(
    new Map([
      ['a', 291],
      ['b', 220],
      ['c', 45],
    ]),
    111,
  );
  assert.equal(
    [...a.values()].reduce((x, y) => x + y, 0),
    111,
  );
  assert.deepEqual(Object.fromEntries(a), { a: 58, b: 44, c: 9 });
});

test('ensureRunSplit writes once, resumes the same split, refuses other settings', async () => {
  const tasks = await tasksP;
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-run-'));
  try {
    const a = await ensureRunSplit(d, tasks, { seed: 9 });
    const b = await ensureRunSplit(d, tasks, { seed: 9 });
    assert.deepEqual(b, a);
    await assert.rejects(ensureRunSplit(d, tasks, { seed: 10 }), ConfigError);
    await assert.rejects(ensureRunSplit(d, tasks, { seed: 9, strategy: 'paper' }), ConfigError);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
