// nn: the layers a Llama/Qwen2 model is built from, and the optimiser.
export {
  linear,
  Linear,
  LoraAdapter,
  type LoraOptions,
  type LinearParts,
  type ForwardContext,
} from './linear.js';
export { Embedding, RMSNorm, Rope } from './layers.js';
export {
  CausalSelfAttention,
  SwiGluMlp,
  type KvCacheLike,
  type AttentionCall,
  type AttentionProjection,
  type MlpProjection,
} from './attention.js';
export {
  AdamW,
  clipGradNorm,
  ADAMW_DEFAULTS,
  type AdamWOptions,
  type AdamWState,
} from './optim.js';
export { ropeScalingForTable, type RopeScaling as ModelRopeScaling } from './rope-scaling.js';
