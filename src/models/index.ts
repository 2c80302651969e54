// models: config normalisation, one file per architecture, the registry and weight loading.
export {
  configFromHf,
  configFromGguf,
  validateConfig,
  MODEL_DEFAULTS,
  type Architecture,
  type ModelConfig,
  type GgufMetadata,
  type GgufConfigOptions,
} from './config.js';
export { Llama, LlamaBlock, type ModelOptions } from './llama.js';
export { Qwen2, Qwen2Block } from './qwen2.js';
export { createModel, supportedArchitectures } from './registry.js';
export {
  loadWeights,
  addLora,
  loraParameters,
  withAdaptersDisabled,
  defaultPositions,
  type CausalLM,
  type ForwardInput,
  type WeightSlot,
  type AddLoraOptions,
} from './model.js';
export type { WeightSource } from './weight-source.js';
export {
  hfNameOfGguf,
  ggufNameOfHf,
  permuteQK,
  unpermuteQK,
  ggufWeightSource,
} from './gguf-names.js';
export {
  loadModel,
  loadGgufModel,
  loadHfModel,
  loadSafetensorsModel,
  resolveModel,
  ggufMetadataValues,
  type LoadedModel,
  type ModelSourceOptions,
} from './load.js';
export {
  hfConfigJson,
  ggufLoraPairsOfHf,
  hfLoraOfGgufPairs,
  mergeLoraInto,
  type LoraMatrices,
} from './adapter-export.js';
export {
  applyCompute,
  useBf16Compute,
  COMPUTE_MODES,
  type ComputeMode,
  type ComputeReport,
  type ComputeOptions,
} from './compute.js';
