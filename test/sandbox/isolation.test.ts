// Fail-closed isolation (issue 11): seccomp refuses what a data-science solution never needs, the
// run folder and /tmp are size-capped tmpfs, capabilities are gone, SysV IPC cannot outlive a
// test, and a failed uid drop or network unshare refuses the test instead of running it.
// Runs under the real worker (exec venv python when present, else python3), without preloading.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, probeSandbox } from '../../src/sandbox/index.js';
import type { SandboxOutcome } from '../../src/sandbox/index.js';

function show(o: SandboxOutcome): string {
  return `${o.status} ${o.errorType ?? ''}: ${o.stderrTail.slice(-600)}`;
}

/** A DS-1000-shaped context whose only check is `result == expected` (the solver computes it). */
function context(expected: string): string {
  return [
    'def test_execution(solution):',
    '    env = {}',
    '    exec(solution, env)',
    `    assert env["result"] == ${JSON.stringify(expected)}, env.get("result")`,
  ].join('\n');
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A solution whose result counts the SysV objects it can see ("shm sem msg"). */
const SYSV_COUNT = [
  'def n(kind):',
  '    try:',
  "        return len(open('/proc/sysvipc/' + kind).read().splitlines()) - 1",
  '    except OSError:',
  '        return 0',
  "result = '%d %d %d' % (n('shm'), n('sem'), n('msg'))",
].join('\n');

describe('fail-closed isolation', () => {
  let sb: Sandbox;

  before(() => {
    sb = new Sandbox({ concurrency: 1, preload: false });
  });

  after(async () => {
    await sb.dispose();
  });

  test('seccomp refuses ptrace, namespaces, mount, keyrings, bpf and SysV IPC', async (t) => {
    const r = await sb.ready();
    assert.ok(r.ok, r.error);
    if (r.info?.seccomp !== true) {
      t.skip(`no seccomp on this machine: ${sb.notes.join('; ')}`);
      return;
    }
    const solution = [
      'import ctypes, os',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'sc = libc.syscall',
      'calls = {',
      "  'ptrace': (101, 0, 0, 0, 0), 'unshare': (272, 0x40000000), 'setns': (308, 0, 0),",
      "  'mount': (165, 0, 0, 0, 0, 0), 'keyctl': (250, 0, 0), 'bpf': (321, 0, 0, 0),",
      "  'shmget': (29, 0, 4096, 0o1600), 'semget': (64, 0, 1, 0o1600), 'msgget': (68, 0, 0o1600),",
      "  'clone NEWUSER': (56, 0x10000000 | 17, 0, 0, 0, 0), 'userfaultfd': (323, 0),",
      '}',
      'bad = []',
      'for name, args in calls.items():',
      '    r = sc(*args)',
      '    e = ctypes.get_errno()',
      '    if r != -1 or e != 1:',
      "        bad.append('%s=%d/%d' % (name, r, e))",
      "st = open('/proc/self/status').read()",
      "if 'NoNewPrivs:\\t1' not in st: bad.append('no_new_privs off')",
      "if 'Seccomp:\\t2' not in st: bad.append('seccomp not in filter mode')",
      "result = ','.join(bad) or 'all refused'",
    ].join('\n');
    const o = await sb.runDs1000({ codeContext: context('all refused'), solution });
    assert.equal(o.status, 'pass', show(o));
  });

  test('SysV IPC: making shm, sem and msg objects fails in a test; none is listed after', async (t) => {
    const r = await sb.ready();
    if (r.info?.seccomp !== true) {
      t.skip(`no seccomp on this machine: ${sb.notes.join('; ')}`);
      return;
    }
    const make = await sb.runDs1000({
      codeContext: context('refused'),
      solution: [
        'import ctypes',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'got = []',
        'for f, args in ((libc.shmget, (0, 4096, 0o1666)), (libc.semget, (0, 1, 0o1666)),',
        '                (libc.msgget, (0, 0o1666))):',
        '    got.append((f(*args), ctypes.get_errno()))',
        "result = 'refused' if all(g == (-1, 1) for g in got) else repr(got)",
      ].join('\n'),
    });
    assert.equal(make.status, 'pass', show(make));
    const look = await sb.runDs1000({ codeContext: context('0 0 0'), solution: SYSV_COUNT });
    assert.equal(look.status, 'pass', show(look));
  });

  test('a test that reads what the previous test left finds nothing', async () => {
    const marker = `rl4qe-leftover-${process.pid}`;
    const leave = await sb.runDs1000({
      codeContext: context('left'),
      solution: [
        'import os, sys, json',
        'for d in (".", "/tmp", "/var/tmp", os.environ["HOME"], "/dev/shm"):',
        '    try:',
        `        open(os.path.join(d, "${marker}"), "w").write("x")`,
        '    except OSError:',
        '        pass',
        'json.rl4qe_marker = 1',
        'if os.fork() == 0:',
        '    os.setsid()',
        `    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)", "${marker}"])`,
        "result = 'left'",
      ].join('\n'),
    });
    assert.equal(leave.status, 'pass', show(leave));
    const look = await sb.runDs1000({
      codeContext: context('clean'),
      solution: [
        'import os, json',
        'found = []',
        'for d in (".", "/tmp", "/var/tmp", os.environ["HOME"], "/dev/shm"):',
        '    try:',
        `        if "${marker}" in os.listdir(d): found.append(d)`,
        '    except OSError:',
        '        pass',
        "if hasattr(json, 'rl4qe_marker'): found.append('module state')",
        "for p in os.listdir('/proc'):",
        '    try:',
        `        if p.isdigit() and b"${marker}" in open('/proc/%s/cmdline' % p, 'rb').read():`,
        "            found.append('process %s' % p)",
        '    except OSError:',
        '        pass',
        "result = 'clean' if not found else repr(found)",
      ].join('\n'),
    });
    assert.equal(look.status, 'pass', show(look));
  });

  test('the test has no capabilities, in any set', async () => {
    const o = await sb.runDs1000({
      codeContext: context('0 0 0'),
      solution: [
        "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)",
        "result = ' '.join(str(int(st[k], 16)) for k in ('CapInh', 'CapPrm', 'CapEff'))",
      ].join('\n'),
    });
    assert.equal(o.status, 'pass', show(o));
  });

  test('the run folder is a size-capped tmpfs: a 1 GiB fill in 15 MiB files stops, and the next test has room', async (t) => {
    if (sb.isolation.mode !== 'bwrap') {
      t.skip(`isolation is ${sb.isolation.mode}: the run folder is on the host disk`);
      return;
    }
    const fill = await sb.runDs1000({
      codeContext: context('stopped'),
      solution: [
        'import os, errno',
        "result = 'filled'",
        'try:',
        '    for i in range(70):',
        "        with open('f%d' % i, 'wb') as f:",
        "            f.write(b'x' * (15 << 20))",
        'except OSError as e:',
        "    result = 'stopped' if e.errno in (errno.ENOSPC, errno.EFBIG) else repr(e)",
      ].join('\n'),
      limits: { wallSeconds: 60 },
    });
    assert.equal(fill.status, 'pass', show(fill));
    const tmp = await sb.runDs1000({
      codeContext: context('stopped'),
      solution: [
        'import errno',
        "result = 'filled'",
        'try:',
        '    for i in range(70):',
        "        with open('/tmp/f%d' % i, 'wb') as f:",
        "            f.write(b'x' * (15 << 20))",
        'except OSError as e:',
        "    result = 'stopped' if e.errno in (errno.ENOSPC, errno.EFBIG) else repr(e)",
      ].join('\n'),
      limits: { wallSeconds: 60 },
    });
    assert.equal(tmp.status, 'pass', show(tmp));
    const next = await sb.runDs1000({
      codeContext: context('ok'),
      solution: [
        'import os',
        "leftover = os.listdir('.') + [n for n in os.listdir('/tmp') if n.startswith('f')]",
        'for i in range(4):',
        "    open('g%d' % i, 'wb').write(b'x' * (15 << 20))",
        "result = 'ok' if not leftover else repr(leftover)",
      ].join('\n'),
    });
    assert.equal(next.status, 'pass', show(next));
  });
});

describe('SysV IPC behind seccomp: what a test made is removed after it', () => {
  test('seccomp off (simulated): shm, sem and msg objects are made, and gone for the next test', async (t) => {
    await using sb = new Sandbox({ concurrency: 1, preload: false, simulate: ['noSeccomp'] });
    await sb.ready();
    if (sb.isolation.mode !== 'bwrap' && !isRoot) {
      t.skip('no private IPC namespace and no per-test uid: the objects cannot be told apart');
      return;
    }
    const make = await sb.runDs1000({
      codeContext: context('1 1 1'),
      solution: [
        'import ctypes',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'ids = [libc.shmget(0, 4096, 0o1600), libc.semget(0, 1, 0o1600), libc.msgget(0, 0o1600)]',
        'assert min(ids) >= 0, (ids, ctypes.get_errno())',
        SYSV_COUNT,
      ].join('\n'),
    });
    assert.equal(make.status, 'pass', show(make));
    const look = await sb.runDs1000({ codeContext: context('0 0 0'), solution: SYSV_COUNT });
    assert.equal(look.status, 'pass', show(look));
  });
});

describe('refusals: a failed isolation step does not run the test', () => {
  const slow = 'import time\ntime.sleep(3)\nresult = 1';

  test('uid drop refused at start-up (simulated): sandbox_error, nothing run', async (t) => {
    if (!isRoot) {
      t.skip('not root: there is no per-test uid to drop to');
      return;
    }
    await using sb = new Sandbox({ concurrency: 1, preload: false, simulate: ['uidDropFails'] });
    const o = await sb.runDs1000({ codeContext: context('1'), solution: slow });
    assert.equal(o.status, 'sandbox_error', show(o));
    assert.equal(o.errorType, 'IsolationRefused');
    assert.ok(o.seconds < 1, `ran for ${o.seconds}s`);
    const s = await sb.runScript({ code: 'import time\ntime.sleep(3)' });
    assert.equal(s.status, 'sandbox_error', show(s));
  });

  test('uid drop refused in the test process (simulated): sandbox_error, nothing run', async (t) => {
    if (!isRoot) {
      t.skip('not root: there is no per-test uid to drop to');
      return;
    }
    await using sb = new Sandbox({
      concurrency: 1,
      preload: false,
      simulate: ['uidDropFailsInChild'],
    });
    const o = await sb.runDs1000({ codeContext: context('1'), solution: slow });
    assert.equal(o.status, 'sandbox_error', show(o));
    assert.ok(o.seconds < 2.5, `ran for ${o.seconds}s`);
  });

  test('network unshare refused (simulated, fallback mode): sandbox_error, nothing run', async (t) => {
    if (!isRoot) {
      t.skip('not root: the fallback cannot unshare the network, and says so (network open)');
      return;
    }
    await using sb = new Sandbox({
      concurrency: 1,
      preload: false,
      isolation: 'none',
      simulate: ['unshareFails'],
    });
    const o = await sb.runDs1000({ codeContext: context('1'), solution: slow });
    assert.equal(o.status, 'sandbox_error', show(o));
    assert.equal(o.errorType, 'IsolationRefused');
    assert.match(o.stderrTail, /network namespace/);
  });
});

describe('probeSandbox (for rl4qe doctor)', () => {
  test('reports what a started worker’s test got (uid, network, seccomp, cgroup)', async () => {
    const p = await probeSandbox();
    const rows = new Map(p.rows);
    assert.equal(p.runs, true, JSON.stringify(p.rows));
    const seen = p.seen;
    assert.ok(seen, 'the probe test reported nothing');
    for (const k of [
      'test uid',
      'test network',
      'test seccomp',
      'test cgroup',
      'test scratch space',
    ])
      assert.ok(rows.has(k), k);
    // The rows say what the test saw, not what was expected.
    if (isRoot) assert.notEqual(seen.uid, 0);
    if (isRoot) assert.match(rows.get('test uid') ?? '', /its own/);
    assert.match(rows.get('test seccomp') ?? '', seen.seccomp === '2' ? /^filter/ : /^none/);
    if (seen.interfaces.some((i) => i !== 'lo'))
      assert.match(rows.get('test network') ?? '', /SHARED/);
    const sb = new Sandbox({ concurrency: 1, preload: false });
    const cg = sb.cgroups.version;
    await sb.dispose();
    if (cg === 'none')
      assert.match(rows.get('test cgroup') ?? '', /^none: limits per process only/);
    else {
      assert.match(
        rows.get('test cgroup') ?? '',
        new RegExp(`^${cg}: memory \\d+ MiB, pids.max \\d+`),
      );
      assert.ok(
        seen.cgroup.some((l) => /\/t\d+$/.test(l)),
        seen.cgroup.join(' '),
      );
    }
  });
});
