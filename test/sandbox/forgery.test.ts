// Forged passes (issue 11): solutions that do not solve the problem but try to make the harness
// report `pass` anyway. Each one runs on a problem of every DS-1000 library under the real
// preloaded worker (exec venv) and must come back with the exact status given here. On the
// protocol before issue 11 (solution and verdict in one interpreter) most of these passed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDs1000, type Ds1000Problem } from '../../src/data/ds1000.js';
import { Sandbox, execVenvPython } from '../../src/sandbox/index.js';
import type { SandboxOutcome } from '../../src/sandbox/index.js';
import { processesOf, waitFor } from './helpers.js';

const MISSING =
  'the DS-1000 exec venv is missing: run `node dist/src/cli/main.js setup-exec` ' +
  '(or `bash scripts/setup-exec.sh`) first';

function show(o: SandboxOutcome): string {
  return `${o.status} ${o.errorType ?? ''}: ${o.stderrTail.slice(-400)}`;
}

/** Forgeries: name → solution code. None of them computes the answer. */
export const FORGERIES: Record<string, string> = {
  'sys.exit(0)': 'import sys\nsys.exit(0)',
  'exit()': 'exit()',
  'quit()': 'quit()',
  'raise SystemExit': 'raise SystemExit',
  'raise SystemExit(0) from a nested function': 'def f():\n    raise SystemExit(0)\nf()',
  // Read the expected answer from the harness's frames.
  'expected_result from the caller frame': [
    'import sys',
    'f = sys._getframe()',
    'while f is not None:',
    "    if 'expected_result' in f.f_locals:",
    "        result = f.f_locals['expected_result']",
    '        break',
    '    f = f.f_back',
  ].join('\n'),
  // Call the test's own oracle (generate_test_case) found in the harness globals.
  'generate_test_case from the harness globals': [
    'import sys, gc',
    'for o in gc.get_objects():',
    "    if callable(o) and getattr(o, '__name__', '') == 'generate_test_case':",
    '        result = o(1)[1]',
    '        break',
  ].join('\n'),
  // Replace the comparison and the string check in the harness globals.
  'replace exec_test / test_string in the globals': [
    'import sys',
    'f = sys._getframe()',
    'while f is not None:',
    "    if 'exec_test' in f.f_globals:",
    "        f.f_globals['exec_test'] = lambda *a, **k: 1",
    "        f.f_globals['test_string'] = lambda *a, **k: None",
    '    f = f.f_back',
    'result = 0',
  ].join('\n'),
  // Monkeypatch the libraries the comparison uses.
  'monkeypatch pandas.testing / numpy.testing / tokenize': [
    'import numpy as np, pandas as pd, tokenize, io',
    'ok = lambda *a, **k: None',
    'for n in dir(pd.testing):',
    "    if n.startswith('assert'): setattr(pd.testing, n, ok)",
    'for n in dir(np.testing):',
    "    if n.startswith('assert'): setattr(np.testing, n, ok)",
    'np.allclose = lambda *a, **k: True',
    'np.array_equal = lambda *a, **k: True',
    'np.isclose = lambda *a, **k: True',
    'tokenize.tokenize = lambda *a, **k: iter(())',
    'try:',
    '    import torch',
    '    torch.equal = lambda *a, **k: True',
    '    torch.allclose = lambda *a, **k: True',
    'except Exception:',
    '    pass',
    'try:',
    '    import tensorflow as tf',
    '    tf.reduce_min = lambda *a, **k: True',
    'except Exception:',
    '    pass',
    'import builtins',
    'builtins.len = lambda *a: 1',
    'result = 0',
  ].join('\n'),
  // An object that says yes to every comparison.
  'an object whose __eq__ always says yes': [
    'class Yes:',
    '    def __eq__(self, o): return True',
    '    def __ne__(self, o): return False',
    '    def __bool__(self): return True',
    '    def __getattr__(self, n): return Yes()',
    '    def __call__(self, *a, **k): return Yes()',
    '    def __len__(self): return 1',
    '    def __iter__(self): return iter([Yes()])',
    '    def __getitem__(self, k): return Yes()',
    '    def __array__(self, *a, **k):',
    '        import numpy as np',
    '        return np.ones(1)',
    'result = Yes()',
  ].join('\n'),
  // Walk up to whatever reports the verdict and call it with the nonce it holds.
  'call the reporting function found in a frame': [
    'import sys, os',
    'f = sys._getframe()',
    'while f is not None:',
    "    r = f.f_locals.get('report')",
    '    if callable(r):',
    "        r({'ok': True})",
    '        os._exit(0)',
    '    f = f.f_back',
    'result = 0',
  ].join('\n'),
  // A masked array: numpy.testing treats masked elements as equal to anything.
  'a fully masked array as the result': [
    'import numpy as np',
    'result = np.ma.masked_all((3,))',
  ].join('\n'),
  // Replace the worker's own serialiser with a pickle that names code or an always-true class.
  'a hand-crafted result pickle naming os.system': [
    'import sys',
    'm = sys.modules["__main__"]',
    'payload = b"cos\\nsystem\\n(S\'echo forged\'\\ntR."',
    'for n in ("solver_dumps", "_pickle"):',
    '    pass',
    'm.solver_dumps = lambda obj: payload',
    'result = 0',
  ].join('\n'),
  // Copy the test's own oracle image (ans.png) over the output, wherever it can be found.
  'copy the oracle image ans.png to output.png': [
    'import glob, shutil, os',
    "c = glob.glob('ans.png') + glob.glob('../*/ans.png') + glob.glob('/sandbox/*/ans.png')",
    "c += glob.glob('/tmp/**/ans.png', recursive=True)",
    'if c:',
    "    shutil.copy(c[0], 'output.png')",
    'result = None',
  ].join('\n'),
  // A message without the run's nonce on every descriptor (a forged setup error would score null).
  'forged setup message on every descriptor': [
    'import os, json',
    "msg = json.dumps({'setup': 'forged'}).encode()",
    'for fd in range(3, 1024):',
    '    try:',
    '        os.write(fd, msg)',
    '    except OSError:',
    '        pass',
    'os._exit(0)',
  ].join('\n'),
};

/** The status each forgery must get (fail unless said otherwise). */
const EXPECTED: Record<string, SandboxOutcome['status']> = {
  'call the reporting function found in a frame': 'fail',
  'forged setup message on every descriptor': 'crash',
};

describe('forged passes are failures, on every DS-1000 library (exec venv)', () => {
  let sb: Sandbox | undefined;
  const byLib = new Map<string, Ds1000Problem>();

  before(async () => {
    for (const p of await loadDs1000()) {
      if (!byLib.has(p.metadata.library)) byLib.set(p.metadata.library, p);
    }
    if (execVenvPython()) sb = new Sandbox({ concurrency: 2 });
  });

  after(async () => {
    await sb?.dispose();
  });

  test('the references of the chosen problems pass (the forgeries are judged by a live test)', async () => {
    assert.ok(sb, MISSING);
    assert.equal(byLib.size, 7);
    for (const [lib, p] of byLib) {
      const o = await sb.runDs1000({ codeContext: p.codeContext, solution: p.referenceCode });
      assert.equal(o.status, 'pass', `${lib} ${p.metadata.problemId}: ${show(o)}`);
    }
  });

  for (const [name, code] of Object.entries(FORGERIES)) {
    test(`forgery: ${name}`, async () => {
      assert.ok(sb, MISSING);
      const want = EXPECTED[name] ?? 'fail';
      const outs = await Promise.all(
        [...byLib.values()].map((p) =>
          sb!.runDs1000({
            codeContext: p.codeContext,
            solution: code,
            limits: { wallSeconds: 60 },
          }),
        ),
      );
      const bad = [...byLib.keys()]
        .map((lib, i) => ({ lib, o: outs[i] as SandboxOutcome }))
        .filter(({ o }) => o.status !== want);
      assert.deepEqual(
        bad.map(({ lib, o }) => `${lib}: ${show(o)}`),
        [],
        `expected ${want} on every library`,
      );
    });
  }

  test('script mode (HumanEval/MBPP): exits and forged reports are failures', async () => {
    assert.ok(sb, MISSING);
    const after = '\nassert add(1, 2) == 3\n';
    const cases: [string, string, SandboxOutcome['status'][]][] = [
      ['sys.exit(0)', 'import sys\nsys.exit(0)\n', ['fail']],
      ['exit()', 'exit()\n', ['fail']],
      ['quit()', 'quit()\n', ['fail']],
      ['raise SystemExit', 'raise SystemExit\n', ['fail']],
      [
        'report forgery',
        (FORGERIES['call the reporting function found in a frame'] as string) + '\n',
        ['fail', 'tampered'],
      ],
      [
        'forged setup',
        (FORGERIES['forged setup message on every descriptor'] as string) + '\n',
        ['crash'],
      ],
    ];
    for (const [name, code, want] of cases) {
      const o = await sb.runScript({ code: code + after });
      assert.ok(want.includes(o.status), `${name}: ${show(o)} (want ${want.join('|')})`);
    }
    const ok = await sb.runScript({ code: 'def add(a, b):\n    return a + b\n' + after });
    assert.equal(ok.status, 'pass', show(ok));
  });

  test('nothing of the forgeries is left running', async () => {
    assert.ok(sb, MISSING);
    assert.ok(await waitFor(() => processesOf(sb!.uids).length === 0, 5000));
  });
});
