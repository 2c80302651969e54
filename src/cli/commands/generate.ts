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
  type Generator,
  type ParsedGeneratorConfig,
} from '../../generators/index.js';
import { addDeprecatedAliases } from '../aliases.js';
import { cliProgress, progressMode } from '../progress.js';
import {
  GENERATE_GENERATOR_ALIASES,
  addGeneratorOptions,
  generatorFromFlags,
  inFlagTerms,
  intFlagDefault,
  parseFlagsConfig,
  readJsonFile,
  type GeneratorFlags,
} from '../flags.js';

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
  if (f.config) {
    const named = GENERATOR_FLAG_NAMES.filter((k) => f[k] !== undefined);
    if (named.length > 0)
      throw new ConfigError(`give the generator by --config or by flags, not both`, {
        where: '--config',
        found: `--config and ${named.map(flagName).join(', ')}`,
      });
    return parseGeneratorConfig(
      readJsonFile(f.config, 'generator config'),
      `${f.config}: generator`,
    );
  }
  return parseFlagsConfig(generatorFromFlags(f) ?? { backend: 'llama.cpp' });
}

const GENERATOR_FLAG_NAMES = [
  'backend',
  'model',
  'revision',
  'baseUrl',
  'apiKeyEnv',
  'timeout',
  'concurrency',
  'batchSize',
  'adapter',
  'tokenizer',
  'contextSize',
  'weights',
] as const satisfies readonly (keyof GeneratorFlags)[];

const flagName = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description(
      'run generation requests (JSONL) through a cached generator, or estimate them with --dry-run',
    )
    .argument('<requests>', 'JSONL file, one {id, system?, messages? | prompt?, params?} per line')
    .option(
      '--config <file>',
      'generator config JSON ({backend: openai | llama.cpp | local, ...}) instead of the generator flags',
    );
  addGeneratorOptions(cmd, {
    openaiLimits: true,
    localAdapter: true,
    defaultNote: 'llama.cpp on the offline test model',
  });
  cmd
    .option('--out <file>', 'write one result per line here as it finishes (default: stdout)')
    .option('--dry-run', 'estimate calls, tokens and cost; send nothing')
    .option(
      '--json',
      'end stdout with the dry-run estimate or the summary as one JSON line (results stay JSON lines)',
    )
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
        throw new ConfigError('--budget must be a number of USD >= 0', {
          where: '--budget',
          found: f.budget,
        });
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
      // From flags, the generators' hints (which name config fields) are put in flag terms.
      const terms = f.config ? (t: string): string => t : inFlagTerms;
      let g: Generator;
      try {
        g = createGenerator(cfg, budgetUsd !== undefined ? { budget: new Budget(budgetUsd) } : {});
      } catch (err) {
        if (err instanceof Error) err.message = terms(err.message);
        throw err;
      }
      const sink = f.out ? createWriteStream(f.out) : process.stdout;
      const results: GenerationResult[] = [];
      // Progress on stderr (cli/progress.ts): a counter in place on a terminal, JSON lines else.
      const mode = progressMode({ json: f.json });
      const progress = cliProgress('generate', { json: f.json });
      const onResult = (res: GenerationResult): void => {
        if (mode === 'text')
          process.stderr.write(`\rrl4qe generate: ${results.length}/${requests.length} done`);
        else
          progress(`${results.length}/${requests.length} ${res.id}`, {
            done: results.length,
            total: requests.length,
            id: res.id,
            ok: res.ok,
            ...(res.ok ? {} : { kind: res.kind }),
          });
      };
      try {
        // One call per request, all at once: each line is written when its answer is there. The
        // backends still batch (the local engine's queue) or limit concurrency (HTTP, llama.cpp).
        await Promise.all(
          requests.map(async (r) => {
            const [got] = await g.generate([r]);
            if (got === undefined) return;
            const res: GenerationResult = got.ok
              ? got
              : {
                  ...got,
                  message: terms(got.message),
                  ...(got.hint !== undefined ? { hint: terms(got.hint) } : {}),
                };
            results.push(res);
            sink.write(JSON.stringify(res) + '\n');
            onResult(res);
          }),
        );
      } finally {
        await g.dispose();
        if (f.out)
          await new Promise<void>((res) => (sink as ReturnType<typeof createWriteStream>).end(res));
      }
      if (mode === 'text' && results.length > 0) process.stderr.write('\n');
      const s = summarizeResults(results);
      // --json: the summary is stdout's last line (after the results when they go to stdout).
      if (f.json) process.stdout.write(JSON.stringify(s) + '\n');
      else
        process.stderr.write(
          `generated ${s.completions}/${results.length} (${s.cached} from cache), failures ${JSON.stringify(s.byKind)}, ` +
            `tokens ${s.promptTokens}+${s.completionTokens}, cost $${s.costUsd.toFixed(6)}\n`,
        );
      if (s.failures > 0) process.exitCode = EXIT_REQUESTS_FAILED;
    });
  addDeprecatedAliases(cmd, GENERATE_GENERATOR_ALIASES);
}
