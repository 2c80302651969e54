// Forged passes (issue 11): solutions that do not solve the problem but try to make the harness
// report `pass` anyway. Each one runs on a problem of every DS-1000 library under the real
// preloaded worker (exec venv) and must come back with the exact status given here. On the
// protocol before issue 11 (solution and verdict in one interpreter) most of these passed.
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

describe(
  'forged passes are failures, on every DS-1000 library (exec venv)',
  { skip: skipWithoutExecVenv() },
  () => {
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

    test('script mode: legitimate introspection is not tampering (inspect, tracebacks, warnings)', async () => {
      assert.ok(sb, MISSING);
      // Each passed before issue 11's detection flagged library frame use: inspect.getsource failed
      // (no source for the program), traceback printing and pandas' warnings counted as tampering.
      const legit: Record<string, string> = {
        'inspect.signature': [
          'import inspect',
          'def add(a, b=2):',
          '    return a + b',
          "assert str(inspect.signature(add)) == '(a, b=2)'",
        ].join('\n'),
        "inspect.getsource of the program's own function": [
          'import inspect',
          'def add(a, b):',
          '    return a + b',
          "assert 'return a + b' in inspect.getsource(add)",
        ].join('\n'),
        'traceback.print_exc / format_exc and logging.exception': [
          'import traceback, logging',
          'try:',
          '    1 / 0',
          'except ZeroDivisionError:',
          '    traceback.print_exc()',
          "    assert 'ZeroDivisionError' in traceback.format_exc()",
          "    logging.exception('caught')",
        ].join('\n'),
        'namedtuple, enum, typing.NamedTuple, dataclass': [
          'import collections, dataclasses, enum, typing',
          "P = collections.namedtuple('P', 'x y')",
          'class C(enum.Enum):',
          '    A = 1',
          'class N(typing.NamedTuple):',
          '    a: int',
          '@dataclasses.dataclass',
          'class D:',
          '    x: int',
          'assert P(1, 2).x == 1 and N(3).a == 3 and D(4).x == 4',
        ].join('\n'),
        'a pandas FutureWarning (pandas finds its stack level with inspect.currentframe)': [
          'import warnings, pandas as pd',
          "warnings.simplefilter('always')",
          'for k, v in pd.Series([1]).iteritems():',
          '    assert v == 1',
        ].join('\n'),
      };
      for (const [name, code] of Object.entries(legit)) {
        const o = await sb.runScript({ code });
        assert.equal(o.status, 'pass', `${name}: ${show(o)}`);
      }
    });

    test('script mode: frames, heap and memory reached any other way are tampered', async () => {
      assert.ok(sb, MISSING);
      // Walk up from a frame to child_main's report() and call it (the nonce is in its closure).
      const walk = (get: string): string =>
        [
          get,
          'while f is not None:',
          "    r = f.f_locals.get('report')",
          '    if callable(r):',
          "        r({'ok': True})",
          '        os._exit(0)',
          '    f = f.f_back',
        ].join('\n');
      const forged: Record<string, string> = {
        'inspect.currentframe()': walk('import inspect, os\nf = inspect.currentframe()'),
        'logging.currentframe()': walk('import logging, os\nf = logging.currentframe()'),
        'traceback.walk_stack()': walk(
          'import traceback, os\nf = next(traceback.walk_stack(None))[0]',
        ),
        'a traceback’s tb_frame': walk(
          'import os\ntry:\n    raise ValueError\nexcept ValueError as e:\n    f = e.__traceback__.tb_frame',
        ),
        'code compiled under inspect.py’s name': walk(
          [
            'import inspect, os',
            'ns = {}',
            "exec(compile('import sys\\ndef g():\\n    return sys._getframe(1)', inspect.__file__, 'exec'), ns)",
            "f = ns['g']()",
          ].join('\n'),
        ),
        'gc in a forked child, writing the report with the nonce from its closure': [
          'import os, gc, json',
          'pid = os.fork()',
          'if pid == 0:',
          '    for o in gc.get_objects():',
          "        if callable(o) and getattr(o, '__name__', '') == 'report' and o.__closure__:",
          '            c = dict(zip(o.__code__.co_freevars, [x.cell_contents for x in o.__closure__]))',
          "            os.write(c['result_fd'], (json.dumps({'ok': True, 'nonce': c['nonce']}) + '\\n').encode())",
          '            break',
          '    os._exit(0)',
          'os.waitpid(pid, 0)',
          'os._exit(0)',
        ].join('\n'),
      };
      for (const [name, code] of Object.entries(forged)) {
        const o = await sb.runScript({ code });
        assert.equal(o.status, 'tampered', `${name}: ${show(o)}`);
      }
    });

    test('the naive harness: exits in the solution are failures too', async () => {
      const python = execVenvPython();
      assert.ok(python, MISSING);
      const p = [...byLib.values()][0] as Ds1000Problem;
      const outs = await Promise.all(
        ['sys.exit(0)', 'raise SystemExit', 'quit()'].map((k) =>
          runNaiveDs1000(
            { codeContext: p.codeContext, solution: FORGERIES[k] as string },
            { python, wallSeconds: 120 },
          ),
        ),
      );
      for (const o of outs) {
        assert.equal(o.status, 'fail', show(o));
        assert.equal(o.errorType, 'SystemExit', show(o));
      }
    });

    test('nothing of the forgeries is left running', async () => {
      assert.ok(sb, MISSING);
      assert.ok(await waitFor(() => processesOf(sb!.uids).length === 0, 5000));
    });
  },
);
