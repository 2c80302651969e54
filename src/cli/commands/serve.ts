// rl4qe serve: an OpenAI-compatible service that refines the last user message, then generates.
// With no arguments: both refiner and generator on the default offline GGUF through llama.cpp,
// on http://127.0.0.1:8080.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.js';
import {
  defaultGgufPath,
  parseGeneratorConfig,
  type GeneratorConfig,
} from '../../generators/index.js';
import { buildServeStack, startServer } from '../../serve/index.js';

interface ServeFlags {
  host: string;
  port: string;
  config?: string;
  generatorUrl?: string;
  generatorModel?: string;
  apiKeyEnv?: string;
  gguf?: string;
  refinerGguf?: string;
  refinerBackend: string;
  refinerModel?: string;
  refinerAdapter?: string;
  refinerTokenizer?: string;
  refinerContextSize?: string;
  refinerWeights?: string;
  refineFormat?: string;
  refinerInProcess?: boolean;
  threads?: string;
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

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`--${name} must be an integer >= ${min}`, {
      where: `--${name}`,
      found: v,
    });
  return n;
}

function weightsFlag(v: string | undefined): 'float32' | 'quantized' | undefined {
  if (v === undefined || v === 'float32' || v === 'quantized') return v;
  throw new ConfigError("--refiner-weights must be 'float32' or 'quantized'", {
    where: '--refiner-weights',
    found: v,
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
    .option('--port <port>', 'port (0 = any free port)', '8080')
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
      let fileCfg: z.infer<typeof fileSchema> = {};
      if (f.config) {
        let raw: unknown;
        try {
          raw = JSON.parse(readFileSync(f.config, 'utf8'));
        } catch (err) {
          throw new ConfigError('cannot read the serve config', {
            where: f.config,
            found: err instanceof Error ? err.message : String(err),
          });
        }
        const r = fileSchema.safeParse(raw);
        if (!r.success)
          throw new ConfigError(`invalid serve config: ${r.error.issues[0]!.message}`, {
            where: `${f.config}: ${r.error.issues[0]!.path.join('.') || '(root)'}`,
            expected: '{generator?, refiner?, refinePrompt?, refineFormat?}',
          });
        fileCfg = r.data;
      }
      let generator: GeneratorConfig | undefined = fileCfg.generator
        ? parseGeneratorConfig(fileCfg.generator, `${f.config}: generator`)
        : undefined;
      let refiner: GeneratorConfig | undefined = fileCfg.refiner
        ? parseGeneratorConfig(fileCfg.refiner, `${f.config}: refiner`)
        : undefined;
      const threads = f.threads !== undefined ? int('threads', f.threads, 1) : undefined;
      if (f.generatorUrl) {
        if (!f.generatorModel)
          throw new ConfigError('--generator-url needs --generator-model', {
            where: '--generator-model',
          });
        generator = {
          backend: 'openai',
          baseUrl: f.generatorUrl,
          model: f.generatorModel,
          apiKeyEnv: f.apiKeyEnv,
        };
      } else if (f.gguf)
        generator = {
          backend: 'llama.cpp',
          modelPath: f.gguf,
          threads,
          sequences: int('sequences', f.sequences, 1),
        };
      if (f.refinerBackend !== 'llama.cpp' && f.refinerBackend !== 'local')
        throw new ConfigError("--refiner-backend must be 'llama.cpp' or 'local'", {
          where: '--refiner-backend',
          found: f.refinerBackend,
        });
      if (f.refinerGguf && f.refinerModel)
        throw new ConfigError('give one of --refiner-gguf and --refiner-model', {
          where: '--refiner-model',
        });
      const refinerPath = f.refinerModel ?? f.refinerGguf;
      if (f.refinerBackend === 'local') {
        refiner = {
          backend: 'local',
          model: refinerPath ?? defaultGgufPath(),
          adapter: f.refinerAdapter,
          tokenizer: f.refinerTokenizer,
          contextSize:
            f.refinerContextSize !== undefined
              ? int('refiner-context-size', f.refinerContextSize, 1)
              : undefined,
          weights: weightsFlag(f.refinerWeights),
          threads,
          // A worker thread keeps the server responsive (health, 429s, deadlines) while it decodes.
          worker: f.refinerInProcess !== true,
        };
      } else {
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
        if (refinerPath) refiner = { backend: 'llama.cpp', modelPath: refinerPath, threads };
      }
      const refineFormat = f.refineFormat ?? fileCfg.refineFormat;
      if (
        refineFormat !== undefined &&
        !(REFINER_FORMATS as readonly string[]).includes(refineFormat)
      )
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
        refineFormat: refineFormat as (typeof REFINER_FORMATS)[number] | undefined,
        refineParams: { maxTokens: int('refine-max-tokens', f.refineMaxTokens, 1) },
        cache: f.cache,
        threads,
        sequences: int('sequences', f.sequences, 1),
      });
      const server = await startServer({
        ...stack,
        host: f.host,
        port: int('port', f.port, 0),
        maxConcurrent: int('max-concurrent', f.maxConcurrent, 1),
        requestTimeoutMs: int('timeout-ms', f.timeoutMs, 1),
        maxBodyBytes: int('max-body-bytes', f.maxBodyBytes, 1),
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
