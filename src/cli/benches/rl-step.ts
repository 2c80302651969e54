// rl4qe bench rl-step: seconds per whole RL step (sample K rewrites per query, reward, score with
// gradients, backward, AdamW) of rl4qe's trainer against TRL 1.16's GRPOTrainer on CPU in the same
// run: PEFT LoRA r=8 (α 32, dropout 0) on q,k,v,o, beta 0, 2 queries × K 4, temperature 0.7,
// top-p 0.9, exactly 128 completion tokens, prompts ≤ 512 tokens, a reward of the rewrite alone
// (its length), on SmolLM2-135M and Qwen2.5-Coder-0.5B from the same GGUF test models.
// The TRL side is scripts/bench_rl_step_trl.py (oracle venv, a child process per model: its peak
// RSS is its own). Ratio `trl` = TRL seconds/step ÷ rl4qe seconds/step (> 1: rl4qe is faster),
// `rss` = rl4qe peak RSS / TRL's (lower is better).
// The /bf16 cases (issue 13): refiner.compute bf16 on the float32 load (AVX512-BF16 here; fp32
// with a one-line note on a CPU without a unit) against our fp32 step (ratio fp32 = our fp32
// s/step ÷ our bf16 s/step, the tokens/s ratio: both sides run the same tokens) and TRL with
// bf16=True, i.e. torch.autocast('cpu', bfloat16) (ratio pytorch-bf16 = its s/step ÷ ours).
// Environment: RL4QE_BENCH_MODELS (ids, comma-separated), RL4QE_BENCH_RUNS (timed steps, default
// 3), RL4QE_BENCH_TRL_CHECKPOINTING=0 runs TRL without its default gradient checkpointing,
// RL4QE_BENCH_COMPUTE=fp32|bf16 (only those cases).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo } from '../../tensor/index.js';
import { cachePaths } from '../../util/paths.js';
import { machineInfo, type BenchCase, type BenchReport } from '../../util/bench.js';
import type { BenchOptions } from './index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../../..');

const MODELS = [
  { id: 'smollm2-135m', file: 'smollm2-135m-instruct-q4_1.gguf' },
  { id: 'qwen2.5-coder-0.5b', file: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf' },
];

/** The step both sides run. */
export interface RlStepShape {
  prompts: number;
  k: number;
  /** Prompt tokens, at most. */
  promptLen: number;
  /** Completion tokens, exactly. */
  completionLen: number;
  /** Timed steps after one warm-up step. */
  steps: number;
  threads: number;
}

export interface RlStepResult {
  secondsPerStep: number;
  stepsS: number[];
  peakRssMb: number;
  extra?: Record<string, unknown>;
}

interface TrlResult extends RlStepResult {
  warmupS: number;
  loadS: number;
  promptTokens: number[];
  gradientCheckpointing: boolean;
  trl: string;
  torch: string;
}

function runTrl(model: string, s: RlStepShape, bf16 = false): TrlResult | string {
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  if (!existsSync(py)) return `TRL side skipped: no oracle venv at ${py}`;
  const script = path.join(ROOT, 'scripts', 'bench_rl_step_trl.py');
  const args = [
    script,
    '--model',
    model,
    '--steps',
    String(s.steps),
    '--prompts',
    String(s.prompts),
    '--k',
    String(s.k),
    '--prompt',
    String(s.promptLen),
    '--new',
    String(s.completionLen),
    '--threads',
    String(s.threads),
    ...(process.env.RL4QE_BENCH_TRL_CHECKPOINTING === '0' ? ['--no-gradient-checkpointing'] : []),
    ...(bf16 ? ['--bf16'] : []),
  ];
  const r = spawnSync(py, args, { encoding: 'utf8', timeout: 7_200_000, maxBuffer: 1 << 26 });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0] ?? '';
    return `TRL side failed: ${path.basename(script)} (${why})`;
  }
  return JSON.parse(last) as TrlResult;
}

/**
 * The rl4qe side: the same step through the trainer (rl-step-worker.ts), in a child process so
 * that its peak RSS is its own. `weights` float32 is TRL's arithmetic (the GGUF dequantised);
 * quantized keeps the file's blocks (LoRA on the frozen blocks, as the trainer defaults to).
 */
function runRl4qe(
  model: string,
  s: RlStepShape,
  weights: 'float32' | 'quantized',
  compute: 'fp32' | 'bf16' = 'fp32',
): RlStepResult | string {
  const worker = path.join(HERE, 'rl-step-worker.js');
  const args = [worker, model, String(s.steps), String(s.prompts), String(s.k)];
  args.push(String(s.promptLen), String(s.completionLen), weights, compute);
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8',
    timeout: 7_200_000,
    maxBuffer: 1 << 26,
    env: { ...process.env, RL4QE_THREADS: String(s.threads) },
  });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0] ?? '';
    return `rl4qe side failed: rl-step-worker (${why})`;
  }
  return JSON.parse(last) as RlStepResult;
}

export async function benchRlStep(opts: BenchOptions): Promise<BenchReport> {
  const info = backendInfo();
  const threads = info.nativeAvailable ? info.threads : 1;
  const shape: RlStepShape = opts.quick
    ? { prompts: 2, k: 4, promptLen: 64, completionLen: 8, steps: 1, threads }
    : {
        prompts: 2,
        k: 4,
        promptLen: 512,
        completionLen: 128,
        steps: Number(process.env.RL4QE_BENCH_RUNS ?? 3),
        threads,
      };
  const only = process.env.RL4QE_BENCH_MODELS?.split(',').filter(Boolean);
  // RL4QE_BENCH_COMPUTE=fp32 drops the /bf16 cases; bf16 keeps them and the float32 case only.
  const computeEnv = process.env.RL4QE_BENCH_COMPUTE;
  const models = (opts.quick ? MODELS.slice(0, 1) : MODELS).filter(
    (m) => !only || only.includes(m.id),
  );
  const notes: string[] = [
    'LoRA r=8, alpha 32, dropout 0 on q,k,v,o; beta 0; temperature 0.7, top-p 0.9; reward −|len(rewrite) − 300|/300',
    'TRL: GRPOTrainer defaults except bf16=False (float32 like rl4qe) and use_cpu; gradient checkpointing as TRL defaults (on) unless RL4QE_BENCH_TRL_CHECKPOINTING=0',
  ];
  const note = (s: string): void => {
    notes.push(s);
    opts.log(`rl-step: ${s}`);
  };
  const cases: BenchCase[] = [];
  for (const m of models) {
    const file = path.join(cachePaths.testModels(), m.file);
    if (!existsSync(file)) {
      note(`${m.id} skipped: ${file} is missing (run \`node scripts/fetch-test-models.mjs\`)`);
      continue;
    }
    const id = `${m.id}/${shape.prompts}x${shape.k}/prompt${shape.promptLen}/new${shape.completionLen}`;
    opts.log(`rl-step: TRL ${m.id} (${shape.steps} timed steps after a warm-up step)`);
    // RL4QE_BENCH_COMPUTE=bf16: the fp32 TRL step is not needed for the /bf16 ratios.
    const trl =
      computeEnv === 'bf16'
        ? 'TRL fp32 side skipped (RL4QE_BENCH_COMPUTE=bf16)'
        : runTrl(file, shape);
    if (typeof trl === 'string') note(`${m.id}: ${trl}`);
    else
      opts.log(
        `rl-step: TRL ${m.id}: ${trl.secondsPerStep.toFixed(1)} s/step (${trl.stepsS.map((s) => s.toFixed(1)).join(', ')}), peak RSS ${trl.peakRssMb.toFixed(0)} MB`,
      );
    let fp32: RlStepResult | null = null;
    for (const weights of ['float32', 'quantized'] as const) {
      if (weights === 'quantized' && computeEnv === 'bf16') continue;
      opts.log(`rl-step: rl4qe ${m.id} (${weights} weights)`);
      const ours = runRl4qe(file, shape, weights);
      if (typeof ours === 'string') note(`${m.id}/${weights}: ${ours}`);
      else if (weights === 'float32') fp32 = ours;
      const trlExtra =
        typeof trl === 'string'
          ? {}
          : {
              trlSecondsPerStep: trl.secondsPerStep,
              trlStepsS: trl.stepsS,
              trlWarmupS: trl.warmupS,
              trlPeakRssMb: trl.peakRssMb,
              trlPromptTokens: trl.promptTokens,
              trlGradientCheckpointing: trl.gradientCheckpointing,
              trl: trl.trl,
              torch: trl.torch,
            };
      if (typeof ours !== 'string') {
        const ratios: Record<string, number> = {};
        if (typeof trl !== 'string') {
          ratios.trl = trl.secondsPerStep / ours.secondsPerStep;
          ratios.rss = ours.peakRssMb / trl.peakRssMb;
        }
        cases.push({
          case: weights === 'float32' ? id : `${id}/quantized`,
          value: ours.secondsPerStep,
          unit: 's/step',
          ratios,
          extra: {
            ...shape,
            stepsS: ours.stepsS,
            peakRssMb: ours.peakRssMb,
            ...ours.extra,
            ...trlExtra,
          },
        });
      } else if (typeof trl !== 'string' && weights === 'float32') {
        // TRL alone, under its own case name: no ratio without our side.
        cases.push({
          case: `${id}/trl`,
          value: trl.secondsPerStep,
          unit: 's/step',
          ratios: {},
          extra: { ...shape, ...trlExtra },
        });
      }
    }
    if (computeEnv !== 'fp32')
      cases.push(...bf16RlCases({ file, id, shape, fp32, log: opts.log, note }));
  }
  return {
    bench: 'rl-step',
    machine: machineInfo({ backend: info.name, kernel: info.kernel, threads, notes }),
    cases,
  };
}

/** The /bf16 case of one model: our bf16 step against our fp32 step and TRL under bf16 autocast. */
function bf16RlCases(p: {
  file: string;
  id: string;
  shape: RlStepShape;
  fp32: RlStepResult | null;
  log: (l: string) => void;
  note: (s: string) => void;
}): BenchCase[] {
  const caseId = `${p.id}/bf16`;
  p.log(`rl-step: TRL ${p.id} with bf16=True (torch.autocast bf16)`);
  const trl = runTrl(p.file, p.shape, true);
  if (typeof trl === 'string') p.note(`${caseId}: ${trl}`);
  else p.log(`rl-step: TRL bf16 ${p.id}: ${trl.secondsPerStep.toFixed(1)} s/step`);
  p.log(`rl-step: rl4qe ${p.id} (float32 weights, bf16 compute)`);
  const ours = runRl4qe(p.file, p.shape, 'float32', 'bf16');
  if (typeof ours === 'string') {
    p.note(`${caseId}: ${ours}`);
    return [];
  }
  const compute = ours.extra?.compute as { used?: string; note?: string } | undefined;
  if (compute?.note) p.note(`${caseId}: ${compute.note}`);
  const ratios: Record<string, number> = {};
  if (p.fp32) ratios.fp32 = p.fp32.secondsPerStep / ours.secondsPerStep;
  if (typeof trl !== 'string') {
    ratios['pytorch-bf16'] = trl.secondsPerStep / ours.secondsPerStep;
    ratios.rss = ours.peakRssMb / trl.peakRssMb;
  }
  return [
    {
      case: caseId,
      value: ours.secondsPerStep,
      unit: 's/step',
      ratios,
      extra: {
        ...p.shape,
        stepsS: ours.stepsS,
        peakRssMb: ours.peakRssMb,
        ...ours.extra,
        fp32SecondsPerStep: p.fp32?.secondsPerStep,
        fp32Extra: p.fp32?.extra,
        targets: { fp32: '≥ 1.8 (where AMX exists)', 'pytorch-bf16': '≥ 1.5' },
        ...(typeof trl === 'string'
          ? {}
          : {
              trlBf16SecondsPerStep: trl.secondsPerStep,
              trlBf16StepsS: trl.stepsS,
              trlBf16PeakRssMb: trl.peakRssMb,
              trlGradientCheckpointing: trl.gradientCheckpointing,
              trl: trl.trl,
              torch: trl.torch,
            }),
      },
    },
  ];
}
