// The public API of rl4qe: explicit exports only.
export * from './util/errors.js';
export { Rng, type RngState } from './util/rng.js';
export type { Backend, Buf, DType } from './backend/backend.js';
export * from './tensor/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './sampling/index.js';
export * from './io/index.js';
export * from './tokenizer/index.js';
export * from './data/index.js';
export * from './rewards/index.js';
export * from './sandbox/index.js';
// Generators share names with sampling/tokenizer (ChatMessage, SamplingParams, ...): a namespace.
export * as generators from './generators/index.js';
export * from './serve/index.js';
export * from './train/index.js';
export {
  evaluate,
  writeEvalOutputs,
  renderMarkdown,
  renderHtml,
  pairedBootstrap,
  mcnemarExact,
  binomialTwoSided,
  passAtK,
  winTieLoss,
  EvalRefusedError,
  PROMPT_CANDIDATES,
  type EvalOptions,
  type EvalResult,
  type ArmSpec,
  runExperiment,
  loadExperimentSpec,
  listExperiments,
  renderExperimentMarkdown,
  type ExperimentSpec,
  type ExperimentResult,
  type ExperimentOptions,
} from './eval/index.js';
