// Child process of `rl4qe bench train-step` (src/cli/benches/train-step.ts): one model, one weight
// mode, one case per process, so that peak RSS (process.resourceUsage().maxRSS) belongs to that
// case alone.
//   node dist/src/cli/benches/train-step-worker.js '{"model":…,"weights":"float32","batch":8,…}'
// Prints one JSON line (TrainStepResult) on stdout; progress and errors go to stderr.
//
// One timed step: zero the LoRA gradients, score the batch with gradients (scoreTokens, or
// scoreGroups for the shared-prompt case), loss = −Σ_i adv_i Σ_t log π(token_i,t) over the
// completion positions only, backward. LoRA r, α on q,k,v,o, dropout 0 (no randomness, the same
// computation as the PyTorch side).
import { pathToFileURL } from 'node:url';
import { applyCompute, loadGgufModel } from '../../models/index.js';
import { addLora, loraParameters } from '../../models/model.js';
import { scoreGroups, scoreTokens, type ScoreSequence } from '../../sampling/score.js';
import { backendInfo, mul, neg, sum, tensor } from '../../tensor/index.js';
import { loadNative } from '../../backend/native/index.js';
import { median } from '../../util/bench.js';
import { Rng } from '../../util/rng.js';

export interface TrainStepJob {
  model: string;
  weights: 'float32' | 'quantized';
  /** Distinct prompts; every prompt gets `completionsPerPrompt` completions. */
  prompts: number;
  completionsPerPrompt: number;
  promptLen: number;
  completionLen: number;
  /** 'separate': scoreTokens over prompts·K independent sequences; 'groups': scoreGroups. */
  mode: 'separate' | 'groups';
  runs: number;
  loraR: number;
  loraAlpha: number;
  /** The frozen products' compute mode (models/compute.ts; default fp32). */
  compute?: 'fp32' | 'bf16';
}

export interface TrainStepResult {
  /** The compute mode that ran ('fp32' when bf16 was asked for and fell back), and why not. */
  computeUsed: 'fp32' | 'bf16';
  computeNote: string;
  /** Median wall time of one step (forward + loss + backward), seconds. */
  medianS: number;
  runsS: number[];
  /** Process CPU seconds (all threads) of each timed step: less sensitive to other load. */
  cpuS: number[];
  /** Scored sequences × (prompt + completion) tokens / medianS. */
  tokensPerS: number;
  loss: number;
  peakRssBytes: number;
  /** Median of the measured fp32 FMA peak, 3 samples before and 3 after the timed steps (GFLOP/s). */
  peakGflops: number | null;
  config: {
    numLayers: number;
    hiddenSize: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    intermediateSize: number;
    vocabSize: number;
  };
  /** Frozen base parameters in the decoder's linear layers (no embedding, no LM head). */
  linearParams: number;
  /** Σ over LoRA adapters of (in + out). */
  loraInOut: number;
  loraParams: number;
}

/** Prompt p: 100 + (7i + 11p) mod 1000; completion c of prompt p: 200 + (13j + 31c + 5p) mod 1500.
 * scripts/bench_train_step_torch.py builds the same ids. */
export function trainStepTokens(job: TrainStepJob): ScoreSequence[] {
  const seqs: ScoreSequence[] = [];
  for (let p = 0; p < job.prompts; p++) {
    const prompt = Array.from({ length: job.promptLen }, (_, i) => 100 + ((7 * i + 11 * p) % 1000));
    for (let c = 0; c < job.completionsPerPrompt; c++) {
      const k = p * job.completionsPerPrompt + c;
      const completion = Array.from(
        { length: job.completionLen },
        (_, j) => 200 + ((13 * j + 31 * k + 5 * p) % 1500),
      );
      seqs.push({ prompt, completion });
    }
  }
  return seqs;
}

/** Fixed advantages, sequence k: ((k mod 4) − 1.5) / 1.5 (mean 0 within every group of 4). */
export function trainStepAdvantages(n: number): number[] {
  return Array.from({ length: n }, (_, k) => ((k % 4) - 1.5) / 1.5);
}

export async function runTrainStep(job: TrainStepJob): Promise<TrainStepResult> {
  const { model, config } = loadGgufModel(job.model, { weights: job.weights });
  addLora(model, {
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    r: job.loraR,
    alpha: job.loraAlpha,
    dropout: 0,
    rng: new Rng(1),
  });
  const compute = applyCompute(model, job.compute ?? 'fp32', { where: 'train-step-worker' });
  if (compute.note) process.stderr.write(`train-step-worker: ${compute.note}\n`);
  const params = [...loraParameters(model).values()];
  const seqs = trainStepTokens(job);
  const adv = trainStepAdvantages(seqs.length);
  const groups = Array.from({ length: job.prompts }, (_, p) => ({
    prompt: seqs[p * job.completionsPerPrompt]!.prompt,
    completions: seqs
      .slice(p * job.completionsPerPrompt, (p + 1) * job.completionsPerPrompt)
      .map((s) => s.completion),
  }));

  const step = (): number => {
    for (const p of params) p.zeroGrad();
    const res = job.mode === 'groups' ? scoreGroups(model, groups) : scoreTokens(model, seqs);
    // Per-token advantage: adv_i on every completion token of sequence i (offsets say which).
    const w = new Float32Array(res.logProbs.size);
    for (let i = 0; i < seqs.length; i++) {
      for (let t = res.offsets[i]!; t < res.offsets[i + 1]!; t++) w[t] = adv[i]!;
    }
    const wt = tensor(w, [w.length]);
    const loss = neg(sum(mul(res.logProbs, wt))); // −Σ_i adv_i Σ_t log π
    loss.backward();
    const v = loss.item();
    loss.release();
    wt.release();
    return v;
  };

  const native = loadNative();
  const peaks: number[] = [];
  const samplePeak = (): void => {
    for (let i = 0; i < 3 && native.tools; i++) peaks.push(native.tools.peakGflops(0.1));
  };
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  samplePeak();
  let loss = step(); // warm-up
  const runsS: number[] = [];
  const cpuS: number[] = [];
  for (let r = 0; r < job.runs; r++) {
    await tick(); // Node frees native buffers' bookkeeping on the event loop (see generate-worker)
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    loss = step();
    runsS.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpuS.push((c.user + c.system) / 1e6);
    process.stderr.write(
      `train-step-worker: run ${r + 1}/${job.runs}: ${runsS[r]!.toFixed(2)} s (${cpuS[r]!.toFixed(2)} s CPU)\n`,
    );
  }
  samplePeak();
  let linearParams = 0;
  let loraInOut = 0;
  for (const lin of model.linears().values()) {
    linearParams += lin.inFeatures * lin.outFeatures;
    if (lin.lora) loraInOut += lin.inFeatures + lin.outFeatures;
  }
  const loraParams = params.reduce((s, p) => s + p.size, 0);
  const medianS = median(runsS);
  const tokens = seqs.length * (job.promptLen + job.completionLen);
  const res: TrainStepResult = {
    computeUsed: compute.used,
    computeNote: compute.note,
    medianS,
    runsS,
    cpuS,
    tokensPerS: tokens / medianS,
    loss,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    peakGflops: peaks.length > 0 ? median(peaks) : null,
    config: {
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      numHeads: config.numHeads,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      intermediateSize: config.intermediateSize,
      vocabSize: config.vocabSize,
    },
    linearParams,
    loraInOut,
    loraParams,
  };
  model.release();
  return res;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const job = JSON.parse(process.argv[2] ?? '{}') as TrainStepJob;
  process.stderr.write(
    `train-step-worker: ${job.model} ${job.weights} ${job.mode} ${job.compute ?? 'fp32'} ${job.prompts}×${job.completionsPerPrompt} (${backendInfo().name})\n`,
  );
  const res = await runTrainStep(job);
  process.stdout.write(`${JSON.stringify(res)}\n`);
}
