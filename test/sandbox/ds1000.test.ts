// DS-1000 through the warm pool with the exec venv (rl4qe setup-exec): a sample of reference
// solutions from every library passes, wrong and broken solutions do not, and the naive harness
// agrees. Fails (never skips) when the venv is missing, naming the command that creates it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDs1000, type Ds1000Problem } from '../../src/data/ds1000.js';
import { Sandbox, execVenvPython, runNaiveDs1000 } from '../../src/sandbox/index.js';
import type { SandboxOutcome } from '../../src/sandbox/index.js';
import { processesOf, waitFor } from './helpers.js';
import { skipWithoutExecVenv } from '../helpers/exec-tier.js';

const MISSING =
  'the DS-1000 exec venv is missing: run `node dist/src/cli/main.js setup-exec` ' +
  '(or `bash scripts/setup-exec.sh`) first';

function show(o: SandboxOutcome): string {
  return `${o.status} ${o.errorType ?? ''}: ${o.stderrTail.slice(-600)}`;
}

describe('DS-1000 in the warm sandbox (exec venv)', { skip: skipWithoutExecVenv() }, () => {
  let sb: Sandbox | undefined;
  let sample: Ds1000Problem[] = [];

  before(async () => {
    const all = await loadDs1000();
    // Two problems per library (the first Origin problem and one perturbation).
    const byLib = new Map<string, Ds1000Problem[]>();
    for (const p of all) {
      const l = byLib.get(p.metadata.library) ?? [];
      if (l.length < 2 && (l.length === 0 || p.metadata.perturbationType !== 'Origin')) l.push(p);
      byLib.set(p.metadata.library, l);
    }
    sample = [...byLib.values()].flat();
    if (execVenvPython()) sb = new Sandbox({ concurrency: 2 });
  });

  after(async () => {
    await sb?.dispose();
  });

  test('the exec venv exists and its worker preloads every library', async () => {
    assert.ok(sb, MISSING);
    const r = await sb.ready();
    assert.ok(r.ok, r.error);
    assert.deepEqual(r.info?.importErrors, {});
  });

  test('reference solutions from every library pass', async () => {
    assert.ok(sb, MISSING);
    assert.ok(sample.length >= 14, `sample of ${sample.length}`);
    const outs = await Promise.all(
      sample.map((p) => sb!.runDs1000({ codeContext: p.codeContext, solution: p.referenceCode })),
    );
    outs.forEach((o, i) =>
      assert.equal(o.status, 'pass', `problem ${sample[i]!.metadata.problemId}: ${show(o)}`),
    );
  });

  test('a wrong solution fails, a broken one is a syntax error, a slow one times out', async () => {
    assert.ok(sb, MISSING);
    const p = sample[0] as Ds1000Problem;
    const wrong = await sb.runDs1000({ codeContext: p.codeContext, solution: 'result = None' });
    assert.equal(wrong.status, 'fail', show(wrong));
    const broken = await sb.runDs1000({ codeContext: p.codeContext, solution: 'result = (' });
    assert.equal(broken.status, 'syntax_error', show(broken));
    const slow = await sb.runDs1000({
      codeContext: p.codeContext,
      solution: 'while True:\n    pass',
      limits: { wallSeconds: 2, cpuSeconds: 1 },
    });
    assert.equal(slow.status, 'timeout', show(slow));
  });

  test('torch and tensorflow run in forked children', async () => {
    assert.ok(sb, MISSING);
    const o = await sb.runScript({
      code: [
        'import torch, tensorflow as tf',
        'assert float(torch.ones(3).sum()) == 3.0',
        'assert float(tf.reduce_sum(tf.ones(4)).numpy()) == 4.0',
      ].join('\n'),
    });
    assert.equal(o.status, 'pass', show(o));
  });

  test('the naive harness agrees on a few problems', async () => {
    assert.ok(sb, MISSING);
    const python = execVenvPython() as string;
    for (const p of sample.slice(0, 3)) {
      const t = { codeContext: p.codeContext, solution: p.referenceCode };
      const a = await sb.runDs1000(t);
      const b = await runNaiveDs1000(t, { python });
      assert.equal(a.status, b.status, `problem ${p.metadata.problemId}: ${show(a)} / ${show(b)}`);
    }
    const p = sample[0] as Ds1000Problem;
    const bad = await runNaiveDs1000(
      { codeContext: p.codeContext, solution: 'result = (' },
      { python },
    );
    assert.equal(bad.status, 'syntax_error', show(bad));
  });

  test('nothing of the tests is left running', async () => {
    assert.ok(sb, MISSING);
    assert.ok(await waitFor(() => processesOf(sb!.uids).length === 0, 5000));
  });
});
