// rl4qe bench sandbox: DS-1000 tests per second, warm worker pool vs the usual harness (a fresh
// python process per test), same problems, same concurrency, same run. Also checks that both
// harnesses agree on every outcome's status and reports each mismatch.
import { loadDs1000, type Ds1000Problem } from '../../data/ds1000.js';
import { machineInfo, type BenchReport } from '../../util/bench.js';
import { Sandbox } from '../../sandbox/index.js';
import os from 'node:os';
import { runReferences, type VerifyResult } from '../commands/ds1000.js';
import type { BenchOptions } from './index.js';

/** Every k-th problem, so a quick run still covers every library. */
function subset(all: readonly Ds1000Problem[], quick: boolean): Ds1000Problem[] {
  if (!quick) return [...all];
  return all.filter((_, i) => i % 20 === 0);
}

export async function benchSandbox(opts: BenchOptions): Promise<BenchReport> {
  const problems = subset(await loadDs1000(), opts.quick);
  const concurrency = os.availableParallelism();
  const wallSeconds = 60;
  opts.log(`sandbox bench: ${problems.length} DS-1000 references, concurrency ${concurrency}`);

  const t0 = performance.now();
  const sb = new Sandbox({ concurrency, limits: { wallSeconds, cpuSeconds: wallSeconds } });
  const ready = await sb.ready();
  const startupSeconds = (performance.now() - t0) / 1000;
  let pool: VerifyResult[];
  let poolSeconds: number;
  try {
    if (!ready.ok) throw new Error(ready.error);
    const t1 = performance.now();
    pool = await runReferences(problems, { naive: false, concurrency, wallSeconds, sandbox: sb });
    poolSeconds = (performance.now() - t1) / 1000;
  } finally {
    await sb.dispose();
  }
  opts.log(`  warm pool: ${poolSeconds.toFixed(1)}s (+${startupSeconds.toFixed(1)}s startup)`);

  const t2 = performance.now();
  const naive = await runReferences(problems, { naive: true, concurrency, wallSeconds });
  const naiveSeconds = (performance.now() - t2) / 1000;
  opts.log(`  naive: ${naiveSeconds.toFixed(1)}s`);

  const mismatches = pool
    .map((r, i) => ({ r, n: naive[i] as VerifyResult }))
    .filter(({ r, n }) => r.outcome.status !== n.outcome.status)
    .map(({ r, n }) => ({
      problemId: r.problemId,
      pool: `${r.outcome.status} ${r.outcome.errorType ?? ''}`.trim(),
      naive: `${n.outcome.status} ${n.outcome.errorType ?? ''}`.trim(),
    }));
  for (const m of mismatches)
    opts.log(`  MISMATCH problem ${m.problemId}: pool ${m.pool}, naive ${m.naive}`);

  const n = problems.length;
  const poolRate = n / poolSeconds;
  const poolRateWithStartup = n / (poolSeconds + startupSeconds);
  const naiveRate = n / naiveSeconds;
  const passed = (rs: VerifyResult[]): number =>
    rs.filter((r) => r.outcome.status === 'pass').length;
  return {
    bench: 'sandbox',
    machine: machineInfo({ python: sb.python, isolation: sb.isolation.mode }),
    cases: [
      {
        case: opts.quick ? 'ds1000-references-quick' : 'ds1000-references',
        value: poolRate,
        unit: 'tests/s',
        ratios: { naive: poolRate / naiveRate },
        extra: {
          tests: n,
          concurrency,
          poolSeconds,
          poolStartupSeconds: startupSeconds,
          poolRateWithStartup,
          naiveRateRatioWithStartup: poolRateWithStartup / naiveRate,
          naiveSeconds,
          naiveRate,
          poolPassed: passed(pool),
          naivePassed: passed(naive),
          mismatches,
          runs: 1,
        },
      },
    ],
  };
}
