// Opt-in (RL4QE_LONG=1): DS-1000 references, wrapped as a chat answer, pass through the one code
// extractor and buildTestProgram and then pass their own tests under the exec venv's python.
// Proves the protocol and the extraction end to end without the sandbox (which isolates and
// limits the same programs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadDs1000 } from '../src/data/ds1000.js';
import { buildTestProgram, ds1000Task } from '../src/data/tasks.js';
import { extractCode } from '../src/data/extract.js';
import { cachePaths } from '../src/util/paths.js';

test(
  'DS-1000: wrapped references → extractCode → buildTestProgram pass (RL4QE_LONG=1)',
  { skip: !process.env.RL4QE_LONG },
  async () => {
    const py = path.join(cachePaths.execVenv(), 'bin', 'python');
    assert.ok(existsSync(py), `no exec venv at ${py}; run: rl4qe setup-exec`);
    const ps = await loadDs1000();
    const pick = ps.filter(
      (p) =>
        ['Pandas', 'Numpy', 'Scipy'].includes(p.metadata.library) &&
        (p.metadata.problemId % 9 === 0 || p.prompt.trimEnd().endsWith('### BEGIN SOLUTION')),
    );
    const failed: string[] = [];
    for (const p of pick) {
      const wrapped = `<think>x</think><answer>\n\`\`\`python\n${p.referenceCode}\`\`\`\n</answer>`;
      const code = extractCode(wrapped, { ds1000Prompt: p.prompt });
      const prog = buildTestProgram(ds1000Task(p).tests!, code);
      const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-ds-'));
      try {
        const r = spawnSync(py, ['-c', prog], { cwd: d, encoding: 'utf8', timeout: 120_000 });
        if (r.status !== 0) failed.push(`${p.metadata.problemId}: ${r.stderr.slice(-300)}`);
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    }
    assert.ok(pick.length > 100);
    assert.deepEqual(failed, []);
  },
);
