// The per-test limits under the real preloaded worker (exec venv) and the DS-1000 protocol: the
// bombs and fills run as the solution of a real problem (so in the solver, forked from a worker
// holding numpy, pandas, torch and TensorFlow), each with its exact status and nothing left.
// Fails (never skips) when the exec venv is missing; a check this machine cannot make (no
// writable cgroup, no inode-bounded tmpfs) is skipped saying why.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { loadDs1000, type Ds1000Problem } from '../../src/data/ds1000.js';
import { Sandbox, execVenvPython } from '../../src/sandbox/index.js';
import type { SandboxOutcome } from '../../src/sandbox/index.js';
import { processesOf, waitFor } from './helpers.js';

const MISSING =
  'the DS-1000 exec venv is missing: run `node dist/src/cli/main.js setup-exec` ' +
  '(or `bash scripts/setup-exec.sh`) first';

function show(o: SandboxOutcome): string {
  return `${o.status} ${o.errorType ?? ''} ${JSON.stringify(o.resources)}: ${o.stderrTail.slice(-400)}`;
}

describe('bombs and fills as DS-1000 solutions (preloaded worker)', () => {
  let sb: Sandbox | undefined;
  let problem: Ds1000Problem;
  let noGroup: string | undefined;
  let unbounded: string | undefined;

  before(async () => {
    const all = await loadDs1000();
    problem = all.find((p) => p.metadata.library === 'Numpy') as Ds1000Problem;
    if (!execVenvPython()) return;
    sb = new Sandbox({ concurrency: 1, diskBytes: 128 * 2 ** 20, diskFiles: 4096 });
    const r = await sb.ready();
    assert.ok(r.ok, r.error);
    if (r.info?.cgroup == null) noGroup = `no per-test cgroup here: ${sb.notes.join('; ')}`;
    if (r.info?.filesBounded !== true)
      unbounded = `the scratch space has no inode bound here (isolation ${sb.isolation.mode})`;
  });

  after(async () => {
    await sb?.dispose();
  });

  const run = (solution: string, limits = {}): Promise<SandboxOutcome> =>
    sb!.runDs1000({
      codeContext: problem.codeContext,
      solution,
      limits: { wallSeconds: 60, ...limits },
    });

  async function nothingLeft(): Promise<void> {
    assert.ok(await waitFor(() => processesOf(sb!.uids).length === 0, 5000), 'processes left');
    const groups = sb!.cgroupDirs.flatMap((d) =>
      existsSync(d) ? readdirSync(d).filter((n) => /^t\d+$/.test(n)) : [],
    );
    assert.deepEqual(groups, [], 'test groups left');
  }

  test('the reference passes under its cgroup', async () => {
    assert.ok(sb, MISSING);
    const o = await run(problem.referenceCode);
    assert.equal(o.status, 'pass', show(o));
    if (!noGroup) assert.equal(o.resources?.cgroup, sb.cgroups.version);
  });

  test('128 children touching 3/4 of a 1 GiB budget each: memory (MemoryLimit)', async (t) => {
    assert.ok(sb, MISSING);
    if (noGroup) return t.skip(noGroup);
    const o = await run(
      [
        'import os, time',
        'for i in range(128):',
        '    if os.fork() == 0:',
        `        b = bytearray(${3 * 2 ** 28})`,
        '        time.sleep(60)',
        '        os._exit(0)',
        'time.sleep(60)',
      ].join('\n'),
      { memoryBytes: 2 ** 30 },
    );
    assert.equal(o.status, 'memory', show(o));
    assert.equal(o.errorType, 'MemoryLimit', show(o));
    assert.ok((o.resources?.peakMemoryBytes ?? Infinity) <= 2 ** 30, show(o));
    await nothingLeft();
  });

  test('fork bomb: fail (ProcessLimit)', async (t) => {
    assert.ok(sb, MISSING);
    if (noGroup) return t.skip(noGroup);
    // A lower limit than the default 128 keeps the test short (each fork copies a worker of
    // about 1 GiB resident); the mechanism is the same.
    const o = await run('import os\nwhile True:\n    os.fork()', { processes: 32 });
    assert.equal(o.resources?.pidsMax, String(32 + 16), show(o));
    assert.equal(o.status, 'fail', show(o));
    assert.equal(o.errorType, 'ProcessLimit', show(o));
    await nothingLeft();
  });

  test('inode fill: crash (FileCountLimit); byte fill: crash (DiskLimit); the next test has room', async (t) => {
    assert.ok(sb, MISSING);
    if (unbounded) return t.skip(unbounded);
    const files = await run("for i in range(10**6):\n    open('f%d' % i, 'w').close()");
    assert.equal(files.status, 'crash', show(files));
    assert.equal(files.errorType, 'FileCountLimit', show(files));
    const bytes = await run(
      "for i in range(70):\n    with open('f%d' % i, 'wb') as f:\n        f.write(b'x' * (15 << 20))",
      { outputBytes: 2 ** 30 },
    );
    assert.equal(bytes.status, 'crash', show(bytes));
    assert.equal(bytes.errorType, 'DiskLimit', show(bytes));
    const ok = await run(problem.referenceCode);
    assert.equal(ok.status, 'pass', show(ok));
    await nothingLeft();
  });

  test('the next solution finds nothing the previous one left (files, daemon, module state)', async () => {
    assert.ok(sb, MISSING);
    const marker = `rl4qe-left-${process.pid}`;
    const places = '(".", "/tmp", "/var/tmp", os.environ["HOME"], "/dev/shm")';
    const leave = await run(
      [
        'import os, sys, numpy',
        `for d in ${places}:`,
        '    try:',
        `        open(os.path.join(d, "${marker}"), "w").write("x")`,
        '    except OSError:',
        '        pass',
        'numpy.rl4qe_marker = 1',
        'if os.fork() == 0:',
        '    os.setsid()',
        `    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)", "${marker}"])`,
        problem.referenceCode,
      ].join('\n'),
    );
    assert.equal(leave.status, 'pass', show(leave));
    const look = await run(
      [
        'import os, numpy',
        'found = []',
        `for d in ${places}:`,
        '    try:',
        `        if "${marker}" in os.listdir(d): found.append(d)`,
        '    except OSError:',
        '        pass',
        "if hasattr(numpy, 'rl4qe_marker'): found.append('module state')",
        "for p in os.listdir('/proc'):",
        '    try:',
        `        if p.isdigit() and b"${marker}" in open('/proc/%s/cmdline' % p, 'rb').read():`,
        "            found.append('process ' + p)",
        '    except OSError:',
        '        pass',
        'assert not found, found',
        problem.referenceCode,
      ].join('\n'),
    );
    assert.equal(look.status, 'pass', show(look));
    await nothingLeft();
  });

  test('SysV objects cannot be made, and none is listed', async (t) => {
    assert.ok(sb, MISSING);
    if ((await sb.ready()).info?.seccomp !== true)
      return t.skip(`no seccomp here: ${sb.notes.join('; ')}`);
    const make = await run(
      [
        'import ctypes',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'ids = [libc.shmget(0, 4096, 0o1666), libc.semget(0, 1, 0o1666), libc.msgget(0, 0o1666)]',
        'assert ids == [-1, -1, -1], ids',
        "assert all(len(open('/proc/sysvipc/' + k).read().splitlines()) == 1 for k in ('shm', 'sem', 'msg'))",
        problem.referenceCode,
      ].join('\n'),
    );
    assert.equal(make.status, 'pass', show(make));
  });
});
