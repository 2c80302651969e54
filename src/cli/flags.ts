// Command-line flags → generator configs (src/generators/config.ts), in one place for
// `rl4qe serve` and `rl4qe generate`. Numbers are checked here, so an error names the flag the
// user typed; the config schema then checks the rest.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../util/errors.js';
import {
  OPENAI_API_KEY_ENV,
  OPENAI_BASE_URL_ENV,
  defaultGgufPath,
  type GeneratorConfig,
} from '../generators/index.js';

/** An integer flag ≥ min; undefined stays undefined. */
export function intFlag(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`${flag} must be an integer >= ${min}`, { where: flag, found: v });
  return n;
}

/** An integer flag that commander gave a default, so it is always there. */
export function intFlagDefault(flag: string, v: string, min: number): number {
  return intFlag(flag, v, min) ?? min;
}

export function weightsFlag(
  flag: string,
  v: string | undefined,
): 'float32' | 'quantized' | undefined {
  if (v === undefined || v === 'float32' || v === 'quantized') return v;
  throw new ConfigError(`${flag} must be 'float32' or 'quantized'`, { where: flag, found: v });
}

/** A JSON file (a config), or a ConfigError naming it. */
export function readJsonFile(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new ConfigError(`cannot read the ${what}`, {
      where: file,
      found: err instanceof Error ? err.message : String(err),
    });
  }
}

/** The flags that choose and shape a generator, as the command spells their values. */
export interface GeneratorFlags {
  /** openai: base URL and model name. */
  url?: string;
  model?: string;
  apiKeyEnv?: string;
  /** llama.cpp: a GGUF. */
  gguf?: string;
  threads?: string;
  sequences?: string;
  /** local engine: a GGUF file or Hugging Face directory, and its options. */
  local?: string;
  adapter?: string;
  tokenizer?: string;
  contextSize?: string;
  weights?: string;
  maxBatchSize?: string;
  batchWaitMs?: string;
  /** local engine: decode in a worker thread. */
  worker?: boolean;
}

/** How the command names the flags of GeneratorFlags (serve: --generator-url, generate: --url). */
export interface GeneratorFlagNames {
  url: string;
  model: string;
}

const LOCAL_ONLY = [
  ['adapter', '--adapter'],
  ['tokenizer', '--tokenizer'],
  ['contextSize', '--context-size'],
  ['weights', '--weights'],
  ['maxBatchSize', '--max-batch-size'],
  ['batchWaitMs', '--batch-wait-ms'],
] as const;

/**
 * The generator the flags ask for, or undefined when they name none (the command's default).
 * openai: `url` (or only `model`, with OPENAI_BASE_URL / OPENAI_API_KEY in the environment, as the
 * OpenAI SDKs read them); llama.cpp: `gguf`; local: `local`.
 */
export function generatorFromFlags(
  f: GeneratorFlags,
  names: GeneratorFlagNames,
): GeneratorConfig | undefined {
  const openaiByEnv =
    f.url === undefined &&
    f.model !== undefined &&
    f.gguf === undefined &&
    f.local === undefined &&
    (process.env[OPENAI_BASE_URL_ENV] || process.env[OPENAI_API_KEY_ENV]) !== undefined;
  const chosen = [
    f.url !== undefined || openaiByEnv ? names.url : undefined,
    f.gguf !== undefined ? '--gguf' : undefined,
    f.local !== undefined ? '--local' : undefined,
  ].filter((x): x is string => x !== undefined);
  if (chosen.length > 1)
    throw new ConfigError(`give one of ${chosen.join(', ')}`, {
      where: chosen[1],
      hint: 'each names a different generator backend',
    });
  if (f.local === undefined)
    for (const [key, flag] of LOCAL_ONLY)
      if (f[key] !== undefined)
        throw new ConfigError(`${flag} needs --local <model>`, {
          where: flag,
          hint: "these options belong to rl4qe's own engine (backend local)",
        });
  const threads = intFlag('--threads', f.threads, 1);
  if (f.url !== undefined || openaiByEnv) {
    if (f.model === undefined)
      throw new ConfigError(`${names.url} needs ${names.model}`, { where: names.model });
    return {
      backend: 'openai',
      ...(f.url !== undefined ? { baseUrl: f.url } : {}),
      model: f.model,
      ...(f.apiKeyEnv !== undefined ? { apiKeyEnv: f.apiKeyEnv } : {}),
    };
  }
  if (f.model !== undefined)
    throw new ConfigError(`${names.model} needs ${names.url}`, {
      where: names.model,
      hint: `or set ${OPENAI_BASE_URL_ENV} (and ${OPENAI_API_KEY_ENV}) for an OpenAI-compatible server`,
    });
  if (f.gguf !== undefined)
    return {
      backend: 'llama.cpp',
      modelPath: f.gguf,
      threads,
      sequences: intFlag('--sequences', f.sequences, 1),
    };
  if (f.local !== undefined)
    return {
      backend: 'local',
      model: f.local,
      adapter: f.adapter,
      tokenizer: f.tokenizer,
      contextSize: intFlag('--context-size', f.contextSize, 1),
      weights: weightsFlag('--weights', f.weights),
      maxBatchSize: intFlag('--max-batch-size', f.maxBatchSize, 1),
      batchWaitMs: intFlag('--batch-wait-ms', f.batchWaitMs, 0),
      threads,
      worker: f.worker,
    };
  return undefined;
}

/**
 * `rl4qe serve`'s batch wait for the local engine (answers and refiner alike): concurrent HTTP
 * requests reach the decode queue a few ms apart; 10 ms lets them meet in one batch and costs a
 * sequential request 2 × 10 ms on top of seconds of decoding.
 */
export const SERVE_BATCH_WAIT_MS = '10';

/** `rl4qe serve`'s refiner flags. */
export interface RefinerFlags {
  /** Shared with the answer generator (--batch-wait-ms). */
  batchWaitMs?: string;
  refinerBackend: string;
  refinerModel?: string;
  refinerGguf?: string;
  refinerAdapter?: string;
  refinerTokenizer?: string;
  refinerContextSize?: string;
  refinerWeights?: string;
  refinerInProcess?: boolean;
  threads?: string;
}

/** The refiner's generator the flags ask for, or undefined (serve then refines with the answer generator). */
export function refinerFromFlags(f: RefinerFlags): GeneratorConfig | undefined {
  if (f.refinerBackend !== 'llama.cpp' && f.refinerBackend !== 'local')
    throw new ConfigError("--refiner-backend must be 'llama.cpp' or 'local'", {
      where: '--refiner-backend',
      found: f.refinerBackend,
    });
  if (f.refinerGguf !== undefined && f.refinerModel !== undefined)
    throw new ConfigError('give one of --refiner-gguf and --refiner-model', {
      where: '--refiner-model',
    });
  const threads = intFlag('--threads', f.threads, 1);
  const modelPath = f.refinerModel ?? f.refinerGguf;
  if (f.refinerBackend === 'local')
    return {
      backend: 'local',
      model: modelPath ?? defaultGgufPath(),
      adapter: f.refinerAdapter,
      tokenizer: f.refinerTokenizer,
      contextSize: intFlag('--refiner-context-size', f.refinerContextSize, 1),
      weights: weightsFlag('--refiner-weights', f.refinerWeights),
      batchWaitMs: intFlag('--batch-wait-ms', f.batchWaitMs ?? SERVE_BATCH_WAIT_MS, 0),
      threads,
      // A worker thread keeps the server responsive (health, 429s, deadlines) while it decodes.
      worker: f.refinerInProcess !== true,
    };
  for (const [flag, v] of [
    ['--refiner-adapter', f.refinerAdapter],
    ['--refiner-tokenizer', f.refinerTokenizer],
    ['--refiner-context-size', f.refinerContextSize],
    ['--refiner-weights', f.refinerWeights],
    ['--refiner-in-process', f.refinerInProcess],
  ] as const)
    if (v !== undefined)
      throw new ConfigError(`${flag} needs --refiner-backend local`, {
        where: flag,
        hint: "LoRA adapters in PEFT format run on rl4qe's own engine: add --refiner-backend local",
      });
  return modelPath !== undefined ? { backend: 'llama.cpp', modelPath, threads } : undefined;
}
