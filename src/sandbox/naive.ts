// The usual harness, for comparison (`rl4qe ds1000 verify --naive`, `rl4qe bench sandbox`): each
// test is a fresh `python` process running DS-1000's test program from a file in a fresh temporary
// folder, with a wall-clock timeout and nothing else. It pays the imports on every test.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { OutcomeStatus, SandboxOutcome } from './outcome.js';

/**
 * DS-1000's test program as its harness writes it, except that leaving early is a failure: a
 * solution's `sys.exit(0)`, `exit()`, `quit()` or `raise SystemExit` would otherwise end the
 * program with status 0, a pass (issue 11; upstream human-eval treats them as failures too).
 * `code = repr(solution)` there; a JSON string literal is also a valid Python string literal with
 * the same value (JSON.stringify escapes only quotes, backslashes, control characters and lone
 * surrogates, all as Python reads them).
 */
export function ds1000Program(codeContext: string, solution: string): string {
  return (
    codeContext +
    '\n' +
    `code = ${JSON.stringify(solution)}\n` +
    'try:\n' +
    '    test_execution(code)\n' +
    (codeContext.includes('test_string(') ? '    test_string(code)\n' : '') +
    'except SystemExit:\n' +
    '    import os as _os, sys as _sys, traceback as _tb\n' +
    "    print('the solution called sys.exit()/exit()/quit(): a failure, not a pass', file=_sys.stderr)\n" +
    '    _tb.print_exc()\n' +
    '    _sys.stderr.flush()\n' +
    '    _os._exit(1)\n'
  );
}

const MEMORY_MARKERS = [
  "can't allocate memory",
  'out of memory',
  'cannot allocate memory',
  'bad_alloc',
  'oom when allocating',
  'unable to allocate',
];

/** Classifies a finished Python process from its exit and its stderr (the last traceback line). */
export function classifyExit(opts: {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
}): { status: OutcomeStatus; errorType?: string } {
  if (opts.timedOut) return { status: 'timeout', errorType: 'WallTimeout' };
  if (opts.code === 0) return { status: 'pass' };
  const lines = opts.stderr.trimEnd().split('\n');
  const tbAt = lines.lastIndexOf('Traceback (most recent call last):');
  let errorType: string | undefined;
  if (tbAt >= 0) {
    for (let i = lines.length - 1; i > tbAt; i--) {
      const m = /^([A-Za-z_][\w.]*)(:|$)/.exec(lines[i] ?? '');
      if (m && !(lines[i] ?? '').startsWith(' ')) {
        errorType = (m[1] as string).split('.').pop();
        break;
      }
    }
  }
  const low = opts.stderr.toLowerCase();
  if (errorType !== undefined) {
    if (/^(SyntaxError|IndentationError|TabError)$/.test(errorType))
      return { status: 'syntax_error', errorType };
    if (errorType === 'MemoryError' || MEMORY_MARKERS.some((m) => low.includes(m)))
      return { status: 'memory', errorType };
    return { status: 'fail', errorType };
  }
  if (opts.signal) return { status: 'crash', errorType: opts.signal };
  return { status: 'crash', errorType: `Exit${opts.code}` };
}

export interface NaiveOptions {
  python: string;
  wallSeconds?: number;
}

/** Runs one DS-1000 test the usual way. Never throws. */
export function runNaiveDs1000(
  t: { codeContext: string; solution: string },
  opts: NaiveOptions,
): Promise<SandboxOutcome> {
  const wall = opts.wallSeconds ?? 60;
  const t0 = performance.now();
  let dir: string;
  try {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-naive-'));
    writeFileSync(path.join(dir, 'program.py'), ds1000Program(t.codeContext, t.solution));
  } catch (e) {
    return Promise.resolve({
      status: 'sandbox_error',
      seconds: 0,
      stderrTail: String(e),
      errorType: 'SandboxError',
    });
  }
  return new Promise<SandboxOutcome>((resolve) => {
    let stderr = '';
    let timedOut = false;
    const child = spawn(opts.python, ['program.py'], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        MPLBACKEND: 'Agg',
        TF_CPP_MIN_LOG_LEVEL: '3',
        OMP_NUM_THREADS: '1',
        MKL_NUM_THREADS: '1',
        OPENBLAS_NUM_THREADS: '1',
        // The offline seaborn datasets of the exec venv (written by setup-exec), as the pool uses.
        SEABORN_DATA: path.join(path.dirname(path.dirname(opts.python)), 'share', 'seaborn-data'),
      },
    });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, wall * 1000);
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-8192);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
      clearTimeout(timer);
      killGroup();
      rmSync(dir, { recursive: true, force: true });
      const seconds = (performance.now() - t0) / 1000;
      if (err) {
        resolve({ status: 'sandbox_error', seconds, stderrTail: err.message });
        return;
      }
      const c = classifyExit({ code, signal, stderr, timedOut });
      const out: SandboxOutcome = { status: c.status, seconds, stderrTail: stderr.slice(-4096) };
      if (c.errorType !== undefined) out.errorType = c.errorType;
      resolve(out);
    };
    child.on('error', (e) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
