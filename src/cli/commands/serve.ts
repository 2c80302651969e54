// rl4qe serve: an OpenAI-compatible service that refines the last user message, then generates.
// With no arguments: both refiner and generator on the default offline GGUF through llama.cpp,
// on http://127.0.0.1:8431 (DEFAULT_SERVE_PORT; not llama-server's 8080). Flags map to generator
// configs in cli/flags.ts, shared with `rl4qe generate`.
import type { Command } from 'commander';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.js';
import { parseGeneratorConfig, type GeneratorConfig } from '../../generators/index.js';
import { DEFAULT_SERVE_PORT, buildServeStack, startServer } from '../../serve/index.js';
import { addDeprecatedAliases, type DeprecatedAlias } from '../aliases.js';
import {
  SERVE_BATCH_WAIT,
  SERVE_GENERATOR_ALIASES,
  SERVE_REFINER_ALIASES,
  addGeneratorOptions,
  backendOf,
  durationFlag,
  generatorFromFlags,
  intFlag,
  intFlagDefault,
  msAsDuration,
  parseFlagsConfig,
  readJsonFile,
  refinerFlagOf,
  refinerFromFlags,
  type GeneratorFlags,
  type RefinerFlags,
} from '../flags.js';

interface ServeFlags extends RefinerFlags, GeneratorFlags {
  host: string;
  port: string;
  config?: string;
  batchWait?: string;
  refinerFormat?: string;
  concurrency: string;
  timeout: string;
  maxBodyBytes: string;
  tokenEnv?: string;
  modelId: string;
  cache: boolean;
  refinerMaxTokens: string;
}

/** serve's own old names (0.1.0); the generator's are in cli/flags.ts. */
const SERVE_ALIASES: readonly DeprecatedAlias[] = [
  ...SERVE_GENERATOR_ALIASES,
  ...SERVE_REFINER_ALIASES,
  {
    flags: '--refine-format <format>',
    use: '--refiner-format <format>',
    to: (v) => ({ refinerFormat: v }),
  },
  {
    flags: '--refine-max-tokens <n>',
    use: '--refiner-max-tokens <n>',
    to: (v) => ({ refinerMaxTokens: v }),
  },
  { flags: '--max-concurrent <n>', use: '--concurrency <n>', to: (v) => ({ concurrency: v }) },
  {
    flags: '--timeout-ms <ms>',
    use: '--timeout <duration>',
    to: (v) => ({ timeout: msAsDuration(v) }),
  },
];

const REFINER_FORMATS = ['paper', 'paper-chat', 'chat', 'chat-ds1000'] as const;

const fileSchema = z
  .object({
    generator: z.unknown().optional(),
    refiner: z.unknown().optional(),
    refinePrompt: z.string().optional(),
    refineFormat: z.enum(REFINER_FORMATS).optional(),
  })
  .strict();

function readServeConfig(file: string): z.infer<typeof fileSchema> {
  const r = fileSchema.safeParse(readJsonFile(file, 'serve config'));
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new ConfigError(`invalid serve config: ${issue?.message ?? 'invalid'}`, {
    where: `${file}: ${issue?.path.join('.') || '(root)'}`,
    expected: '{generator?, refiner?, refinePrompt?, refineFormat?}',
  });
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'serve refine-then-generate over HTTP (OpenAI-compatible /v1/chat/completions, /v1/refine)',
    )
    .option(
      '--host <host>',
      'address to bind (other machines can connect only if you change it)',
      '127.0.0.1',
    )
    .option('--port <port>', 'port (0 = any free port)', String(DEFAULT_SERVE_PORT))
    .option(
      '--config <file>',
      'JSON file {generator, refiner, refinePrompt, refineFormat} with generator configs (flags override it)',
    );
  addGeneratorOptions(cmd, {
    batchWait: true,
    defaultNote: 'llama.cpp on the offline test model',
  });
  cmd
    .option(
      '--refiner-backend <backend>',
      "refiner backend: 'llama.cpp' (default) or 'local' (rl4qe's own engine, for trained LoRA adapters)",
      'llama.cpp',
    )
    .option(
      '--refiner-model <path>',
      'refiner model: a GGUF file, or (local) a Hugging Face model directory (default: the generator; local: the offline test model)',
    )
    .option(
      '--refiner-adapter <path>',
      'LoRA adapter: a PEFT directory (adapter_config.json + adapter_model.safetensors) or a GGUF LoRA file (rl4qe export); a merged export is a --refiner-model; needs --refiner-backend local',
    )
    .option(
      '--refiner-tokenizer <path>',
      "local refiner tokenizer: directory with tokenizer.json or a GGUF (default: the model's)",
    )
    .option('--refiner-context-size <n>', 'local refiner: longest prompt + refinement in tokens')
    .option(
      '--refiner-weights <mode>',
      'local refiner: auto (default: quantized for a GGUF file, float32 for a Hugging Face directory) | float32 | quantized',
    )
    .option(
      '--refiner-in-process',
      'local refiner: decode on the main thread instead of a worker thread (the server then answers nothing else while it refines)',
    )
    .option(
      '--refiner-format <format>',
      `prompt the refiner as training did: ${REFINER_FORMATS.join(' | ')} (default: a refine system prompt)`,
    )
    .option('--refiner-max-tokens <n>', 'longest refinement', '256')
    .option('--threads <n>', 'llama.cpp and local engine CPU threads (generator and refiner)')
    .option('--concurrency <n>', 'requests handled at once; more get 429', '16')
    .option('--timeout <duration>', 'per-request deadline (refine + generate), e.g. 30s, 2m', '2m')
    .option('--max-body-bytes <n>', 'largest accepted request body', String(1 << 20))
    .option('--token-env <NAME>', 'require Authorization: Bearer $NAME on /v1/*')
    .option('--model-id <id>', 'model id clients send and /v1/models lists', 'rl4qe')
    .option('--no-cache', 'do not cache refinements and answers on disk')
    .action(async (f: ServeFlags) => {
      const fileCfg = f.config !== undefined ? readServeConfig(f.config) : {};
      const backend = backendOf(f);
      if (f.batchWait !== undefined && backend !== 'local' && f.refinerBackend !== 'local')
        throw new ConfigError('--batch-wait needs --backend local or --refiner-backend local', {
          where: '--batch-wait',
          hint: "it tunes rl4qe's own engine's decode queue",
        });
      // Flags override the file's generator and refiner.
      const fromFlags = generatorFromFlags({
        ...f,
        // Without --backend these tune serve's default llama.cpp stack (buildServeStack).
        threads: backend !== undefined ? f.threads : undefined,
        batchSize: backend !== undefined ? f.batchSize : undefined,
        // serve's --timeout and --concurrency are the server's own (deadline, admission).
        timeout: undefined,
        concurrency: undefined,
        // The serve default: concurrent requests meet in one batch (SERVE_BATCH_WAIT).
        batchWait: backend === 'local' ? (f.batchWait ?? SERVE_BATCH_WAIT) : undefined,
        worker: true,
      });
      const generator: GeneratorConfig | undefined =
        fromFlags !== undefined
          ? parseFlagsConfig(fromFlags)
          : fileCfg.generator !== undefined
            ? parseGeneratorConfig(fileCfg.generator, `${f.config}: generator`)
            : undefined;
      const refinerCfg = refinerFromFlags(f);
      const refiner: GeneratorConfig | undefined =
        refinerCfg !== undefined
          ? parseFlagsConfig(refinerCfg, refinerFlagOf)
          : fileCfg.refiner !== undefined
            ? parseGeneratorConfig(fileCfg.refiner, `${f.config}: refiner`)
            : undefined;
      const refineFormat = f.refinerFormat ?? fileCfg.refineFormat;
      const format = REFINER_FORMATS.find((x) => x === refineFormat);
      if (refineFormat !== undefined && format === undefined)
        throw new ConfigError(`--refiner-format must be one of ${REFINER_FORMATS.join(', ')}`, {
          where: '--refiner-format',
          found: refineFormat,
        });
      let bearerToken: string | undefined;
      if (f.tokenEnv) {
        bearerToken = process.env[f.tokenEnv];
        if (!bearerToken)
          throw new ConfigError(`--token-env ${f.tokenEnv}: the variable is not set`, {
            hint: `export ${f.tokenEnv}=<a secret> or drop --token-env`,
          });
      }
      const stack = buildServeStack({
        generator,
        refiner,
        refinePrompt: fileCfg.refinePrompt,
        refineFormat: format,
        refineParams: { maxTokens: intFlagDefault('--refiner-max-tokens', f.refinerMaxTokens, 1) },
        cache: f.cache,
        threads: intFlag('--threads', f.threads, 1),
        sequences: backend === undefined ? intFlag('--batch-size', f.batchSize, 1) : undefined,
      });
      const server = await startServer({
        ...stack,
        host: f.host,
        port: intFlagDefault('--port', f.port, 0),
        maxConcurrent: intFlagDefault('--concurrency', f.concurrency, 1),
        requestTimeoutMs: Math.max(1, Math.round(durationFlag('--timeout', f.timeout) ?? 0)),
        maxBodyBytes: intFlagDefault('--max-body-bytes', f.maxBodyBytes, 1),
        modelId: f.modelId,
        bearerToken,
      });
      process.stdout.write(`rl4qe serve: listening on ${server.url}\n`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        // The handlers stay installed while shutting down: removing them would restore the
        // default action, and a second signal would then kill the process mid-cleanup.
        const stop = (): void => {
          if (stopping) return;
          stopping = true;
          // Keep the event loop alive until the models are freed (close() awaits native work
          // that holds no handle of its own).
          const keep = setInterval(() => {}, 1000);
          const done = (): void => {
            clearInterval(keep);
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          server.close().then(done, done);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
  addDeprecatedAliases(cmd, SERVE_ALIASES);
}
