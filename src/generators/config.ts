// Generator configuration as it appears in run configs and CLI flags, validated at the edge, and
// the one factory that turns it into a (cached) Generator.
import { z } from 'zod';
import { ConfigError } from '../util/errors.js';
import { Budget } from './cost.js';
import { CachedGenerator, GenerationCache } from './cache.js';
import { OpenAIGenerator } from './http.js';
import { LlamaCppGenerator } from './llamacpp.js';
import { LocalEngineGenerator } from './local.js';
import type { Generator } from './types.js';

const samplingSchema = z
  .object({
    temperature: z.number().min(0),
    topP: z.number().gt(0).max(1),
    topK: z.number().int().positive(),
    maxTokens: z.number().int().positive(),
    seed: z.number().int(),
    stop: z.array(z.string()),
  })
  .partial()
  .strict();

const priceSchema = z
  .object({ inputPerMTok: z.number().min(0), outputPerMTok: z.number().min(0) })
  .strict();

const cacheSchema = z
  .object({ enabled: z.boolean().default(true), file: z.string().optional() })
  .strict()
  .default({ enabled: true });

export const generatorConfigSchema = z.discriminatedUnion('backend', [
  z
    .object({
      backend: z.literal('openai'),
      /** Default: $OPENAI_BASE_URL, else https://api.openai.com/v1. */
      baseUrl: z.string().min(1).optional(),
      model: z.string().min(1),
      apiKeyEnv: z.string().min(1).optional(),
      timeoutMs: z.number().int().positive().optional(),
      concurrency: z.number().int().positive().optional(),
      retry: z
        .object({
          maxRetries: z.number().int().min(0),
          baseDelayMs: z.number().min(0),
          maxDelayMs: z.number().min(0),
          maxRetryAfterMs: z.number().min(0),
        })
        .partial()
        .strict()
        .optional(),
      prices: z.record(z.string(), priceSchema).optional(),
      budgetUsd: z.number().min(0).optional(),
      defaultParams: samplingSchema.optional(),
      cache: cacheSchema,
    })
    .strict(),
  z
    .object({
      backend: z.literal('llama.cpp'),
      modelPath: z.string().min(1).optional(),
      contextSize: z.number().int().positive().optional(),
      sequences: z.number().int().positive().optional(),
      threads: z.number().int().positive().optional(),
      gpu: z.union([z.literal(false), z.literal('auto')]).optional(),
      defaultParams: samplingSchema.optional(),
      cache: cacheSchema,
    })
    .strict(),
  z
    .object({
      backend: z.literal('local'),
      /** GGUF file or Hugging Face model directory. */
      model: z.string().min(1),
      /** PEFT LoRA adapter directory. */
      adapter: z.string().min(1).optional(),
      /** Directory with tokenizer.json, or a GGUF file (default: the model's). */
      tokenizer: z.string().min(1).optional(),
      /** Jinja chat template text overriding the tokenizer's. */
      chatTemplate: z.string().min(1).optional(),
      contextSize: z.number().int().positive().optional(),
      /**
       * auto (default): a GGUF file keeps its quantised blocks, a Hugging Face directory loads
       * float32; float32 dequantises a GGUF; quantized keeps the blocks (GGUF only). Optional
       * rather than .default('auto'): unset means auto (resolveLocalWeights), and a schema default
       * would enter every resolved training config and so change the config digest of runs
       * written before it (resume compares them).
       */
      weights: z.enum(['auto', 'float32', 'quantized']).optional(),
      maxBatchSize: z.number().int().positive().optional(),
      /** Wait up to this long for more requests before a batch that is not full (serving). */
      batchWaitMs: z.number().min(0).optional(),
      stopTokenIds: z.array(z.number().int().min(0)).min(1).optional(),
      threads: z.number().int().positive().optional(),
      /** Decode in a worker thread (keeps the event loop free: serving). */
      worker: z.boolean().optional(),
      defaultParams: samplingSchema.optional(),
      cache: cacheSchema,
    })
    .strict(),
]);

export type GeneratorConfig = z.input<typeof generatorConfigSchema>;
export type ParsedGeneratorConfig = z.output<typeof generatorConfigSchema>;

/** Validates outside config (JSON file, CLI flags); errors name the field. */
export function parseGeneratorConfig(raw: unknown, where = 'generator'): ParsedGeneratorConfig {
  const r = generatorConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ConfigError(`invalid generator config: ${issue.message}`, {
      where: [where, ...issue.path.map(String)].join('.'),
      expected:
        issue.path.length === 0 || issue.path[0] === 'backend'
          ? "backend: 'openai' | 'llama.cpp' | 'local'"
          : undefined,
    });
  }
  return r.data;
}

export interface CreateGeneratorOptions {
  /** Share one budget across generators; else one is made from budgetUsd. */
  budget?: Budget;
  /** Share one open cache (e.g. refiner and generator in one process). */
  cache?: GenerationCache;
}

/** The generator a config describes, wrapped in the on-disk cache unless cache.enabled is false. */
export function createGenerator(
  raw: GeneratorConfig,
  opts: CreateGeneratorOptions = {},
): Generator {
  const c = parseGeneratorConfig(raw);
  let g: Generator;
  switch (c.backend) {
    case 'openai':
      g = new OpenAIGenerator({
        baseUrl: c.baseUrl,
        model: c.model,
        apiKeyEnv: c.apiKeyEnv,
        timeoutMs: c.timeoutMs,
        concurrency: c.concurrency,
        retry: c.retry,
        prices: c.prices,
        budget: opts.budget ?? (c.budgetUsd !== undefined ? new Budget(c.budgetUsd) : undefined),
        defaultParams: c.defaultParams,
      });
      break;
    case 'llama.cpp':
      g = new LlamaCppGenerator({
        modelPath: c.modelPath,
        contextSize: c.contextSize,
        sequences: c.sequences,
        threads: c.threads,
        gpu: c.gpu,
        defaultParams: c.defaultParams,
      });
      break;
    case 'local':
      g = new LocalEngineGenerator({
        model: c.model,
        adapter: c.adapter,
        tokenizer: c.tokenizer,
        chatTemplate: c.chatTemplate,
        contextSize: c.contextSize,
        weights: c.weights,
        maxBatchSize: c.maxBatchSize,
        batchWaitMs: c.batchWaitMs,
        stopTokenIds: c.stopTokenIds,
        threads: c.threads,
        worker: c.worker,
        defaultParams: c.defaultParams,
      });
      break;
  }
  if (!c.cache.enabled) return g;
  if (opts.cache) return new CachedGenerator(g, opts.cache);
  return new CachedGenerator(g, new GenerationCache({ file: c.cache.file }), {
    closeCacheOnDispose: true,
  });
}
