import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadHumanEval, humanEvalTask, humanEvalProtocol } from './humaneval.js';
import { loadMbpp, mbppTask, mbppProtocol } from './mbpp.js';
import { loadCustomTasks } from './custom.js';
import { loadDs1000 } from './ds1000.js';
import { buildTestProgram, ds1000Task, pythonStringLiteral } from './tasks.js';
import { FormatError } from '../util/errors.js';

test('HumanEval: 164 problems; program = prompt + completion + test + check(entry_point)', async () => {
  const ps = await loadHumanEval();
  assert.equal(ps.length, 164);
  assert.equal(ps[0]!.taskId, 'HumanEval/0');
  assert.equal(ps[163]!.taskId, 'HumanEval/163');
  const p = ps[0]!;
  const prog = buildTestProgram(humanEvalProtocol(p), p.canonicalSolution);
  assert.equal(prog, `${p.prompt}${p.canonicalSolution}\n${p.test}\ncheck(${p.entryPoint})\n`);
  const t = humanEvalTask(p);
  assert.equal(t.id, 'HumanEval/0');
  assert.equal(t.reference, p.canonicalSolution);
});

test('MBPP: 974 problems, official splits, setup after code, challenge tests opt-in', async () => {
  const ps = await loadMbpp();
  assert.equal(ps.length, 974);
  const count = (s: string): number => ps.filter((p) => p.split === s).length;
  assert.deepEqual(
    [count('prompt'), count('test'), count('validation'), count('train')],
    [10, 500, 90, 374],
  );
  const p367 = ps.find((p) => p.taskId === 367)!;
  const prog = buildTestProgram(mbppProtocol(p367), p367.code);
  assert.ok(prog.indexOf('class Node') < prog.indexOf('root = Node(1)'));
  assert.ok(prog.trimEnd().endsWith(p367.testList[2]!.trimEnd()));
  const p11 = ps.find((p) => p.taskId === 11)!;
  assert.equal(p11.challengeTestList.length > 0, true);
  const withC = buildTestProgram(mbppProtocol(p11, { challenge: true }), p11.code);
  assert.ok(withC.includes(p11.challengeTestList[0]!));
  assert.ok(!buildTestProgram(mbppProtocol(p11), p11.code).includes(p11.challengeTestList[0]!));
  assert.ok(mbppTask(p11).query.includes(p11.testList[0]!));
});

test('custom JSONL: required fields, optional tests (string or list), errors name line/field', async () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-custom-'));
  try {
    const f = path.join(d, 'tasks.jsonl');
    writeFileSync(
      f,
      [
        {
          id: 'a',
          query: 'add one',
          reference: 'def f(x): return x + 1',
          tests: 'assert f(1) == 2',
        },
        {
          query: 'q2',
          reference: 'r2',
          tests: ['assert 1', 'assert 2'],
          setup: 'import math',
          group: 'g',
        },
        { id: 7, query: 'q3', reference: 'r3', library: 'numpy' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const ts = await loadCustomTasks(f);
    assert.deepEqual(
      ts.map((t) => [t.id, t.group, t.stratum]),
      [
        ['a', 'a', 'custom'],
        ['line2', 'g', 'custom'],
        ['7', '7', 'numpy'],
      ],
    );
    assert.equal(buildTestProgram(ts[0]!.tests!, 'X'), 'X\nassert f(1) == 2\n');
    assert.equal(buildTestProgram(ts[1]!.tests!, 'X'), 'import math\nX\nassert 1\nassert 2\n');
    assert.equal(ts[2]!.tests, undefined);
    writeFileSync(f, JSON.stringify({ id: 'a', reference: 'r' }) + '\n');
    await assert.rejects(loadCustomTasks(f), (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, /tasks\.jsonl:1 field query/);
      return true;
    });
    writeFileSync(
      f,
      [
        { id: 'a', query: 'q', reference: 'r' },
        { id: 'a', query: 'q', reference: 'r' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    await assert.rejects(loadCustomTasks(f), /duplicate task id/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('pythonStringLiteral round-trips through Python (quotes, backslashes, unicode, newlines)', () => {
  const s = 'a"b\'c\\d\n\t\r\u0000é中\u2028😀 """ end\\';
  const r = spawnSync(
    'python3',
    ['-c', `import sys; sys.stdout.write(ascii(${pythonStringLiteral(s)}))`],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const back = spawnSync(
    'python3',
    ['-c', `import sys; sys.stdout.buffer.write((${r.stdout}).encode('utf-8'))`],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(back.stdout, s);
});

test('DS-1000 protocol: the program runs code_context then test_execution and test_string', async () => {
  const ps = await loadDs1000();
  const withString = ps.find((p) => p.codeContext.includes('def test_string('))!;
  const t = ds1000Task(withString);
  const prog = buildTestProgram(t.tests!, withString.referenceCode);
  assert.ok(prog.startsWith(withString.codeContext));
  assert.match(
    prog,
    /test_execution\(__rl4qe_solution\)\nif 'test_string' in globals\(\):\n {4}test_string/,
  );
  assert.equal(
    t.group,
    `${withString.metadata.library}/${withString.metadata.perturbationOriginId}`,
  );
});

// Opt-in: every canonical HumanEval / MBPP solution passes its own protocol under plain python3
// (proves the protocol strings; the sandbox does the real, isolated runs).
test(
  'canonical solutions pass their protocols (RL4QE_LONG=1)',
  { skip: !process.env.RL4QE_LONG },
  async () => {
    const he = await loadHumanEval();
    const mb = await loadMbpp();
    const progs = [
      ...he.map((p) => [p.taskId, buildTestProgram(humanEvalProtocol(p), p.canonicalSolution)]),
      ...mb.map((p) => [`mbpp/${p.taskId}`, buildTestProgram(mbppProtocol(p), p.code)]),
    ];
    const driver = `
import json, sys, subprocess
progs = json.load(sys.stdin)
bad = []
for tid, prog in progs:
    r = subprocess.run([sys.executable, '-c', prog], capture_output=True, timeout=60)
    if r.returncode != 0: bad.append(tid)
print(json.dumps(bad))`;
    const r = spawnSync('python3', ['-c', driver], {
      input: JSON.stringify(progs),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  },
);

test('every DS-1000 reference round-trips through pythonStringLiteral in Python', async () => {
  const ps = await loadDs1000();
  const lits = ps.map((p) => pythonStringLiteral(p.referenceCode));
  const driver =
    'import ast, json, sys\n' +
    'lits = json.load(sys.stdin)\n' +
    'sys.stdout.write(json.dumps([ast.literal_eval(l) for l in lits]))\n';
  const r = spawnSync('python3', ['-c', driver], {
    input: JSON.stringify(lits),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    JSON.parse(r.stdout),
    ps.map((p) => p.referenceCode),
  );
});
