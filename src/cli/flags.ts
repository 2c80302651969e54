// Command-line flags → generator configs (src/generators/config.ts), in one place for
// `rl4qe generate`, `rl4qe serve`, `rl4qe eval` and `rl4qe demo`: one spelling per idea
// (docs/cli.md). Values are checked here, so an error names the flag the user typed, not a
// config field; the config schema then checks the rest, and its errors are mapped back to flags.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, NotFoundError } from '../util/errors.js';
import {
  OPENAI_API_KEY_ENV,
  OPENAI_BASE_URL_ENV,
  defaultGgufPath,
  generatorConfigSchema,
  type GeneratorConfig,
  type ParsedGeneratorConfig,
} from '../generators/index.js';
import { parseHubModelRef } from '../io/hub/index.js';
import type { DeprecatedAlias } from './aliases.js';

/** An integer flag ≥ min; undefined stays undefined. */
export function intFlag(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min)
    throw new ConfigError(`${flag} must be an integer >= ${min}`, { where: flag, found: v });
  return n;
}

/** An integer flag that commander gave a default, so it is always there. */
export function intFlagDefault(flag: string, v: string, min: number): number {
  return intFlag(flag, v, min) ?? min;
}

/** One value of a fixed set, or a ConfigError naming the flag and the choices. */
export function oneOfFlag<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v))
    throw new ConfigError(`invalid ${flag}`, {
      where: flag,
      expected: allowed.join(' | '),
      found: v,
    });
  return v as T;
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * A duration flag in milliseconds: `500ms`, `30s`, `2m`, `1h`, `1.5s`; a bare number is seconds
 * (as `timeout(1)` and `sleep` read it, and as `ds1000 verify --timeout 60` always meant).
 */
export function durationFlag(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  const ms = m ? Number(m[1]) * DURATION_UNITS[(m[2] ?? 's') as keyof typeof DURATION_UNITS] : NaN;
  if (!Number.isFinite(ms))
    throw new ConfigError(`${flag} must be a duration`, {
      where: flag,
      expected: 'a number with a unit: 500ms, 30s, 2m, 1h (a bare number is seconds)',
      found: v,
    });
  return ms;
}

export const WEIGHTS_MODES = ['auto', 'float32', 'quantized'] as const;
export type WeightsMode = (typeof WEIGHTS_MODES)[number];

/**
 * A --weights flag: auto (quantized for a GGUF file, float32 for a Hugging Face directory),
 * float32 or quantized. Undefined stays undefined (the library's default, which is auto).
 */
export function weightsFlag(flag: string, v: string | undefined): WeightsMode | undefined {
  return v === undefined ? undefined : oneOfFlag(flag, v, WEIGHTS_MODES);
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

export const GENERATOR_BACKENDS = ['openai', 'llama.cpp', 'local'] as const;

/** The flags that choose and shape a generator (addGeneratorOptions), as typed. */
export interface GeneratorFlags {
  backend?: string;
  /** local / llama.cpp: a GGUF file, HF directory or Hub id; openai: the model name. */
  model?: string;
  /** openai (the OpenAI SDK's baseURL). */
  baseUrl?: string;
  apiKeyEnv?: string;
  /** llama.cpp / local: the Hub revision of a --model repo id (the same as org/name@rev). */
  revision?: string;
  /** openai: request deadline and requests in flight. */
  timeout?: string;
  concurrency?: string;
  /** llama.cpp and local: CPU threads; requests decoded together. */
  threads?: string;
  batchSize?: string;
  /** local engine only. */
  adapter?: string;
  tokenizer?: string;
  contextSize?: string;
  weights?: string;
  batchWait?: string;
  /** local engine: decode in a worker thread (set by the command, not a flag). */
  worker?: boolean;
}

/** Which generator options a command offers (generate has all; serve and eval fewer). */
export interface GeneratorOptionSet {
  /** openai --timeout / --concurrency (generate; serve's --timeout is its request deadline). */
  openaiLimits?: boolean;
  /** local --adapter / --tokenizer (generate; eval's adapters belong to the refiner). */
  localAdapter?: boolean;
  /** --batch-wait (serve). */
  batchWait?: boolean;
  /** --threads (serve has its own, shared with the refiner). */
  threads?: boolean;
  /** What the default is when no generator flag is given, for the help text. */
  defaultNote: string;
}

/** Adds the generator flags of the scheme (docs/cli.md) to a command. */
export function addGeneratorOptions(cmd: Command, set: GeneratorOptionSet): Command {
  cmd
    .option(
      '--backend <backend>',
      `generator backend: openai | llama.cpp | local (rl4qe's own engine); without it: openai with --base-url, else llama.cpp (no generator flag at all: ${set.defaultNote})`,
    )
    .option(
      '--model <model>',
      'generator model: a GGUF file, Hugging Face directory or Hub id org/name[@rev] (llama.cpp, local), or the model name (openai)',
    )
    .option(
      '--revision <rev>',
      'llama.cpp, local: branch, tag or commit of a Hub id --model (the same as org/name@rev)',
    )
    .option(
      '--base-url <url>',
      `OpenAI-compatible server, e.g. https://api.deepseek.com/v1 (default: $${OPENAI_BASE_URL_ENV})`,
    )
    .option(
      '--api-key-env <NAME>',
      `environment variable holding the API key (default: ${OPENAI_API_KEY_ENV})`,
    );
  if (set.openaiLimits)
    cmd
      .option('--timeout <duration>', 'openai: per-request deadline, e.g. 30s, 2m (bare: seconds)')
      .option('--concurrency <n>', 'openai: requests in flight at once');
  if (set.threads) cmd.option('--threads <n>', 'llama.cpp, local: CPU threads');
  cmd.option(
    '--batch-size <n>',
    'llama.cpp, local: requests decoded together (default: llama.cpp 1, local 8)',
  );
  if (set.localAdapter)
    cmd
      .option('--adapter <dir>', 'local: a PEFT LoRA adapter directory or GGUF LoRA file')
      .option(
        '--tokenizer <path>',
        "local: tokenizer.json directory or GGUF (default: the model's)",
      );
  cmd
    .option('--context-size <n>', 'local: longest prompt + completion in tokens')
    .option(
      '--weights <mode>',
      'local: auto (default: quantized for a GGUF file, float32 for a Hugging Face directory) | float32 | quantized',
    );
  if (set.batchWait)
    cmd.option(
      '--batch-wait <duration>',
      `local: wait up to this long for more requests before a batch that is not full (default ${SERVE_BATCH_WAIT})`,
    );
  return cmd;
}

/** An old `--…-ms` value as a duration: a bare number of ms gets its unit, anything else stays. */
export function msAsDuration(v: string | boolean | string[]): string {
  const s = String(v);
  return /^\s*\d+(\.\d+)?\s*$/.test(s) ? `${s.trim()}ms` : s;
}

/** The old generator flags of `rl4qe generate` (0.1.0), as hidden aliases. */
export const GENERATE_GENERATOR_ALIASES: readonly DeprecatedAlias[] = [
  { flags: '--url <baseUrl>', use: '--base-url <url>', to: (v) => ({ baseUrl: v }) },
  {
    flags: '--gguf <file>',
    use: '--backend llama.cpp --model <file>',
    to: (v) => ({ backend: 'llama.cpp', model: v }),
  },
  {
    flags: '--local <model>',
    use: '--backend local --model <model>',
    to: (v) => ({ backend: 'local', model: v }),
  },
  { flags: '--max-batch-size <n>', use: '--batch-size <n>', to: (v) => ({ batchSize: v }) },
];

/** The old generator flags of `rl4qe serve` (0.1.0), as hidden aliases. */
export const SERVE_GENERATOR_ALIASES: readonly DeprecatedAlias[] = [
  { flags: '--generator-url <url>', use: '--base-url <url>', to: (v) => ({ baseUrl: v }) },
  { flags: '--generator-model <name>', use: '--model <name>', to: (v) => ({ model: v }) },
  GENERATE_GENERATOR_ALIASES[1]!,
  GENERATE_GENERATOR_ALIASES[2]!,
  GENERATE_GENERATOR_ALIASES[3]!,
  { flags: '--sequences <n>', use: '--batch-size <n>', to: (v) => ({ batchSize: v }) },
  {
    flags: '--batch-wait-ms <ms>',
    use: '--batch-wait <duration>',
    to: (v) => ({ batchWait: msAsDuration(v) }),
  },
];

/** Config field → the flag that sets it, so schema errors name what the user typed. */
const FLAG_OF_FIELD: Record<string, string> = {
  backend: '--backend',
  model: '--model',
  modelPath: '--model',
  baseUrl: '--base-url',
  apiKeyEnv: '--api-key-env',
  timeoutMs: '--timeout',
  concurrency: '--concurrency',
  threads: '--threads',
  sequences: '--batch-size',
  maxBatchSize: '--batch-size',
  adapter: '--adapter',
  tokenizer: '--tokenizer',
  contextSize: '--context-size',
  weights: '--weights',
  batchWaitMs: '--batch-wait',
};

/**
 * A library message in the flags' terms: `generator.baseUrl` → `--base-url`, `generator.timeoutMs`
 * → `--timeout` (the generators name config fields; a user who gave flags typed these).
 */
export function inFlagTerms(text: string): string {
  return text.replace(/\bgenerator\.(\w+)/g, (m, field: string) => FLAG_OF_FIELD[field] ?? m);
}

/**
 * Validates a config built from flags; an error names the flag (via `flagOf`, e.g. serve's
 * refiner flags), not the config field.
 */
export function parseFlagsConfig(
  cfg: GeneratorConfig,
  flagOf: (field: string) => string = (f) => FLAG_OF_FIELD[f] ?? f,
): ParsedGeneratorConfig {
  const r = generatorConfigSchema.safeParse(cfg);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new ConfigError(`invalid value: ${issue.message}`, {
    where: flagOf(String(issue.path[0] ?? 'backend')),
  });
}

/**
 * --model with --revision: the Hub id with that revision (`org/name@rev`, `org/name@rev/f.gguf`),
 * as resolveModel reads it. Refused for a local path or an id that names another revision.
 */
export function withRevision(flag: string, model: string, revision: string | undefined): string {
  if (revision === undefined) return model;
  const ref = existsSync(model) ? undefined : parseHubModelRef(model);
  if (ref === undefined)
    throw new ConfigError('--revision needs a Hub repo id', {
      where: '--revision',
      expected: `${flag} org/name (or org/name/file.gguf)`,
      found: `${flag} ${model}`,
    });
  if (ref.revision !== undefined && ref.revision !== revision)
    throw new ConfigError(`--revision and ${flag}'s @revision disagree`, {
      where: '--revision',
      found: `${revision} vs ${ref.revision}`,
      hint: 'give the revision once',
    });
  return `${ref.repo}@${revision}${ref.file !== undefined ? `/${ref.file}` : ''}`;
}

/** A model path that is plainly a file path (not a Hub id) must exist: say so naming the flag. */
function requirePathFlag(flag: string, model: string): void {
  // org/name/file.gguf is a GGUF inside a Hub repo, not a path.
  const pathLike =
    /^[./~]/.test(model) || (/\.gguf$/i.test(model) && parseHubModelRef(model) === undefined);
  if (pathLike && !existsSync(model))
    throw new NotFoundError('model not found', {
      where: flag,
      expected: 'a GGUF file, a Hugging Face model directory, or a Hub id org/name[@rev]',
      found: model,
      hint: 'the offline test models: node scripts/fetch-test-models.mjs',
    });
}

const OPENAI_ONLY = [
  ['baseUrl', '--base-url'],
  ['apiKeyEnv', '--api-key-env'],
  ['timeout', '--timeout'],
  ['concurrency', '--concurrency'],
] as const;
const LOCAL_ONLY = [
  ['adapter', '--adapter'],
  ['tokenizer', '--tokenizer'],
  ['contextSize', '--context-size'],
  ['weights', '--weights'],
  ['batchWait', '--batch-wait'],
] as const;

/** The backend the flags ask for (documented in docs/cli.md), or undefined when none is given. */
export function backendOf(f: GeneratorFlags): (typeof GENERATOR_BACKENDS)[number] | undefined {
  if (f.backend !== undefined) return oneOfFlag('--backend', f.backend, GENERATOR_BACKENDS);
  if (f.baseUrl !== undefined) return 'openai';
  if (f.model === undefined) return undefined;
  // As 0.1.0's `--model NAME` did: a name that is no local path, with the OpenAI SDK's
  // environment set, is a model on that server.
  const openaiEnv =
    (process.env[OPENAI_BASE_URL_ENV] || process.env[OPENAI_API_KEY_ENV]) !== undefined;
  if (openaiEnv && !existsSync(f.model) && !/\.gguf$/i.test(f.model)) return 'openai';
  return 'llama.cpp';
}

/**
 * The generator the flags ask for, or undefined when they name none (the command's default).
 * Flags of another backend than the one chosen are refused, naming the flag.
 */
export function generatorFromFlags(
  f: GeneratorFlags,
  o: {
    /** Refuse a model path that does not exist, naming --model (default; eval checks later). */
    checkPaths?: boolean;
  } = {},
): GeneratorConfig | undefined {
  const backend = backendOf(f);
  const given = (pairs: readonly (readonly [keyof GeneratorFlags, string])[]): string[] =>
    pairs.filter(([k]) => f[k] !== undefined).map(([, flag]) => flag);
  const misplaced = [
    ...(backend !== 'openai' ? given(OPENAI_ONLY) : []),
    ...(backend !== 'local' ? given(LOCAL_ONLY) : []),
    ...(backend === 'openai' || backend === undefined
      ? given([
          ['threads', '--threads'],
          ['batchSize', '--batch-size'],
          ['revision', '--revision'],
        ])
      : []),
  ];
  if (misplaced.length > 0) {
    const flag = misplaced[0]!;
    const owner = OPENAI_ONLY.some(([, x]) => x === flag)
      ? 'openai'
      : LOCAL_ONLY.some(([, x]) => x === flag)
        ? 'local'
        : 'llama.cpp or local';
    throw new ConfigError(`${flag} needs --backend ${owner}`, {
      where: flag,
      found: backend !== undefined ? `--backend ${backend}` : 'no --backend',
    });
  }
  if (backend === undefined) return undefined;
  const threads = intFlag('--threads', f.threads, 1);
  const batchSize = intFlag('--batch-size', f.batchSize, 1);
  if (backend === 'openai') {
    if (f.model === undefined)
      throw new ConfigError('--backend openai needs --model <name>', {
        where: '--model',
        hint: `the model name on the server, e.g. gpt-4o-mini (server: --base-url or $${OPENAI_BASE_URL_ENV})`,
      });
    const timeoutMs = durationFlag('--timeout', f.timeout);
    const concurrency = intFlag('--concurrency', f.concurrency, 1);
    return {
      backend: 'openai',
      model: f.model,
      ...(f.baseUrl !== undefined ? { baseUrl: f.baseUrl } : {}),
      ...(f.apiKeyEnv !== undefined ? { apiKeyEnv: f.apiKeyEnv } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs: Math.max(1, Math.round(timeoutMs)) } : {}),
      ...(concurrency !== undefined ? { concurrency } : {}),
    };
  }
  if (f.model !== undefined && o.checkPaths !== false) requirePathFlag('--model', f.model);
  if (f.revision !== undefined && f.model === undefined)
    throw new ConfigError('--revision needs --model <org/name>', { where: '--revision' });
  const model = f.model !== undefined ? withRevision('--model', f.model, f.revision) : undefined;
  if (backend === 'llama.cpp')
    return {
      backend: 'llama.cpp',
      ...(model !== undefined ? { modelPath: model } : {}),
      threads,
      sequences: batchSize,
    };
  return {
    backend: 'local',
    model: model ?? defaultGgufPath(),
    adapter: f.adapter,
    tokenizer: f.tokenizer,
    contextSize: intFlag('--context-size', f.contextSize, 1),
    weights: weightsFlag('--weights', f.weights),
    maxBatchSize: batchSize,
    batchWaitMs: durationFlag('--batch-wait', f.batchWait),
    threads,
    worker: f.worker,
  };
}

/**
 * `rl4qe serve`'s batch wait for the local engine (answers and refiner alike): concurrent HTTP
 * requests reach the decode queue a few ms apart; 10 ms lets them meet in one batch and costs a
 * sequential request 2 × 10 ms on top of seconds of decoding.
 */
export const SERVE_BATCH_WAIT = '10ms';

/** `rl4qe serve`'s refiner flags. */
export interface RefinerFlags {
  /** Shared with the answer generator (--batch-wait). */
  batchWait?: string;
  refinerBackend: string;
  refinerModel?: string;
  refinerAdapter?: string;
  refinerTokenizer?: string;
  refinerContextSize?: string;
  refinerWeights?: string;
  refinerInProcess?: boolean;
  threads?: string;
}

/** The old refiner flags of `rl4qe serve` (0.1.0), as hidden aliases. */
export const SERVE_REFINER_ALIASES: readonly DeprecatedAlias[] = [
  {
    flags: '--refiner-gguf <file>',
    use: '--refiner-model <file>',
    to: (v) => ({ refinerModel: v }),
  },
];

const REFINER_FLAG_OF_FIELD: Record<string, string> = {
  model: '--refiner-model',
  modelPath: '--refiner-model',
  adapter: '--refiner-adapter',
  tokenizer: '--refiner-tokenizer',
  contextSize: '--refiner-context-size',
  weights: '--refiner-weights',
  batchWaitMs: '--batch-wait',
  threads: '--threads',
};

/** Maps a refiner config's field to serve's flag (for parseFlagsConfig). */
export const refinerFlagOf = (field: string): string => REFINER_FLAG_OF_FIELD[field] ?? field;

/** The refiner's generator the flags ask for, or undefined (serve then refines with the answer generator). */
export function refinerFromFlags(f: RefinerFlags): GeneratorConfig | undefined {
  const backend = oneOfFlag('--refiner-backend', f.refinerBackend, ['llama.cpp', 'local'] as const);
  const threads = intFlag('--threads', f.threads, 1);
  if (f.refinerModel !== undefined) requirePathFlag('--refiner-model', f.refinerModel);
  if (backend === 'local')
    return {
      backend: 'local',
      model: f.refinerModel ?? defaultGgufPath(),
      adapter: f.refinerAdapter,
      tokenizer: f.refinerTokenizer,
      contextSize: intFlag('--refiner-context-size', f.refinerContextSize, 1),
      weights: weightsFlag('--refiner-weights', f.refinerWeights),
      batchWaitMs: durationFlag('--batch-wait', f.batchWait ?? SERVE_BATCH_WAIT),
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
  return f.refinerModel !== undefined
    ? { backend: 'llama.cpp', modelPath: f.refinerModel, threads }
    : undefined;
}
