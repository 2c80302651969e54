// sampling: KV cache, batched generation, and scoring token sequences with gradients.
export { KvCache, type KvCacheOptions } from './kv-cache.js';
export { generate, type GenerateOptions, type Generation, type FinishReason } from './generate.js';
export {
  scoreTokens,
  scoreGroups,
  type ScoreSequence,
  type ScoreGroup,
  type ScoreOptions,
  type ScoreResult,
} from './score.js';
export {
  sampleRow,
  samplingDistribution,
  argmaxRow,
  logSoftmaxAt,
  type SamplingParams,
} from './sample.js';
