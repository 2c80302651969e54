// The fixed code generator: one contract (types.ts), three backends, the on-disk cache, money.
export * from './types.js';
export { BatchQueue, type Batchable, type BatchQueueOptions } from './batch-queue.js';
export { Limiter } from './limiter.js';
export { defaultRetryPolicy, backoffDelayMs, parseRetryAfter, type RetryPolicy } from './retry.js';
export {
  Budget,
  costUsd,
  estimatePromptTokens,
  estimateRequests,
  estimateRun,
  priceFor,
  type DryRunEstimate,
  type DryRunOptions,
  type ModelPrice,
  type PriceTable,
} from './cost.js';
export {
  OpenAIGenerator,
  OPENAI_API_KEY_ENV,
  OPENAI_BASE_URL_ENV,
  OPENAI_DEFAULT_BASE_URL,
  type OpenAIGeneratorOptions,
} from './http.js';
export { LlamaCppGenerator, defaultGgufPath, type LlamaCppGeneratorOptions } from './llamacpp.js';
export { loadNodeLlamaCpp, NODE_LLAMA_CPP_VERSION, type NlcModule } from './node-llama-cpp.js';
export {
  LocalEngineGenerator,
  LOCAL_DEFAULT_MAX_TOKENS,
  defaultStopTokens,
  resolveLocalWeights,
  type LocalEngine,
  type LocalEngineGeneratorOptions,
} from './local.js';
export {
  attachPeftAdapter,
  isPeftTarget,
  peftPatternKey,
  peftAdapterSha256,
  readPeftConfig,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  type PeftAdapterInfo,
  type PeftLoraConfig,
  readPeftLoraWeights,
  attachGgufLoraAdapter,
  attachAdapter,
  adapterSha256,
  isGgufAdapterPath,
  type PeftLoraWeights,
  type GgufLoraAdapterInfo,
} from './peft-adapter.js';
export {
  CachedGenerator,
  GenerationCache,
  cacheKey,
  canonicalJson,
  type CacheStats,
  type GenerationCacheOptions,
} from './cache.js';
export {
  createGenerator,
  generatorConfigSchema,
  parseGeneratorConfig,
  type CreateGeneratorOptions,
  type GeneratorConfig,
  type ParsedGeneratorConfig,
} from './config.js';
