// rl4qe eval: paired evaluation of query refinement. The same problems through the same fixed
// generator with the original query, the untrained refiner, trained adapters (or run
// directories) and a prompt-search baseline; bootstrap intervals, W/T/L and McNemar against the
// original query; eval.json, eval.md and report.html in --out. Flags become EvalOptions here; the
// work is in src/eval.
import type { Command } from 'commander';
import path from 'node:path';
import { ConfigError } from '../../util/errors.js';
import { parseGeneratorConfig, type GeneratorConfig } from '../../generators/index.js';
import {
  evaluate,
  renderMarkdown,
  writeEvalOutputs,
  type ArmSpec,
  type EvalOptions,
  type EvalResult,
} from '../../eval/index.js';
import type { GeneratorFormat, GeneratorInput, RefinerFormat } from '../../data/index.js';
import { addDeprecatedAliases, type DeprecatedAlias } from '../aliases.js';
import {
  addGeneratorOptions,
  generatorFromFlags,
  oneOfFlag,
  parseFlagsConfig,
  readJsonFile,
  weightsFlag,
  type GeneratorFlags,
} from '../flags.js';
import { cliProgress } from '../progress.js';

export interface EvalFlags extends GeneratorFlags {
  refinerModel?: string;
  refinerWeights?: string;
  refinerFormat?: string;
  refinerMaxTokens?: string;
  refinerMaxPromptTokens?: string;
  /** Trained refiners: PEFT adapter or run directories, one arm each. */
  refinerAdapter?: string[];
  overlong?: string;
  schedule?: string;
  /** The generator as a config file, instead of the generator flags. */
  config?: string;
  generatorInput?: string;
  generatorFormat?: string;
  dataset: string;
  dataPath?: string;
  split: string;
  limit?: string;
  arms?: string;
  maxTokens?: string;
  samples?: string;
  temperature?: string;
  seed?: string;
  exec: string;
  searchSize?: string;
  checkpoint: string;
  resamples?: string;
  out?: string;
  cache: boolean;
  cacheFile?: string;
  json?: boolean;
  quiet?: boolean;
}

const ARM_NAMES = ['original', 'untrained', 'adapter', 'prompt-search'] as const;

const oneOf = oneOfFlag;

function int(flag: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`${flag} must be an integer ≥ ${min}`, { where: flag, found: v });
  return n;
}

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new ConfigError(`${flag} must be a number ≥ 0`, { where: flag, found: v });
  return n;
}

/** eval's old names (0.1.0): the generator by the scheme's flags, adapters as the refiner's. */
const EVAL_ALIASES: readonly DeprecatedAlias[] = [
  { flags: '--refiner <model>', use: '--refiner-model <model>', to: (v) => ({ refinerModel: v }) },
  {
    flags: '--adapter <dir>',
    use: '--refiner-adapter <dir>',
    to: (v) => ({ refinerAdapter: v }),
    repeatable: true,
  },
  { flags: '--generator-config <file>', use: '--config <file>', to: (v) => ({ config: v }) },
  {
    flags: '--generator-local <model>',
    use: '--backend local --model <model>',
    to: (v) => ({ backend: 'local', model: v }),
  },
  { flags: '--generator-weights <kind>', use: '--weights <mode>', to: (v) => ({ weights: v }) },
];

function generatorFrom(f: EvalFlags): GeneratorConfig {
  const fromFlags = generatorFromFlags(f, { checkPaths: false });
  if ((f.config === undefined) === (fromFlags === undefined))
    throw new ConfigError('give exactly one generator', {
      where: '--config / --backend',
      expected: '--config gen.json, or --backend local --model MODEL.gguf (or openai, llama.cpp)',
      found: f.config !== undefined ? 'both' : 'neither',
      hint: 'the generator is the fixed code model every arm is evaluated with (docs/eval.md)',
    });
  if (f.config !== undefined)
    return parseGeneratorConfig(
      readJsonFile(f.config, 'generator config'),
      `${f.config}: generator`,
    );
  return parseFlagsConfig(fromFlags!);
}

/** --arms original,untrained,adapter,prompt-search ('adapter' = every --adapter given). */
export function armsFrom(f: Pick<EvalFlags, 'arms' | 'refinerAdapter'>): ArmSpec[] {
  const adapters = f.refinerAdapter ?? [];
  const names =
    f.arms !== undefined
      ? f.arms
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
      : ['original', 'untrained', ...(adapters.length > 0 ? ['adapter'] : []), 'prompt-search'];
  const out: ArmSpec[] = [];
  for (const n of names) {
    const kind = oneOf('--arms', n, ARM_NAMES);
    if (kind === 'adapter') {
      if (adapters.length === 0)
        throw new ConfigError("arm 'adapter' needs --refiner-adapter", {
          where: '--arms',
          hint: 'pass --refiner-adapter DIR (a PEFT adapter or a run directory), once per adapter',
        });
      for (const p of adapters) out.push({ kind: 'adapter', path: p });
    } else out.push({ kind });
  }
  if (adapters.length > 0 && !names.includes('adapter'))
    throw new ConfigError('--refiner-adapter given but --arms has no adapter arm', {
      where: '--arms',
      found: f.arms,
      hint: "add 'adapter' to --arms",
    });
  return out;
}

/** Flags → EvalOptions (validated; nothing runs). */
export function evalOptionsFrom(f: EvalFlags, log?: (line: string) => void): EvalOptions {
  if (f.refinerModel === undefined)
    throw new ConfigError('--refiner-model is required', {
      where: '--refiner-model',
      expected: 'the refiner base model: a GGUF file or a Hugging Face directory',
    });
  // auto: quantized for a GGUF file, float32 for a Hugging Face directory (generators/local.ts).
  const refinerWeights = weightsFlag('--refiner-weights', f.refinerWeights) ?? 'auto';
  const split = oneOf('--split', f.split, ['test', 'val', 'validation'] as const);
  const o: EvalOptions = {
    dataset: f.dataset,
    split: split === 'test' ? 'test' : 'validation',
    refiner: {
      model: f.refinerModel,
      weights: refinerWeights,
      ...(f.refinerFormat !== undefined
        ? {
            format: oneOf<RefinerFormat>('--refiner-format', f.refinerFormat, [
              'paper',
              'paper-chat',
              'chat',
              'chat-ds1000',
            ]),
          }
        : {}),
      ...(f.refinerMaxTokens !== undefined
        ? { maxTokens: int('--refiner-max-tokens', f.refinerMaxTokens) }
        : {}),
      ...(f.refinerMaxPromptTokens !== undefined
        ? { maxPromptTokens: int('--refiner-max-prompt-tokens', f.refinerMaxPromptTokens) }
        : {}),
      ...(f.overlong !== undefined
        ? { overlong: oneOf('--overlong', f.overlong, ['truncate-middle', 'skip'] as const) }
        : {}),
    },
    generator: generatorFrom(f),
    arms: armsFrom(f),
    exec: oneOf('--exec', f.exec, ['auto', 'on', 'off'] as const),
    checkpoint: oneOf('--checkpoint', f.checkpoint, ['best', 'latest'] as const),
    cache: f.cache ? (f.cacheFile ?? undefined) : false,
  };
  if (o.cache === undefined) delete o.cache;
  if (f.dataPath !== undefined) o.dataPath = f.dataPath;
  if (f.limit !== undefined) o.limit = int('--limit', f.limit);
  if (f.generatorInput !== undefined)
    o.generatorInput = oneOf<GeneratorInput>('--generator-input', f.generatorInput, [
      'refined',
      'original+refined',
    ]);
  if (f.generatorFormat !== undefined)
    o.generatorFormat = oneOf<GeneratorFormat>('--generator-format', f.generatorFormat, [
      'paper',
      'chat',
      'ds1000-completion',
    ]);
  if (f.maxTokens !== undefined) o.maxTokens = int('--max-tokens', f.maxTokens);
  if (f.samples !== undefined) o.samples = int('--samples', f.samples);
  if (f.temperature !== undefined) o.temperature = num('--temperature', f.temperature);
  if (f.seed !== undefined) o.seed = int('--seed', f.seed, 0);
  if (f.searchSize !== undefined) o.searchSize = int('--search-size', f.searchSize);
  if (f.resamples !== undefined) o.bootstrapResamples = int('--resamples', f.resamples);
  if (f.schedule !== undefined)
    o.schedule = oneOf('--schedule', f.schedule, ['pipelined', 'sequential'] as const);
  if (log) o.log = log;
  return o;
}

function defaultOutDir(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return path.join('runs', `eval-${t}`);
}

/** Runs `rl4qe eval` with parsed flags: evaluates, writes the outputs, prints the table. */
export async function evalCommand(
  f: EvalFlags,
  io: { stdout?: (s: string) => void; stderr?: (s: string) => void } = {},
): Promise<{ result: EvalResult; outDir: string }> {
  const stdout = io.stdout ?? ((s: string): void => void process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string): void => void process.stderr.write(s));
  const progress = cliProgress('eval', { json: f.json, quiet: f.quiet, stderr });
  const opts = evalOptionsFrom(f, f.quiet ? undefined : (l) => progress(l));
  const outDir = f.out ?? defaultOutDir();
  const result = await evaluate(opts);
  const files = await writeEvalOutputs(result, outDir);
  if (f.json)
    stdout(
      JSON.stringify({
        out: files,
        settings: result.settings,
        summaries: result.summaries,
        comparisons: result.comparisons,
        calls: result.calls,
      }) + '\n',
    );
  else stdout(renderMarkdown(result));
  progress(`wrote ${files.json}, ${files.markdown} and ${files.html}`, { files });
  return { result, outDir };
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'paired evaluation: original query vs untrained refiner vs adapters vs prompt search, with bootstrap intervals',
    )
    .option(
      '--refiner-model <model>',
      'refiner base model (GGUF file or Hugging Face directory); required',
    )
    .option(
      '--refiner-weights <mode>',
      'auto (default: quantized for a GGUF file, float32 for a Hugging Face directory) | float32 | quantized',
    )
    .option(
      '--refiner-adapter <dir>',
      'a trained refiner: a PEFT adapter directory or a run directory (repeatable)',
      collect,
    )
    .option(
      '--refiner-format <format>',
      "refiner prompt: paper | paper-chat | chat | chat-ds1000 (default: the run's, else paper)",
    )
    .option(
      '--refiner-max-tokens <n>',
      "longest rewrite in tokens (default: the run's rollout.maxNewTokens, else 128)",
    )
    .option(
      '--refiner-max-prompt-tokens <n>',
      "longest refiner prompt; longer queries lose their middle (default: the run's refiner.maxPromptTokens, else 512)",
    )
    .option(
      '--overlong <mode>',
      "an over-long refiner prompt: truncate-middle | skip (default: the run's refiner.overlong, else truncate-middle)",
    )
    .option(
      '--config <file>',
      'generator config JSON (backend openai | llama.cpp | local) instead of the generator flags',
    );
  addGeneratorOptions(cmd, {
    openaiLimits: true,
    threads: true,
    defaultNote: 'give --config or --backend',
  });
  cmd
    .option(
      '--generator-input <input>',
      "what the generator sees: refined | original+refined (default: the run's, else refined)",
    )
    .option(
      '--generator-format <format>',
      "generator prompt: paper | chat | ds1000-completion (default: the run's, else paper)",
    )
    .option('--checkpoint <which>', "a run directory's checkpoint: best | latest", 'best')
    .option('--dataset <name>', 'ds1000 | humaneval | mbpp | custom', 'ds1000')
    .option('--data-path <file>', 'a local .jsonl/.jsonl.gz instead of data/')
    .option(
      '--split <name>',
      "test | val (the run's split, else the default leak-free split)",
      'test',
    )
    .option('--limit <n>', 'the first N problems of the split')
    .option('--arms <list>', 'comma list of original, untrained, adapter, prompt-search')
    .option('--max-tokens <n>', 'generator maxTokens (default 256)')
    .option('--samples <k>', 'generator samples per problem (k > 1: pass@k; default 1, greedy)')
    .option('--temperature <t>', 'generator temperature (default 0, or 0.8 with --samples > 1)')
    .option('--seed <n>', 'seed of the samples and of the bootstrap (default 0)')
    .option('--exec <mode>', 'run the tests: auto | on | off', 'auto')
    .option('--search-size <n>', 'training-split problems for the prompt search (default 10)')
    .option('--resamples <n>', 'bootstrap resamples (default 2000)')
    .option(
      '--schedule <mode>',
      'pipelined (default: tests run while later problems generate) | sequential (same results)',
    )
    .option('--out <dir>', 'output directory (default runs/eval-<time>)')
    .option('--cache-file <file>', 'generator cache file (default: the shared cache)')
    .option('--no-cache', 'neither read nor write the cache')
    .option(
      '--json',
      'print the summaries and comparisons as one JSON line on stdout instead of Markdown; progress as JSON lines',
    )
    .option('--quiet', 'no progress lines')
    .action(async (f: EvalFlags) => {
      await evalCommand(f);
    });
  addDeprecatedAliases(cmd, EVAL_ALIASES);
}
