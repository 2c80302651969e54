import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultDataDir, repoRoot, sharedDataFile } from './paths.js';
import { NotFoundError } from '../util/errors.js';

// The sha256 values recorded in data/README.md: the repository's copies must be these bytes.
const PINNED: Record<string, string> = {
  'ds1000.jsonl.gz': 'e8c6daa9d7223976bce0296644f3933f78d7f47830669ff05cd61da62c6ba9b3',
  'HumanEval.jsonl.gz': 'b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef',
  'mbpp.jsonl.gz': '2809de2a637dffecb4bd58128bcfe1250d0a335779b019956b7f3c28f646e4a6',
};

function withEnv<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env.RL4QE_DATA_DIR;
  if (value === undefined) delete process.env.RL4QE_DATA_DIR;
  else process.env.RL4QE_DATA_DIR = value;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.RL4QE_DATA_DIR;
    else process.env.RL4QE_DATA_DIR = saved;
  }
}

test('default data dir is <package root>/data, whatever the cwd', () => {
  const cwd = process.cwd();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-paths-'));
  try {
    process.chdir(tmp);
    withEnv(undefined, () => {
      assert.equal(defaultDataDir(), path.join(repoRoot(), 'data'));
      for (const name of Object.keys(PINNED)) {
        assert.equal(sharedDataFile(name), path.join(repoRoot(), 'data', name));
      }
    });
  } finally {
    process.chdir(cwd);
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the repository's data files have the sha256 pinned in data/README.md", () => {
  const readme = readFileSync(path.join(defaultDataDir(), 'README.md'), 'utf8');
  for (const [name, sha] of Object.entries(PINNED)) {
    const got = createHash('sha256')
      .update(readFileSync(path.join(defaultDataDir(), name)))
      .digest('hex');
    assert.equal(got, sha, name);
    assert.ok(readme.includes(sha), `data/README.md lists ${name}'s sha256`);
  }
});

test('RL4QE_DATA_DIR overrides the default; a name found nowhere is a NotFoundError', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-paths-'));
  try {
    writeFileSync(path.join(tmp, 'ds1000.jsonl.gz'), '');
    withEnv(tmp, () => {
      assert.equal(sharedDataFile('ds1000.jsonl.gz'), path.join(tmp, 'ds1000.jsonl.gz'));
      assert.throws(() => sharedDataFile('no-such-benchmark.jsonl'), NotFoundError);
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
