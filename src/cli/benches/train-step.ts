// rl4qe bench train-step: the refiner's training step — forward + backward tokens/s with LoRA
// r=8 (α 32, dropout 0 so that both sides compute the same thing) on q,k,v,o of SmolLM2-135M and
// Qwen2.5-Coder-0.5B from their GGUF test models, rl4qe in both weight modes (float32 and the
// GGUF blocks kept, /quantized), batch P prompts × K completions of 512 prompt + 128 sampled
// tokens, loss = −Σ_i adv_i Σ_t log π(token_i,t) over the 128 completion positions only (fixed
// advantages), backward to the LoRA parameters. Ratios measured in the same run:
//   pytorch: ours tokens/s / PyTorch CPU + PEFT tokens/s doing the identical computation on the
//            same GGUF (scripts/bench_train_step_torch.py in the oracle venv, same threads);
//   mfu:     achieved model FLOP/s / the FMA peak measured beside the timed steps (see stepFlops);
//   rss:     our peak RSS / PyTorch's peak RSS (both include the model load; the one ratio here
//            where LOWER is better: target ≤ 0.5);
//   separate (the /groups case only): time of the separate-sequence case / time of the same
//            sequences scored as K-completion groups sharing their prompt (scoreGroups).
// Each rl4qe case and each PyTorch model runs in its own child process, one after another (a
// PyTorch step at batch 8 × 640 peaks ≈ 13 GB), so peak RSS and timings never mix.
// The /bf16 cases (issue 13): the float32 load with its frozen projections in bf16 (refiner.compute
// bf16: AVX512-BF16 here; fp32 with a note on a CPU without a unit), ratios fp32 (ours bf16 / ours
// fp32, same run) and pytorch-bf16 (PyTorch under torch.autocast bf16, same step).
// Environment: RL4QE_BENCH_MODELS=smollm2-135m (ids, comma-separated), RL4QE_BENCH_WEIGHTS=
// float32|quantized, RL4QE_BENCH_COMPUTE=fp32|bf16 (only those cases), RL4QE_BENCH_RUNS (timed steps per case, default 3), RL4QE_BENCH_PROMPTS
// (prompts per batch, overrides every model's default). The workers inherit the environment, so
// RL4QE_POOL_MB (the native allocator's reuse pool, default 1024) applies to them; the report
// says which pool ran (a step allocates several GB: blocks beyond the pool are fresh mmap pages,
// paid for in page faults every step).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo } from '../../tensor/index.js';
import { cachePaths } from '../../util/paths.js';
import { machineInfo, type BenchCase, type BenchReport } from '../../util/bench.js';
import type { TrainStepJob, TrainStepResult } from './train-step-worker.js';
import type { BenchOptions } from './index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../../..');
const WORKER = path.join(HERE, 'train-step-worker.js');

/** `prompts` × K 4 sequences per batch. Qwen2.5-0.5B at 8 × 640 needs ≈ 20 GB (ours) and more
 * for PyTorch: on a 24 GiB machine its default batch is one prompt × 4 (4 × 640 tokens). */
const MODELS = [
  { id: 'smollm2-135m', file: 'smollm2-135m-instruct-q4_1.gguf', prompts: 2 },
  { id: 'qwen2.5-coder-0.5b', file: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf', prompts: 1 },
];
const K = 4;
const LORA = { r: 8, alpha: 32 };

type Weights = 'float32' | 'quantized';

/**
 * Model FLOPs of one step, the base frozen (no weight gradients for it). Per computed token:
 * forward 2·N (N = frozen parameters of the decoder's linear layers) + backward input gradients
 * 2·N through the same matmuls; LoRA 6·r·(in + out) per adapter (forward 2, input gradients 2,
 * A/B gradients 2); the LM head only at the C scored rows per sequence, 2·V·D forward + 2·V·D
 * input gradient; causal attention per layer and head 4·d per (query, visible key) pair forward
 * (QKᵀ, PV) and 8·d backward (dV, dP, dQ, dK) — 12·d·Σ visible keys. Recomputation, softmax,
 * norms and elementwise ops are not counted. With shared-prompt groups the prompt's tokens are
 * computed once per group, so its N-terms and its self-attention count once (scoreGroups).
 */
export function stepFlops(job: TrainStepJob, r: TrainStepResult): number {
  const c = r.config;
  const P = job.prompts;
  const B = P * job.completionsPerPrompt;
  const [PL, C] = [job.promptLen, job.completionLen];
  const T = PL + C;
  const causal = (n: number): number => (n * (n + 1)) / 2; // Σ visible keys of n causal queries
  const tokens = job.mode === 'groups' ? P * PL + B * C : B * T;
  const pairs = job.mode === 'groups' ? P * causal(PL) + B * (C * PL + causal(C)) : B * causal(T);
  const linear = 4 * r.linearParams * tokens;
  const lora = 6 * job.loraR * r.loraInOut * tokens;
  const head = 4 * c.vocabSize * c.hiddenSize * B * C;
  const attn = 12 * c.headDim * c.numHeads * c.numLayers * pairs;
  return linear + lora + head + attn;
}

export const FLOPS_FORMULA =
  '4·N·tokens (N frozen linear params: forward 2N + input-grad 2N) + 6·r·Σ(in+out)·tokens (LoRA) + ' +
  '4·V·D·B·C (LM head at the scored rows) + 12·headDim·heads·layers·Σ visible keys (causal attention fwd 4d + bwd 8d); ' +
  'groups: prompt tokens once per group';

function runChild(job: TrainStepJob, log: (l: string) => void): TrainStepResult | string {
  const r = spawnSync(process.execPath, [WORKER, JSON.stringify(job)], {
    encoding: 'utf8',
    timeout: 3_600_000,
    maxBuffer: 1 << 24,
  });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-3).join(' | ');
    return `rl4qe worker failed (exit ${r.status}): ${why}`;
  }
  const res = JSON.parse(last) as TrainStepResult;
  log(
    `train-step: rl4qe ${path.basename(job.model)} ${job.weights}${job.compute === 'bf16' ? ' bf16' : ''} ${job.mode}: ${res.tokensPerS.toFixed(1)} tok/s (runs ${res.runsS.map((s) => s.toFixed(2)).join(', ')} s), peak RSS ${(res.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  return res;
}

interface TorchResult {
  median_s: number;
  runs_s: number[];
  cpu_s: number[];
  tokens_per_s: number;
  loss: number;
  peak_rss_bytes: number;
  load_s: number;
  torch: string;
  attn: string;
}

function runTorch(
  job: TrainStepJob,
  threads: number,
  autocast: 'none' | 'bf16' = 'none',
): TorchResult | string {
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  if (!existsSync(py)) return `pytorch ratio skipped: no oracle venv at ${py}`;
  const script = path.join(ROOT, 'scripts', 'bench_train_step_torch.py');
  const args = {
    '--model': job.model,
    '--prompts': job.prompts,
    '--completions': job.completionsPerPrompt,
    '--prompt': job.promptLen,
    '--new': job.completionLen,
    '--runs': job.runs,
    '--threads': threads,
    '--r': job.loraR,
    '--alpha': job.loraAlpha,
    '--autocast': autocast,
  };
  const r = spawnSync(py, [script, ...Object.entries(args).flatMap(([k, v]) => [k, String(v)])], {
    encoding: 'utf8',
    timeout: 3_600_000,
    maxBuffer: 1 << 24,
  });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0] ?? '';
    return `pytorch ratio skipped: ${path.basename(script)} failed (${why})`;
  }
  return JSON.parse(last) as TorchResult;
}

export async function benchTrainStep(opts: BenchOptions): Promise<BenchReport> {
  const info = backendInfo();
  const threads = info.nativeAvailable ? info.threads : 1;
  const runs = opts.quick ? 1 : Number(process.env.RL4QE_BENCH_RUNS ?? 3);
  const shape = opts.quick
    ? { promptLen: 32, completionLen: 8 }
    : { promptLen: 512, completionLen: 128 };
  const envWeights = process.env.RL4QE_BENCH_WEIGHTS;
  const weightModes: Weights[] =
    envWeights === 'float32' || envWeights === 'quantized'
      ? [envWeights]
      : ['float32', 'quantized'];
  const only = process.env.RL4QE_BENCH_MODELS?.split(',').filter(Boolean);
  const models = (opts.quick ? MODELS.slice(0, 1) : MODELS).filter(
    (m) => !only || only.includes(m.id),
  );
  const envPrompts = Number(process.env.RL4QE_BENCH_PROMPTS ?? NaN);
  // RL4QE_BENCH_COMPUTE=fp32 drops the /bf16 cases (bf16 alone: only the /bf16 cases and the
  // float32 cases their fp32 ratio needs).
  const envCompute = process.env.RL4QE_BENCH_COMPUTE;
  const bf16Cases = envCompute !== 'fp32';
  const fp32Only = envCompute === 'bf16';
  const notes: string[] = [
    `LoRA r=${LORA.r}, alpha ${LORA.alpha}, dropout 0, on q,k,v,o; base frozen; loss −Σ adv·Σ log π over the completion positions`,
    `mfu FLOPs: ${FLOPS_FORMULA}`,
    'rss ratio = ours / PyTorch (lower is better; target ≤ 0.5)',
    `native pool RL4QE_POOL_MB=${process.env.RL4QE_POOL_MB ?? '1024 (default)'}`,
  ];
  const note = (s: string): void => {
    notes.push(s);
    opts.log(`train-step: ${s}`);
  };
  if (!info.nativeAvailable) note(`native backend unavailable (${info.nativeReason})`);
  const cases: BenchCase[] = [];

  for (const m of models) {
    const file = path.join(cachePaths.testModels(), m.file);
    if (!existsSync(file)) {
      note(`${m.id} skipped: ${file} is missing (run \`node scripts/fetch-test-models.mjs\`)`);
      continue;
    }
    const prompts = opts.quick
      ? 1
      : Number.isInteger(envPrompts) && envPrompts > 0
        ? envPrompts
        : m.prompts;
    const base: Omit<TrainStepJob, 'weights' | 'mode'> = {
      model: file,
      prompts,
      completionsPerPrompt: opts.quick ? 2 : K,
      ...shape,
      runs,
      loraR: LORA.r,
      loraAlpha: LORA.alpha,
    };
    const B = base.prompts * base.completionsPerPrompt;
    const T = base.promptLen + base.completionLen;
    const id = `${m.id}/batch${B}x${T}`;
    opts.log(`train-step: pytorch ${m.id} batch ${B} × ${T}`);
    const torch = runTorch({ ...base, weights: 'float32', mode: 'separate' }, threads);
    if (typeof torch === 'string') note(`${m.id}: ${torch}`);
    else
      opts.log(
        `train-step: pytorch ${m.id}: ${torch.tokens_per_s.toFixed(1)} tok/s (runs ${torch.runs_s.map((s) => s.toFixed(2)).join(', ')} s), peak RSS ${(torch.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
      );
    // The float32 cases by mode, for the /bf16 cases' fp32 ratio.
    const fp32ByMode = new Map<TrainStepJob['mode'], TrainStepResult>();
    const modes: TrainStepJob['mode'][] = ['separate', 'groups'];
    for (const w of fp32Only ? (['float32'] as Weights[]) : weightModes) {
      let separate: TrainStepResult | null = null;
      for (const mode of modes) {
        const job: TrainStepJob = { ...base, weights: w, mode };
        opts.log(`train-step: rl4qe ${m.id} batch ${B} × ${T} (${w} weights, ${mode})`);
        const o = runChild(job, opts.log);
        const caseId = `${id}${mode === 'groups' ? `/groups${base.prompts}x${base.completionsPerPrompt}` : ''}${w === 'quantized' ? '/quantized' : ''}`;
        if (typeof o === 'string') {
          note(`${caseId}: ${o}`);
          continue;
        }
        if (mode === 'separate') separate = o;
        if (w === 'float32') fp32ByMode.set(mode, o);
        const flops = stepFlops(job, o);
        const ratios: Record<string, number> = {};
        const extra: Record<string, unknown> = {
          batch: B,
          promptLen: base.promptLen,
          completionLen: base.completionLen,
          weights: w,
          mode,
          runs,
          threads,
          medianS: o.medianS,
          runsS: o.runsS,
          cpuS: o.cpuS,
          loss: o.loss,
          modelGflopPerStep: flops / 1e9,
          achievedGflops: flops / o.medianS / 1e9,
          peakGflops: o.peakGflops,
          peakRssMiB: o.peakRssBytes / 2 ** 20,
          loraParams: o.loraParams,
          targets: { pytorch: '≥ 1.5', mfu: '≥ 0.5', rss: '≤ 0.5' },
        };
        if (o.peakGflops) ratios.mfu = flops / o.medianS / 1e9 / o.peakGflops;
        if (typeof torch !== 'string') {
          ratios.pytorch = o.tokensPerS / torch.tokens_per_s;
          ratios.rss = o.peakRssBytes / torch.peak_rss_bytes;
          Object.assign(extra, {
            pytorchTokensPerS: torch.tokens_per_s,
            pytorchMedianS: torch.median_s,
            pytorchRunsS: torch.runs_s,
            pytorchCpuS: torch.cpu_s,
            pytorchPeakRssMiB: torch.peak_rss_bytes / 2 ** 20,
            pytorchLoss: torch.loss,
            pytorchAttn: torch.attn,
            torch: torch.torch,
          });
          // LoRA B starts at zero on both sides: the loss is the base model's, equal up to rounding.
          if (Math.abs(torch.loss - o.loss) > 1e-3 * Math.abs(torch.loss)) {
            note(`WARNING: ${caseId}: pytorch loss ${torch.loss} differs from ours ${o.loss}`);
          }
        }
        if (mode === 'groups' && separate) {
          ratios.separate = separate.medianS / o.medianS;
          extra.separateMedianS = separate.medianS;
        }
        cases.push({ case: caseId, value: o.tokensPerS, unit: 'tokens/s', ratios, extra });
      }
    }
    if (bf16Cases) {
      cases.push(
        ...bf16TrainCases({ base, id, threads, runs, fp32ByMode, modes, log: opts.log, note }),
      );
    }
  }
  return {
    bench: 'train-step',
    machine: machineInfo({ backend: info.name, kernel: info.kernel, threads, notes }),
    cases,
  };
}

/**
 * The /bf16 cases of one model: the float32 GGUF load with its projections rounded to bf16
 * (refiner.compute bf16), in both modes. Ratios in the same run: fp32 = ours bf16 / ours fp32
 * (the float32 case of the same mode; target ≥ 1.8 where AMX exists), pytorch-bf16 = ours bf16 /
 * PyTorch CPU under torch.autocast('cpu', bfloat16) doing the same step (target ≥ 1.5).
 */
function bf16TrainCases(p: {
  base: Omit<TrainStepJob, 'weights' | 'mode'>;
  id: string;
  threads: number;
  runs: number;
  fp32ByMode: ReadonlyMap<TrainStepJob['mode'], TrainStepResult>;
  modes: readonly TrainStepJob['mode'][];
  log: (l: string) => void;
  note: (s: string) => void;
}): BenchCase[] {
  const { base, id, threads } = p;
  const B = base.prompts * base.completionsPerPrompt;
  const T = base.promptLen + base.completionLen;
  p.log(`train-step: pytorch bf16 autocast ${id}`);
  const torch = runTorch({ ...base, weights: 'float32', mode: 'separate' }, threads, 'bf16');
  if (typeof torch === 'string') p.note(`${id}/bf16: ${torch}`);
  else
    p.log(
      `train-step: pytorch bf16 autocast ${id}: ${torch.tokens_per_s.toFixed(1)} tok/s (runs ${torch.runs_s.map((s) => s.toFixed(2)).join(', ')} s)`,
    );
  const out: BenchCase[] = [];
  let noted = false;
  for (const mode of p.modes) {
    const job: TrainStepJob = { ...base, weights: 'float32', mode, compute: 'bf16' };
    p.log(`train-step: rl4qe ${id} batch ${B} × ${T} (bf16 compute, ${mode})`);
    const o = runChild(job, p.log);
    const caseId = `${id}${mode === 'groups' ? `/groups${base.prompts}x${base.completionsPerPrompt}` : ''}/bf16`;
    if (typeof o === 'string') {
      p.note(`${caseId}: ${o}`);
      continue;
    }
    if (o.computeNote && !noted) {
      // A CPU without a bf16 unit: the case ran fp32 (one line, once per model).
      p.note(`${id}: ${o.computeNote}`);
      noted = true;
    }
    const ratios: Record<string, number> = {};
    const fp32 = p.fp32ByMode.get(mode);
    if (fp32) ratios.fp32 = o.tokensPerS / fp32.tokensPerS;
    const extra: Record<string, unknown> = {
      batch: B,
      promptLen: base.promptLen,
      completionLen: base.completionLen,
      weights: 'float32',
      compute: 'bf16',
      computeUsed: o.computeUsed,
      mode,
      runs: p.runs,
      threads,
      medianS: o.medianS,
      runsS: o.runsS,
      cpuS: o.cpuS,
      loss: o.loss,
      peakRssMiB: o.peakRssBytes / 2 ** 20,
      fp32TokensPerS: fp32?.tokensPerS,
      fp32CpuS: fp32?.cpuS,
      targets: { fp32: '≥ 1.8 (where AMX exists)', 'pytorch-bf16': '≥ 1.5' },
    };
    if (typeof torch !== 'string') {
      ratios['pytorch-bf16'] = o.tokensPerS / torch.tokens_per_s;
      Object.assign(extra, {
        pytorchBf16TokensPerS: torch.tokens_per_s,
        pytorchBf16MedianS: torch.median_s,
        pytorchBf16RunsS: torch.runs_s,
        pytorchBf16CpuS: torch.cpu_s,
        pytorchBf16Loss: torch.loss,
        torch: torch.torch,
      });
      // Not the same rounding: autocast also rounds every product's OUTPUT to bf16, the logits
      // included (one bf16 step at |logit| 20 is 0.125); ours keeps fp32 outputs and an fp32
      // head. The loss sums ±advantage terms, so it cancels: measured 2026-12-08 (fp32 / ours
      // bf16 / PyTorch bf16) SmolLM2 −24.45 / −24.03 / −25.35, Qwen 3.82 / 3.51 / 2.91. Warn past
      // 30 % (a different computation, not a rounding).
      if (Math.abs(torch.loss - o.loss) > 0.3 * Math.abs(torch.loss)) {
        p.note(`WARNING: ${caseId}: pytorch bf16 loss ${torch.loss} differs from ours ${o.loss}`);
      }
    }
    out.push({ case: caseId, value: o.tokensPerS, unit: 'tokens/s', ratios, extra });
  }
  return out;
}
