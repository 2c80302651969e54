// rl4qe bench eval: problems/s of a whole paired evaluation (refiner, generator, text rewards and
// the sandbox) on the local engine with the offline test models, and where the time goes. The
// same evaluation runs pipelined (the default: generation in chunks, each chunk's tests in the
// sandbox while later chunks and arms are refined and generated, the sandbox starting with the
// run) and sequential (every stage waits for the one before; the sandbox starts at the first
// test), alternating, in the same process: ratio `sequential` = median sequential seconds /
// median pipelined seconds. Both must give the same samples; mismatches are reported.
//
// Full: SmolLM2-135M refiner, Qwen2.5-Coder-0.5B generator (both quantised GGUF, as `rl4qe
// demo`), 8 DS-1000 test problems, arms original, untrained and prompt search (5 instructions on
// 2 training problems), 96 code tokens, execution on, no cache, 3 runs of each schedule.
// --quick: SmolLM2 as refiner and generator, 3 problems, original and untrained, 1 run each.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  evaluate,
  type EvalOptions,
  type EvalResult,
  type EvalSchedule,
} from '../../eval/index.js';
import { STAGES, type StageTimes } from '../../eval/stages.js';
import { nativeStatus } from '../../backend/index.js';
import { execVenvPython } from '../../sandbox/index.js';
import { machineInfo, median, type BenchReport } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import { cachePaths } from '../../util/paths.js';
import type { BenchOptions } from './index.js';

const REFINER = 'smollm2-135m-instruct-q4_1.gguf';
const GENERATOR = 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf';

interface Workload {
  refiner: string;
  generator: string;
  problems: number;
  arms: EvalOptions['arms'];
  searchSize: number;
  codeTokens: number;
  rewriteTokens: number;
  runs: number;
}

function workload(quick: boolean): Workload {
  const models = cachePaths.testModels();
  return quick
    ? {
        refiner: path.join(models, REFINER),
        generator: path.join(models, REFINER),
        problems: 3,
        arms: [{ kind: 'original' }, { kind: 'untrained' }],
        searchSize: 1,
        codeTokens: 24,
        rewriteTokens: 16,
        runs: 1,
      }
    : {
        refiner: path.join(models, REFINER),
        generator: path.join(models, GENERATOR),
        problems: 8,
        arms: [{ kind: 'original' }, { kind: 'untrained' }, { kind: 'prompt-search' }],
        searchSize: 2,
        codeTokens: 96,
        rewriteTokens: 48,
        runs: 3,
      };
}

function options(w: Workload, schedule: EvalSchedule, limit = w.problems): EvalOptions {
  return {
    dataset: 'ds1000',
    split: 'test',
    limit,
    refiner: { model: w.refiner, weights: 'quantized', maxTokens: w.rewriteTokens },
    generator: { backend: 'local', model: w.generator, weights: 'quantized' },
    arms: w.arms,
    searchSize: w.searchSize,
    maxTokens: w.codeTokens,
    exec: 'on',
    // Every run calls the models: a cached re-run would measure SQLite.
    cache: false,
    bootstrapResamples: 200,
    schedule,
  };
}

/** What must not depend on the schedule: every sample's text, code, scores and outcome. */
function fingerprint(r: EvalResult): string[] {
  const all = [...(r.promptSearch?.samples ?? []), ...r.samples];
  return all.map((s) =>
    JSON.stringify([s.arm, s.task, s.k, s.rewrite, s.output, s.code, s.components, s.outcome]),
  );
}

const loadavg = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);

export async function benchEval(opts: BenchOptions): Promise<BenchReport> {
  const w = workload(opts.quick);
  for (const m of [w.refiner, w.generator])
    if (!existsSync(m))
      throw new NotFoundError('a test model is missing', {
        where: m,
        hint: 'node scripts/fetch-test-models.mjs',
      });
  if (execVenvPython() === undefined)
    throw new NotFoundError('the sandbox venv is missing: the benchmark runs the tests', {
      where: 'exec venv',
      hint: 'rl4qe setup-exec',
    });
  const loadStart = loadavg();
  opts.log(
    `eval bench: ${w.problems} DS-1000 problems, arms ${w.arms!.map((a) => a.kind).join(', ')}, ` +
      `refiner ${path.basename(w.refiner)}, generator ${path.basename(w.generator)}, ` +
      `${w.runs} run(s) per schedule; load ${loadStart.join(' ')}`,
  );
  // Warm-up (untimed): model files in the page cache, the sandbox's Python imports compiled.
  await evaluate({
    ...options(w, 'pipelined', 1),
    arms: [{ kind: 'original' }, { kind: 'untrained' }],
  });

  const seconds: Record<EvalSchedule, number[]> = { pipelined: [], sequential: [] };
  const stages: Record<EvalSchedule, StageTimes[]> = { pipelined: [], sequential: [] };
  const starts: number[] = [];
  let samplesPerRun = 0;
  let reference: string[] | undefined;
  const mismatches: { run: number; schedule: EvalSchedule; sample: number }[] = [];
  for (let i = 0; i < w.runs; i++) {
    // Alternating order, so a change in the machine's load hits both schedules alike.
    const order: EvalSchedule[] =
      i % 2 === 0 ? ['sequential', 'pipelined'] : ['pipelined', 'sequential'];
    for (const schedule of order) {
      const t0 = performance.now();
      const r = await evaluate(options(w, schedule));
      const s = (performance.now() - t0) / 1000;
      seconds[schedule].push(s);
      stages[schedule].push(r.timings.stages);
      if (r.timings.sandboxStartSeconds !== null) starts.push(r.timings.sandboxStartSeconds);
      const fp = fingerprint(r);
      samplesPerRun = fp.length;
      if (!reference) reference = fp;
      else
        fp.forEach((x, j) => {
          if (x !== reference![j]) mismatches.push({ run: i + 1, schedule, sample: j });
        });
      const st = r.timings.stages;
      opts.log(
        `run ${i + 1}/${w.runs} ${schedule}: ${s.toFixed(1)} s (refine ${st.refine.toFixed(1)}, ` +
          `generate ${st.generate.toFixed(1)}, rewards ${st.rewards.toFixed(2)}, sandbox ` +
          `${st.sandbox.toFixed(1)} s busy); load ${loadavg().join(' ')}`,
      );
    }
  }
  for (const m of mismatches.slice(0, 10))
    opts.log(`  MISMATCH run ${m.run} ${m.schedule}: sample ${m.sample} differs`);

  const medianStages = (xs: StageTimes[]): StageTimes =>
    Object.fromEntries(STAGES.map((k) => [k, median(xs.map((x) => x[k]))])) as StageTimes;
  const share = (st: StageTimes, wall: number): Record<string, number> => ({
    ...Object.fromEntries(STAGES.map((k) => [k, st[k] / wall])),
    other: Math.max(0, 1 - STAGES.reduce((a, k) => a + st[k], 0) / wall),
  });
  const seq = median(seconds.sequential);
  const pipe = median(seconds.pipelined);
  const seqStages = medianStages(stages.sequential);
  const pipeStages = medianStages(stages.pipelined);
  const common = {
    problems: w.problems,
    arms: w.arms!.map((a) => a.kind),
    samplesPerRun,
    codeTokens: w.codeTokens,
    rewriteTokens: w.rewriteTokens,
    runs: w.runs,
  };
  return {
    bench: 'eval',
    machine: machineInfo({
      refiner: path.basename(w.refiner),
      generator: path.basename(w.generator),
      // The reference backend (native addon missing) would time plain TS loops.
      backend: nativeStatus().backend ? `native ${nativeStatus().kernel}` : 'reference',
      threads: nativeStatus().threads,
      loadavgStart: loadStart,
      loadavgEnd: loadavg(),
    }),
    cases: [
      {
        case: opts.quick ? 'pipelined-quick' : 'pipelined',
        value: w.problems / pipe,
        unit: 'problems/s',
        ratios: { sequential: seq / pipe },
        extra: {
          ...common,
          seconds: seconds.pipelined,
          // Busy fractions of the wall time; they overlap, so they may add up to more than 1.
          stageSeconds: pipeStages,
          stageBusyShare: share(pipeStages, pipe),
          sandboxStartSeconds: starts.length > 0 ? median(starts) : null,
          identicalToSequential: mismatches.length === 0,
          mismatches: mismatches.length,
        },
      },
      {
        case: opts.quick ? 'sequential-quick' : 'sequential',
        value: w.problems / seq,
        unit: 'problems/s',
        ratios: {},
        extra: {
          ...common,
          seconds: seconds.sequential,
          stageSeconds: seqStages,
          // The stages do not overlap here: each one's share of the whole, the rest is loading
          // data, tokenizers and the statistics.
          stageShare: share(seqStages, seq),
        },
      },
    ],
  };
}
