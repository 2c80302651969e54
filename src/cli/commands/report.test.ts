import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { registerReport, reportCommand } from './report.js';

/** A run directory with one step and one sample: enough for the command's plumbing. */
function makeRunDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-cli-report-'));
  writeFileSync(path.join(d, 'metrics.jsonl'), '');
  writeFileSync(
    path.join(d, 'samples.jsonl'),
    JSON.stringify({ step: 1, task: 'ds1000/0', k: 0, query: 'q', rewrite: 'r', total: 1 }) + '\n',
  );
  return d;
}

test('rl4qe report: reportCommand prints the path or a file:// URL; the command registers', () => {
  const d = makeRunDir();
  try {
    const lines: string[] = [];
    const out = reportCommand(d, { write: (l) => lines.push(l) });
    reportCommand(d, { openPath: true, write: (l) => lines.push(l) });
    assert.deepEqual(lines, [out, `file://${out}`]);
    const program = new Command();
    registerReport(program);
    assert.ok(program.commands.some((c) => c.name() === 'report'));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
