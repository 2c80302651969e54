import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../main.js';
import { readSplitManifest } from '../../data/splits.js';

test('rl4qe data split writes a leak-free manifest; bad flags exit with a config error', async () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-cli-split-'));
  try {
    const out = path.join(d, 'split.json');
    const origErr = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    let code: number;
    let bad: number;
    try {
      code = await main(['data', 'split', '--seed', '3', '--val', '40', '--out', out]);
      bad = await main(['data', 'split', '--strategy', 'nope']);
    } finally {
      process.stderr.write = origErr;
    }
    assert.equal(code, 0);
    const m = await readSplitManifest(out);
    assert.deepEqual(m.sizes, { train: 760, validation: 40, test: 200 });
    assert.equal(m.seed, 3);
    assert.equal(bad, 2);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
