// rl4qe ds1000 verify [--json] [--naive]: runs every DS-1000 reference solution through the
// sandbox (or, with --naive, the usual one-python-process-per-test harness) and lists failures.
import type { Command } from 'commander';
import os from 'node:os';
import { loadDs1000, type Ds1000Problem } from '../../data/ds1000.js';
import {
  Sandbox,
  execVenvPython,
  runNaiveDs1000,
  type SandboxOutcome,
} from '../../sandbox/index.js';
import { ConfigError, NotFoundError } from '../../util/errors.js';
import { addDeprecatedAliases } from '../aliases.js';
import { durationFlag, intFlag } from '../flags.js';
import { cliProgress } from '../progress.js';

export interface VerifyResult {
  problemId: number;
  library: string;
  outcome: SandboxOutcome;
}

/** Runs the given problems' reference solutions with bounded concurrency; results in input order. */
export async function runReferences(
  problems: readonly Ds1000Problem[],
  opts: {
    naive: boolean;
    concurrency: number;
    wallSeconds: number;
    sandbox?: Sandbox;
    onResult?: (r: VerifyResult, done: number) => void;
  },
): Promise<VerifyResult[]> {
  const python = execVenvPython();
  if (!python) {
    throw new NotFoundError('the DS-1000 execution venv is missing', {
      where: 'rl4qe ds1000 verify',
      hint: 'run `rl4qe setup-exec` (or `bash scripts/setup-exec.sh`) first',
    });
  }
  const own = !opts.naive && !opts.sandbox;
  const sb = opts.naive
    ? undefined
    : (opts.sandbox ??
      new Sandbox({
        concurrency: opts.concurrency,
        limits: { wallSeconds: opts.wallSeconds, cpuSeconds: opts.wallSeconds },
      }));
  const results: VerifyResult[] = new Array<VerifyResult>(problems.length);
  let next = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= problems.length) return;
      const p = problems[i] as Ds1000Problem;
      const t = { codeContext: p.codeContext, solution: p.referenceCode };
      const outcome = sb
        ? await sb.runDs1000(t)
        : await runNaiveDs1000(t, { python, wallSeconds: opts.wallSeconds });
      const r = { problemId: p.metadata.problemId, library: p.metadata.library, outcome };
      results[i] = r;
      done++;
      opts.onResult?.(r, done);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, () => lane()));
  } finally {
    if (own) await sb?.dispose();
  }
  return results;
}

/** The last line of the traceback (or the status) as a one-line reason. */
export function failureReason(o: SandboxOutcome): string {
  const lines = o.stderrTail.trimEnd().split('\n');
  const last = lines[lines.length - 1] ?? '';
  return `${o.status}${o.errorType ? ` ${o.errorType}` : ''}: ${last.slice(0, 200)}`;
}

export function registerDs1000(program: Command): void {
  const ds = program.command('ds1000').description('DS-1000 utilities');
  const verify = ds
    .command('verify')
    .description(
      'run all 1,000 DS-1000 reference solutions through the sandbox (target ≥ 99% pass)',
    )
    .option('--json', 'end stdout with one JSON line {total, passed, failures, ...}')
    .option('--naive', 'run each test as a fresh python process (the usual harness)')
    .option('--data-path <file>', 'a DS-1000 .jsonl or .jsonl.gz file (default: shared data)')
    .option('--limit <n>', 'only the first n problems')
    .option('--concurrency <n>', 'parallel tests (default: cores)')
    .option('--timeout <duration>', 'wall time per test, e.g. 60s, 2m (bare: seconds)', '60s');
  verify.action(
    async (opts: {
      json?: boolean;
      naive?: boolean;
      dataPath?: string;
      limit?: string;
      concurrency?: string;
      timeout: string;
    }) => {
      const limit = intFlag('--limit', opts.limit, 1);
      const timeoutMs = durationFlag('--timeout', opts.timeout)!;
      if (!(timeoutMs > 0))
        throw new ConfigError('--timeout must be longer than 0', {
          where: '--timeout',
          found: opts.timeout,
        });
      const progress = cliProgress('ds1000 verify', { json: opts.json });
      let problems = await loadDs1000(opts.dataPath ? { path: opts.dataPath } : {});
      if (limit !== undefined) problems = problems.slice(0, limit);
      const concurrency =
        intFlag('--concurrency', opts.concurrency, 1) ?? os.availableParallelism();
      const t0 = performance.now();
      const results = await runReferences(problems, {
        naive: opts.naive === true,
        concurrency,
        wallSeconds: timeoutMs / 1000,
        onResult: (r, done) => {
          if (r.outcome.status !== 'pass')
            progress(`problem ${r.problemId} (${r.library}): ${failureReason(r.outcome)}`, {
              problemId: r.problemId,
              status: r.outcome.status,
            });
          if (done % 100 === 0)
            progress(`${done}/${problems.length}`, { done, total: problems.length });
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      const failures = results
        .filter((r) => r.outcome.status !== 'pass')
        .map((r) => ({
          problemId: r.problemId,
          library: r.library,
          status: r.outcome.status,
          errorType: r.outcome.errorType ?? null,
          reason: failureReason(r.outcome),
        }));
      const byStatus: Record<string, number> = {};
      for (const r of results) byStatus[r.outcome.status] = (byStatus[r.outcome.status] ?? 0) + 1;
      const summary = {
        harness: opts.naive ? 'naive' : 'sandbox',
        total: results.length,
        passed: byStatus.pass ?? 0,
        passRate: results.length ? (byStatus.pass ?? 0) / results.length : 0,
        byStatus,
        seconds: Math.round(seconds * 100) / 100,
        testsPerSecond: Math.round((results.length / seconds) * 100) / 100,
        concurrency,
        failures,
      };
      if (opts.json) {
        process.stdout.write(JSON.stringify(summary) + '\n');
        return;
      }
      process.stdout.write(
        `${summary.harness}: ${summary.passed}/${summary.total} passed ` +
          `(${(summary.passRate * 100).toFixed(1)}%) in ${summary.seconds}s, ` +
          `${summary.testsPerSecond} tests/s\n`,
      );
      for (const f of failures)
        process.stdout.write(`  problem ${f.problemId} (${f.library}): ${f.reason}\n`);
    },
  );
  addDeprecatedAliases(verify, [
    { flags: '--data <path>', use: '--data-path <file>', to: (v) => ({ dataPath: v }) },
  ]);
}
