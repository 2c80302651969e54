// rl4qe generate REQUESTS.jsonl: send a batch of generation requests through a configured
// generator (cached), or with --dry-run estimate calls, tokens and cost without sending anything.
// Results are written as they finish (one JSON line each, in finishing order: match them by id),
// so a long run loses nothing already answered; the exit code says whether any request failed.
import type { Command } from 'commander';
import { createWriteStream, readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, FormatError } from '../../util/errors.js';
import {
  Budget,
  GenerationCache,
  cacheKey,
  createGenerator,
  estimateRequests,
  isUnseededSample,
  parseGeneratorConfig,
  summarizeResults,
  type GenerationRequest,
  type GenerationResult,
  type ParsedGeneratorConfig,
} from '../../generators/index.js';
import { generatorFromFlags, intFlagDefault, readJsonFile, type GeneratorFlags } from '../flags.js';

/** Exit code when every request was sent but some failed (their failures are in the output). */
export const EXIT_REQUESTS_FAILED = 5;

const requestSchema = z
  .object({
    id: z.string().min(1),
    system: z.string().optional(),
    messages: z
      .array(
        z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }).strict(),
      )
      .optional(),
    prompt: z.string().optional(),
    params: z
      .object({
        temperature: z.number().min(0),
        topP: z.number().gt(0).max(1),
        topK: z.number().int().positive(),
        maxTokens: z.number().int().positive(),
        seed: z.number().int(),
        stop: z.array(z.string()),
      })
      .partial()
      .strict()
      .optional(),
  })
  .strict();

/** Reads and validates a JSONL file of requests; errors name file:line and field. */
export function readRequests(file: string): GenerationRequest[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('cannot read the requests file', {
      where: file,
      found: (err as Error).message,
    });
  }
  const out: GenerationRequest[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new FormatError('line is not JSON', {
        where: `${file}:${i + 1}`,
        found: line.slice(0, 80),
      });
    }
    const r = requestSchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new FormatError(`invalid request: ${issue.message}`, {
        where: `${file}:${i + 1}: ${issue.path.join('.') || '(row)'}`,
        expected: '{id, system?, messages? | prompt?, params?}',
      });
    }
    out.push(r.data);
  });
  return out;
}

/** The generator flags (cli/flags.ts, one mapping for serve and generate) and generate's own. */
interface GenerateFlags extends GeneratorFlags {
  config?: string;
  out?: string;
  dryRun?: boolean;
  json?: boolean;
  budget?: string;
  defaultMaxTokens: string;
  cache: boolean;
}

function configFrom(f: GenerateFlags): ParsedGeneratorConfig {
  if (f.config)
    return parseGeneratorConfig(
      readJsonFile(f.config, 'generator config'),
      `${f.config}: generator`,
    );
  const cfg = generatorFromFlags(f, { url: '--url', model: '--model' });
  return parseGeneratorConfig(cfg ?? { backend: 'llama.cpp' }, 'flags');
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description(
      'run generation requests (JSONL) through a cached generator, or estimate them with --dry-run',
    )
    .argument('<requests>', 'JSONL file, one {id, system?, messages? | prompt?, params?} per line')
    .option('--config <file>', 'generator config JSON ({backend: openai | llama.cpp | local, ...})')
    .option('--url <baseUrl>', 'OpenAI-compatible server, e.g. https://api.deepseek.com/v1')
    .option('--model <name>', 'model on --url')
    .option('--api-key-env <NAME>', 'environment variable with the API key for --url')
    .option('--gguf <file>', 'GGUF through llama.cpp (default: the offline test model)')
    .option(
      '--local <model>',
      "rl4qe's own engine on a GGUF file or Hugging Face model directory (backend local)",
    )
    .option('--adapter <dir>', 'with --local: a PEFT LoRA adapter directory')
    .option(
      '--tokenizer <path>',
      "with --local: tokenizer.json directory or GGUF (default: the model's)",
    )
    .option('--context-size <n>', 'with --local: longest prompt + completion in tokens')
    .option(
      '--weights <kind>',
      "with --local GGUF: 'float32' (default) or 'quantized' (keep the file's blocks: less memory, faster decoding)",
    )
    .option('--max-batch-size <n>', 'with --local: requests decoded together (default 8)')
    .option('--out <file>', 'write one result per line here (default: stdout)')
    .option('--dry-run', 'estimate calls, tokens and cost; send nothing')
    .option('--json', 'print the dry-run estimate or the summary as one JSON line')
    .option('--budget <usd>', 'stop sending once this much is spent (needs a price for the model)')
    .option(
      '--default-max-tokens <n>',
      'maxTokens assumed by --dry-run for requests without one',
      '512',
    )
    .option('--no-cache', 'neither read nor write the generator cache')
    .action(async (file: string, f: GenerateFlags) => {
      const requests = readRequests(file);
      const cfg = configFrom(f);
      if (!f.cache) cfg.cache = { enabled: false };
      const budgetUsd = f.budget !== undefined ? Number(f.budget) : undefined;
      if (budgetUsd !== undefined && !(budgetUsd >= 0))
        throw new ConfigError('--budget must be a number of USD >= 0', { found: f.budget });
      if (f.dryRun) {
        const g = createGenerator({ ...cfg, cache: { enabled: false } });
        const cache = cfg.cache.enabled ? new GenerationCache({ file: cfg.cache.file }) : undefined;
        const model = cfg.backend === 'openai' ? cfg.model : g.identity.model;
        const e = estimateRequests(requests, {
          model,
          prices: cfg.backend === 'openai' ? cfg.prices : undefined,
          defaultMaxTokens: intFlagDefault('--default-max-tokens', f.defaultMaxTokens, 1),
          // An unseeded sample is never answered from the cache (it is always a fresh sample).
          isCached: cache
            ? (r) => !isUnseededSample(g.identity, r) && cache.has(cacheKey(g.identity, r))
            : undefined,
        });
        cache?.close();
        await g.dispose();
        if (f.json) process.stdout.write(JSON.stringify({ dryRun: true, model, ...e }) + '\n');
        else
          process.stdout.write(
            [
              `dry run: ${requests.length} requests to ${g.identity.backend} / ${model}`,
              `  answered by the cache  ${e.cachedCalls}`,
              `  calls to make          ${e.calls}`,
              `  prompt tokens (est.)   ${e.promptTokens}`,
              `  completion tokens max  ${e.maxCompletionTokens}`,
              e.price
                ? `  cost: at most $${e.maxCostUsd.toFixed(6)}, expected ~$${e.expectedCostUsd.toFixed(6)}`
                : `  cost: unknown (no price for '${model}' in the config's prices)`,
            ].join('\n') + '\n',
          );
        return;
      }
      const g = createGenerator(
        cfg,
        budgetUsd !== undefined ? { budget: new Budget(budgetUsd) } : {},
      );
      const sink = f.out ? createWriteStream(f.out) : process.stdout;
      const results: GenerationResult[] = [];
      try {
        // One call per request, all at once: each line is written when its answer is there. The
        // backends still batch (the local engine's queue) or limit concurrency (HTTP, llama.cpp).
        await Promise.all(
          requests.map(async (r) => {
            const [res] = await g.generate([r]);
            if (res === undefined) return;
            results.push(res);
            sink.write(JSON.stringify(res) + '\n');
          }),
        );
      } finally {
        await g.dispose();
        if (f.out)
          await new Promise<void>((res) => (sink as ReturnType<typeof createWriteStream>).end(res));
      }
      const s = summarizeResults(results);
      process.stderr.write(
        f.json
          ? JSON.stringify(s) + '\n'
          : `generated ${s.completions}/${results.length} (${s.cached} from cache), failures ${JSON.stringify(s.byKind)}, ` +
              `tokens ${s.promptTokens}+${s.completionTokens}, cost $${s.costUsd.toFixed(6)}\n`,
      );
      if (s.failures > 0) process.exitCode = EXIT_REQUESTS_FAILED;
    });
}
