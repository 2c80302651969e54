// Limits per TEST, not per process (issue 11): memory and process counts of all a test's processes
// together through its cgroup, files and bytes through the scratch tmpfs, and the cleanup after.
// Plain python3 without preloading (runs wherever python3 exists); each check that can prove
// nothing on this machine (no writable cgroup, not root, no bubblewrap) is skipped saying why.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Sandbox, detectCgroups } from '../../src/sandbox/index.js';
import type { SandboxOutcome } from '../../src/sandbox/index.js';
import { privateTmp, processesOf, waitFor } from './helpers.js';

function show(o: SandboxOutcome): string {
  return `${o.status} ${o.errorType ?? ''} after ${o.seconds.toFixed(2)}s ${JSON.stringify(o.resources)}: ${o.stderrTail.slice(-400)}`;
}

const MEM = 256 * 2 ** 20;

/** Per-test groups left in the workers' groups (each test's group is removed after it). */
function testGroupsLeft(sb: Sandbox): string[] {
  return sb.cgroupDirs.flatMap((d) =>
    existsSync(d) ? readdirSync(d).filter((n) => /^t\d+$/.test(n)) : [],
  );
}

describe('per-test cgroups: memory and processes of all the test’s processes together', () => {
  let sb: Sandbox;
  let noGroup: string | undefined;

  before(async () => {
    sb = new Sandbox({
      python: 'python3',
      preload: false,
      concurrency: 1,
      limits: { wallSeconds: 30, cpuSeconds: 20, memoryBytes: MEM },
    });
    const r = await sb.ready();
    assert.ok(r.ok, r.error);
    if (sb.cgroups.version === 'none' || r.info?.cgroup == null)
      noGroup = `no per-test cgroup here: ${sb.notes.join('; ')}`;
  });

  after(async () => {
    await sb.dispose();
  });

  test('128 children touching 3/4 of the budget each: memory (MemoryLimit), everything killed, group removed', async (t) => {
    if (noGroup) return t.skip(noGroup);
    const o = await sb.runScript({
      code: [
        'import os, time',
        'kids = []',
        'for i in range(128):',
        '    pid = os.fork()',
        '    if pid == 0:',
        `        b = bytearray(${Math.floor((MEM * 3) / 4)})  # zero-filled: every page touched`,
        '        time.sleep(60)',
        '        os._exit(0)',
        '    kids.append(pid)',
        'for k in kids:',
        '    os.waitpid(k, 0)',
      ].join('\n'),
    });
    assert.equal(o.status, 'memory', show(o));
    assert.equal(o.errorType, 'MemoryLimit', show(o));
    assert.ok((o.resources?.oomKills ?? 0) >= 1, show(o));
    assert.equal(o.resources?.memoryMaxBytes, MEM, show(o));
    // The kernel held all of them together to the budget: the host gave no more than that.
    assert.ok((o.resources?.peakMemoryBytes ?? Infinity) <= MEM, show(o));
    assert.deepEqual(processesOf(sb.uids), [], 'processes of the test left');
    assert.deepEqual(testGroupsLeft(sb), [], 'the test group was not removed');
    const next = await sb.runScript({ code: 'x = bytearray(64 << 20)\nprint(len(x))' });
    assert.equal(next.status, 'pass', show(next));
  });

  test('fork bomb: fail (ProcessLimit) at pids.max, nothing left running', async (t) => {
    if (noGroup) return t.skip(noGroup);
    // Memory enough for ~150 small interpreters, so the process count is what stops it.
    const o = await sb.runScript({
      code: 'import os\nwhile True:\n    os.fork()',
      limits: { memoryBytes: 2 * 2 ** 30 },
    });
    assert.equal(o.status, 'fail', show(o));
    assert.equal(o.errorType, 'ProcessLimit', show(o));
    assert.ok((o.resources?.pidsRefused ?? 0) >= 1, show(o));
    assert.ok(await waitFor(() => processesOf(sb.uids).length === 0, 5000), 'strays left');
    assert.deepEqual(testGroupsLeft(sb), []);
  });

  test('a daemon in its own session and process group still dies with the test’s group', async (t) => {
    if (noGroup) return t.skip(noGroup);
    const marker = `rl4qe-cg-daemon-${process.pid}`;
    const o = await sb.runScript({
      code: [
        'import os, sys, time',
        'r, w = os.pipe()',
        'if os.fork() == 0:',
        '    os.setsid()',
        '    if os.fork() == 0:',
        '        os.write(w, b"up")',
        `        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)", "${marker}"])`,
        '    os._exit(0)',
        'assert os.read(r, 2) == b"up"',
        'time.sleep(0.2)',
      ].join('\n'),
    });
    assert.equal(o.status, 'pass', show(o));
    assert.equal(o.resources?.cgroup, sb.cgroups.version, show(o));
    assert.deepEqual(processesOf(sb.uids), []);
    assert.deepEqual(testGroupsLeft(sb), []);
  });

  test('dispose removes the workers’ groups', async (t) => {
    if (noGroup) return t.skip(noGroup);
    const s2 = new Sandbox({ python: 'python3', preload: false, concurrency: 2 });
    const dirs = s2.cgroupDirs;
    assert.equal(dirs.length, sb.cgroups.version === 'v1' ? 4 : 2);
    const o = await s2.runScript({ code: 'print(1)' });
    assert.equal(o.status, 'pass', show(o));
    await s2.dispose();
    assert.deepEqual(
      dirs.filter((d) => existsSync(d)),
      [],
    );
  });
});

describe('the scratch space bounds files and bytes', () => {
  let sb: Sandbox;
  let unbounded: string | undefined;

  before(async () => {
    sb = new Sandbox({
      python: 'python3',
      preload: false,
      concurrency: 1,
      diskBytes: 64 * 2 ** 20,
      diskFiles: 2048,
      limits: { wallSeconds: 30, outputBytes: 2 ** 30 },
    });
    const r = await sb.ready();
    assert.ok(r.ok, r.error);
    if (r.info?.filesBounded !== true)
      unbounded =
        sb.isolation.mode !== 'bwrap'
          ? `isolation ${sb.isolation.mode}: the run folder is on the host disk`
          : `the worker could not mount a tmpfs with an inode count: ${sb.notes.join('; ')}`;
  });

  after(async () => {
    await sb.dispose();
  });

  test('an inode fill: crash (FileCountLimit); the next test finds nothing and has room', async (t) => {
    if (unbounded) return t.skip(unbounded);
    const o = await sb.runScript({
      code: "for i in range(10**6):\n    open('f%d' % i, 'w').close()",
    });
    assert.equal(o.status, 'crash', show(o));
    assert.equal(o.errorType, 'FileCountLimit', show(o));
    const tmp = await sb.runScript({
      code: "import os\nos.mkdir('/tmp/d')\nfor i in range(10**6):\n    open('/tmp/d/f%d' % i, 'w').close()",
    });
    assert.equal(tmp.status, 'crash', show(tmp));
    assert.equal(tmp.errorType, 'FileCountLimit', show(tmp));
    const next = await sb.runScript({
      code: [
        'import os',
        "left = os.listdir('.') + os.listdir('/tmp') + os.listdir('/var/tmp')",
        'assert left == [], left',
        'for i in range(1000):',
        "    open('g%d' % i, 'w').close()",
      ].join('\n'),
    });
    assert.equal(next.status, 'pass', show(next));
  });

  test('a byte fill in 15 MiB files: crash (DiskLimit); the next test has room', async (t) => {
    if (unbounded) return t.skip(unbounded);
    const o = await sb.runScript({
      code: "for i in range(70):\n    with open('f%d' % i, 'wb') as f:\n        f.write(b'x' * (15 << 20))",
    });
    assert.equal(o.status, 'crash', show(o));
    assert.equal(o.errorType, 'DiskLimit', show(o));
    const next = await sb.runScript({
      code: "import os\nassert os.listdir('.') == []\nopen('g', 'wb').write(b'x' * (40 << 20))",
    });
    assert.equal(next.status, 'pass', show(next));
  });
});

describe('without cgroups the fallback is said, never silent', () => {
  test('cgroups turned off: the notes say limits are per process only', async () => {
    await using sb = new Sandbox({
      python: 'python3',
      preload: false,
      concurrency: 1,
      cgroups: false,
    });
    assert.equal(sb.cgroups.version, 'none');
    assert.ok(
      sb.notes.some((n) => /per process only/.test(n)),
      JSON.stringify(sb.notes),
    );
    const o = await sb.runScript({ code: 'print(1)' });
    assert.equal(o.status, 'pass', show(o));
    assert.equal(o.resources, undefined);
  });

  test('detection: no hierarchy, or a v2 one without memory and pids, is "none" with the reason', () => {
    const none = detectCgroups({ procCgroup: '0::/\n', mountinfo: '' });
    assert.equal(none.version, 'none');
    assert.match(none.reason, /no writable cgroup.*per process only/);
    // A v2 tree that offers only hugetlb (as this kind of machine's unified mount does).
    const root = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-fake-cg-'));
    try {
      mkdirSync(path.join(root, 'job'));
      writeFileSync(path.join(root, 'job', 'cgroup.controllers'), 'hugetlb\n');
      const mi = `41 31 0:38 / ${root} rw,relatime - cgroup2 cgroup2 rw\n`;
      const v2 = detectCgroups({ procCgroup: '0::/job\n', mountinfo: mi });
      assert.equal(v2.version, 'none');
      assert.match(v2.reason, /v2 \(.*job\): controller\(s\) memory, pids not available/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('cleanup never blocks the event loop', () => {
  test("a dead sandbox's scratch folder with thousands of files is removed in the background", async () => {
    const tmp = privateTmp();
    const stale = path.join(tmp, 'rl4qe-sbx-999999999-many');
    mkdirSync(stale);
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(stale, `f${i}`), 'x');
    const sb = new Sandbox({ python: 'python3', preload: false, concurrency: 1, tmpDir: tmp });
    // Had the constructor removed it synchronously, it would be gone already.
    assert.ok(existsSync(stale), 'removed synchronously in the constructor');
    assert.ok(await waitFor(() => !existsSync(stale), 10_000), 'never removed');
    await sb.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });
});
