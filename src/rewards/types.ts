// The one reward contract. A reward function scores a batch of samples and returns, per sample,
// a number or null ("not applicable": e.g. no tests to run, or the generation failed). It may be
// async (execution). It has a name, under which the composite stores its value per sample, so
// ablations can be recomputed from stored components without regenerating.
import type { CodeTask } from '../data/tasks.js';

export interface RewardSample {
  /** The original query. */
  query: string;
  /** The refiner's rewrite (absent for baseline samples). */
  refinedQuery?: string;
  /** The generator's raw output (kept for reports). */
  rawOutput?: string;
  /** The code extracted from the generator's output (data/extract.ts). */
  code: string;
  /** The reference solution. */
  reference: string;
  /** The task, for rewards that run tests. */
  task?: CodeTask;
  /**
   * True when the generator failed (API error, timeout): such samples are never scored as code;
   * every reward returns null for them.
   */
  generationFailed?: boolean;
}

/** Extra per-sample facts a reward records (e.g. the sandbox outcome status). */
export type RewardInfo = Record<string, string | number | boolean | null>;

export interface RewardBatch {
  values: (number | null)[];
  /** Same length as values when present. */
  info?: (RewardInfo | undefined)[];
}

export type RewardOutput = (number | null)[] | RewardBatch;

export interface RewardFn {
  readonly name: string;
  score(batch: readonly RewardSample[]): RewardOutput | Promise<RewardOutput>;
}

/** Normalises a reward's output to a RewardBatch, checking its length. */
export function asBatch(name: string, out: RewardOutput, n: number): RewardBatch {
  const b: RewardBatch = Array.isArray(out) ? { values: out } : out;
  if (b.values.length !== n || (b.info !== undefined && b.info.length !== n)) {
    throw new Error(`reward '${name}' returned ${b.values.length} values for ${n} samples`);
  }
  return b;
}
