// The run directory's records: what the trainer writes and what report.html, `rl4qe eval`,
// `rl4qe export` and `train --resume` read. One definition, so writers and readers agree.
//
//   RUN_DIR/
//     run.json             RunInfo (version guard, base-model identity, created, commit)
//     config.json          the resolved TrainConfig (train/config.ts)
//     split.json           the split manifest (data/splits.ts)
//     metrics.jsonl        one StepRecord per optimiser step, one ValRecord per validation
//     samples.jsonl        one SampleRecord per sampled rewrite
//     checkpoints/
//       step-000010/       adapter/ (PEFT: adapter_config.json + adapter_model.safetensors)
//                          or weights/ (full fine-tuning: model.safetensors), optimizer.safetensors,
//                          state.json (CheckpointState)
//       latest             the name of the newest complete checkpoint (written last, atomically)
//       best               the name of the best checkpoint by the validation metric
//     report.html          self-contained report (train/report.ts)

/** Bumped when the layout or a record changes incompatibly; readers refuse other versions. */
export const RUN_VERSION = 1;

export interface RunInfo {
  version: number;
  /** rl4qe's package version that created the run. */
  rl4qe: string;
  createdAt: string;
  /** The refiner base model: path as configured and a content digest (head+tail sha256). */
  base: {
    model: string;
    digest: string;
    architecture: string;
    hiddenSize: number;
    numLayers: number;
  };
  /** 'lora' or 'full'. */
  adapter: 'lora' | 'full';
  /** The frozen products' compute mode as it ran (refiner.compute; absent in older runs). */
  compute?: ComputeRecord;
  /** git commit of the code that made the run, when known. */
  commit?: string;
}

/** refiner.compute as the run used it: asked for, used, on which units, and a fallback note. */
export interface ComputeRecord {
  requested: 'fp32' | 'bf16';
  used: 'fp32' | 'bf16';
  units: string;
  /** Frozen projection weights rounded to bf16. */
  converted: number;
  /** Why bf16 was asked for and did not run (or ran on nothing); absent otherwise. */
  note?: string;
}

/** Seconds spent per stage in one step (or one validation). */
export interface StageTimes {
  sample: number;
  generate: number;
  reward: number;
  update: number;
  /** Wall time of the whole step (≥ the sum when nothing overlaps, less when stages overlap). */
  total: number;
}

export interface StepRecord {
  type: 'step';
  step: number;
  /** ISO time when the step ended. */
  time: string;
  /** Seconds since the run started (resumed runs continue the count). */
  elapsed: number;
  lr: number;
  loss: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
  /** Mean over the step's scored samples of the total reward (null when none was scored). */
  reward: number | null;
  /** Std of the total reward over the scored samples. */
  rewardStd: number | null;
  /** Mean of every reward component over the samples where it is not null. */
  components: Record<string, number | null>;
  /** Share of samples whose execution outcome is pass (null without an execution reward). */
  passRate: number | null;
  /** Mean per-token KL(π‖π_base) estimate on the sampled tokens (k3), 0 when not computed. */
  kl: number;
  /** Mean −log π per sampled token (an entropy estimate). */
  entropy: number;
  /** Mean rewrite length in tokens. */
  rewriteTokens: number;
  /** Samples drawn, scored (in the update), and dropped with the reason. */
  samples: number;
  scored: number;
  dropped: Record<string, number>;
  /** Refiner tokens processed per second: sampled tokens / sample time, and update tokens / update time. */
  sampleTokensPerSec: number;
  updateTokensPerSec: number;
  generator: { calls: number; cached: number; failures: number; costUsd: number };
  times: StageTimes;
}

export interface ValRecord {
  type: 'val';
  step: number;
  time: string;
  /** Name of the metric that selects the best checkpoint (e.g. 'reward', 'bleu', 'exec'). */
  metric: string;
  value: number | null;
  /** Every reward component's mean over the validation problems. */
  components: Record<string, number | null>;
  passRate: number | null;
  problems: number;
  best: boolean;
  seconds: number;
}

export type MetricsRecord = StepRecord | ValRecord;

export interface SampleRecord {
  step: number;
  /** Task id (ds1000/17) and the index k of this rewrite among the query's K. */
  task: string;
  k: number;
  query: string;
  /** The refiner's prompt as text (template applied). */
  refinerPrompt?: string;
  rewrite: string;
  /** What the generator was given (text of the last user message or the completion prompt). */
  generatorInput: string | null;
  /** The generator's raw output (null when there was no generator or it failed). */
  output: string | null;
  code: string | null;
  total: number | null;
  components: Record<string, number | null>;
  /** Extra facts from rewards, e.g. { exec: { status: 'pass' } }. */
  info: Record<string, Record<string, string | number | boolean | null>>;
  /** Sandbox outcome status when an execution reward ran. */
  outcome: string | null;
  baseline: number | null;
  advantage: number | null;
  /** Σ_t log π(token) from the sampler (temperature 1, no top-k/p). */
  logProb: number;
  promptTokens: number;
  rewriteTokens: number;
  finishReason: string;
  /** Why the sample was left out of the update ('generator:timeout', 'reward-null', ...). */
  dropped: string | null;
  /** True for validation samples (greedy). */
  validation?: boolean;
}
