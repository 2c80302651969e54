// rl4qe serve: an OpenAI-compatible service that refines the last user message, then generates.
// With no arguments: both refiner and generator on the default offline GGUF through llama.cpp,
// on http://127.0.0.1:8431 (DEFAULT_SERVE_PORT; not llama-server's 8080). Flags map to generator
// configs in cli/flags.ts, shared with `rl4qe generate`.
import type { Command } from 'commander';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.js';
import { parseGeneratorConfig, type GeneratorConfig } from '../../generators/index.js';
import { DEFAULT_SERVE_PORT, buildServeStack, startServer } from '../../serve/index.js';
import {
  generatorFromFlags,
  intFlag,
  intFlagDefault,
  readJsonFile,
  refinerFromFlags,
  SERVE_BATCH_WAIT_MS,
  type RefinerFlags,
} from '../flags.js';

interface ServeFlags extends RefinerFlags {
  host: string;
  port: string;
  config?: string;
  generatorUrl?: string;
  generatorModel?: string;
  apiKeyEnv?: string;
  gguf?: string;
  local?: string;
  contextSize?: string;
  weights?: string;
  maxBatchSize?: string;
  refineFormat?: string;
  sequences: string;
  maxConcurrent: string;
  timeoutMs: string;
  maxBodyBytes: string;
  tokenEnv?: string;
  modelId: string;
  cache: boolean;
  refineMaxTokens: string;
}

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
  program
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
      'JSON file {generator, refiner, refinePrompt, refineFormat} with generator configs',
    )
    .option(
      '--generator-url <url>',
      'answer with an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1',
    )
    .option('--generator-model <name>', 'model name on --generator-url')
    .option('--api-key-env <NAME>', 'environment variable holding the API key of --generator-url')
    .option(
      '--gguf <file>',
      'answer with this GGUF through llama.cpp (default: the offline test model)',
    )
    .option(
      '--local <model>',
      "answer with rl4qe's own engine on a GGUF file or Hugging Face model directory (in a worker thread; concurrent requests decode in shared batches)",
    )
    .option('--context-size <n>', 'with --local: longest prompt + completion in tokens')
    .option(
      '--weights <kind>',
      "with --local GGUF: 'float32' (default) or 'quantized' (keep the file's blocks)",
    )
    .option('--max-batch-size <n>', 'with --local: requests decoded together (default 8)')
    .option(
      '--batch-wait-ms <ms>',
      `local engine (--local, --refiner-backend local): wait up to this long for more requests before a batch that is not full (default ${SERVE_BATCH_WAIT_MS})`,
    )
    .option('--refiner-gguf <file>', 'refine with this GGUF (default: the generator)')
    .option(
      '--refiner-backend <backend>',
      "refiner backend: 'llama.cpp' (default) or 'local' (rl4qe's own engine, for trained LoRA adapters)",
      'llama.cpp',
    )
    .option(
      '--refiner-model <path>',
      'refiner model: a GGUF file, or (local) a Hugging Face model directory (default: the offline test model)',
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
      '--refiner-weights <kind>',
      "local GGUF refiner: 'float32' (default) or 'quantized' (keep the file's blocks: less memory, faster decoding)",
    )
    .option(
      '--refiner-in-process',
      'local refiner: decode on the main thread instead of a worker thread (the server then answers nothing else while it refines)',
    )
    .option(
      '--refine-format <format>',
      `prompt the refiner as training did: ${REFINER_FORMATS.join(' | ')} (default: a refine system prompt)`,
    )
    .option('--threads <n>', 'llama.cpp CPU threads')
    .option('--sequences <n>', 'llama.cpp requests decoded in parallel', '1')
    .option('--max-concurrent <n>', 'requests handled at once; more get 429', '16')
    .option('--timeout-ms <ms>', 'per-request deadline (refine + generate)', '120000')
    .option('--max-body-bytes <n>', 'largest accepted request body', String(1 << 20))
    .option('--token-env <NAME>', 'require Authorization: Bearer $NAME on /v1/*')
    .option('--model-id <id>', 'model id clients send and /v1/models lists', 'rl4qe')
    .option('--no-cache', 'do not cache refinements and answers on disk')
    .option('--refine-max-tokens <n>', 'longest refinement', '256')
    .action(async (f: ServeFlags) => {
      const fileCfg = f.config !== undefined ? readServeConfig(f.config) : {};
      if (f.batchWaitMs !== undefined && f.local === undefined && f.refinerBackend !== 'local')
        throw new ConfigError('--batch-wait-ms needs --local or --refiner-backend local', {
          where: '--batch-wait-ms',
          hint: "it tunes rl4qe's own engine's decode queue",
        });
      // Flags override the file's generator and refiner.
      const generator: GeneratorConfig | undefined =
        generatorFromFlags(
          {
            url: f.generatorUrl,
            model: f.generatorModel,
            apiKeyEnv: f.apiKeyEnv,
            gguf: f.gguf,
            threads: f.threads,
            sequences: f.sequences,
            local: f.local,
            contextSize: f.contextSize,
            weights: f.weights,
            maxBatchSize: f.maxBatchSize,
            batchWaitMs: f.local !== undefined ? (f.batchWaitMs ?? SERVE_BATCH_WAIT_MS) : undefined,
            worker: true,
          },
          { url: '--generator-url', model: '--generator-model' },
        ) ??
        (fileCfg.generator !== undefined
          ? parseGeneratorConfig(fileCfg.generator, `${f.config}: generator`)
          : undefined);
      const refiner: GeneratorConfig | undefined =
        refinerFromFlags(f) ??
        (fileCfg.refiner !== undefined
          ? parseGeneratorConfig(fileCfg.refiner, `${f.config}: refiner`)
          : undefined);
      const refineFormat = f.refineFormat ?? fileCfg.refineFormat;
      const format = REFINER_FORMATS.find((x) => x === refineFormat);
      if (refineFormat !== undefined && format === undefined)
        throw new ConfigError(`--refine-format must be one of ${REFINER_FORMATS.join(', ')}`, {
          where: '--refine-format',
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
        refineParams: { maxTokens: intFlagDefault('--refine-max-tokens', f.refineMaxTokens, 1) },
        cache: f.cache,
        threads: intFlag('--threads', f.threads, 1),
        sequences: intFlagDefault('--sequences', f.sequences, 1),
      });
      const server = await startServer({
        ...stack,
        host: f.host,
        port: intFlagDefault('--port', f.port, 0),
        maxConcurrent: intFlagDefault('--max-concurrent', f.maxConcurrent, 1),
        requestTimeoutMs: intFlagDefault('--timeout-ms', f.timeoutMs, 1),
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
}
