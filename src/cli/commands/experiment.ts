// rl4qe experiment NAME: one of the paper's experiments (configs/experiments/NAME.yaml) — every
// variant trained with the same budget, every trained refiner evaluated against the original
// query with paired bootstrap intervals — into --out as results.json and results.md (the table,
// machine, wall time, seeds, models, commit), plus each run directory and each evaluation.
//   rl4qe experiment --list
//   rl4qe experiment reward-ablation [--quick] [--out DIR] [--set run.steps=100] [--only bleu,f1]
// The work is in src/eval/experiments.ts.
import path from 'node:path';
import type { Command } from 'commander';
import { parseSetFlags } from '../../train/config.js';
import {
  listExperiments,
  loadExperimentSpec,
  renderExperimentMarkdown,
  runExperiment,
  variantConfigs,
  type ExperimentResult,
} from '../../eval/experiments.js';
import { ConfigError } from '../../util/errors.js';
import { cliProgress } from '../progress.js';

export interface ExperimentFlags {
  quick?: boolean;
  out?: string;
  set: string[];
  only?: string;
  limit?: string;
  list?: boolean;
  dryRun?: boolean;
  cacheFile?: string;
  quiet?: boolean;
  json?: boolean;
}

function defaultOutDir(name: string, quick: boolean): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return path.join('runs', `experiment-${name}${quick ? '-quick' : ''}-${t}`);
}

/** The command that reproduces a run (for the record): the flags that change what runs. */
export function commandLine(name: string, f: ExperimentFlags, outDir: string): string {
  const q = (v: string): string =>
    /^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`;
  const parts = ['rl4qe', 'experiment', q(name)];
  if (f.quick) parts.push('--quick');
  for (const s of f.set) parts.push('--set', q(s));
  if (f.only !== undefined) parts.push('--only', q(f.only));
  if (f.limit !== undefined) parts.push('--limit', q(f.limit));
  parts.push('--out', q(outDir));
  return parts.join(' ');
}

/** Runs `rl4qe experiment` with parsed flags. */
export async function experimentCommand(
  name: string | undefined,
  f: ExperimentFlags,
  io: { stdout?: (s: string) => void; stderr?: (s: string) => void } = {},
): Promise<ExperimentResult | null> {
  const stdout = io.stdout ?? ((s: string): void => void process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string): void => void process.stderr.write(s));
  if (f.list || name === undefined) {
    for (const n of listExperiments()) {
      const { spec } = loadExperimentSpec(n);
      stdout(`${n.padEnd(16)} ${spec.title}\n`);
    }
    return null;
  }
  const { spec, file } = loadExperimentSpec(name);
  // Text on a terminal, JSON lines otherwise or with --json (cli/progress.ts).
  const progress = cliProgress('experiment', {
    json: f.json,
    quiet: f.quiet,
    stderr,
    ...(io.stderr ? { isTTY: false } : {}),
  });
  let limit: number | undefined;
  if (f.limit !== undefined) {
    limit = Number(f.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new ConfigError('--limit must be an integer ≥ 1', { where: '--limit', found: f.limit });
  }
  const outDir = f.out ?? defaultOutDir(spec.name, f.quick === true);
  const overrides = f.set.length > 0 ? parseSetFlags(f.set) : undefined;
  const only = f.only
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (f.dryRun) {
    // The resolved configuration of every variant: what would run, nothing loaded.
    const cfgs = variantConfigs({
      spec,
      specFile: file,
      quick: f.quick === true,
      outDir,
      ...(overrides ? { overrides } : {}),
      ...(only ? { only } : {}),
    });
    stdout(JSON.stringify(cfgs, null, 2) + '\n');
    return null;
  }
  const r = await runExperiment({
    spec,
    specFile: file,
    quick: f.quick === true,
    outDir,
    ...(overrides ? { overrides } : {}),
    ...(only ? { only } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(f.cacheFile !== undefined ? { cache: f.cacheFile } : {}),
    ...(f.quiet ? { progress: 'quiet' as const } : f.json ? { progress: 'json' as const } : {}),
    ...(f.quiet ? {} : { log: (l: string): void => progress(l) }),
    command: commandLine(name, f, outDir),
  });
  if (f.json) stdout(JSON.stringify({ out: path.resolve(outDir), evals: r.evals }) + '\n');
  else stdout(renderExperimentMarkdown(r));
  progress(
    `wrote ${path.join(path.resolve(outDir), 'results.json')} and results.md ` +
      `(${r.wallSeconds.toFixed(0)} s)`,
  );
  return r;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function registerExperiment(program: Command): void {
  program
    .command('experiment')
    .description(
      "run one of the paper's experiments (configs/experiments/): reward-ablation, lora-rank, " +
        'transfer, headline; a table with bootstrap intervals in --out/results.md',
    )
    .argument('[name]', 'experiment name (configs/experiments/NAME.yaml) or a YAML file')
    .option('--quick', 'a smoke run of the machinery (tiny sizes; not a result)')
    .option('--out <dir>', 'output directory (default runs/experiment-NAME-<time>)')
    .option(
      '-s, --set <key=value>',
      'override a trainer key in every variant, e.g. run.steps=100 (repeatable)',
      collect,
      [],
    )
    .option('--only <variants>', 'comma list of variants to run')
    .option('--limit <n>', "test problems per evaluation (default: the experiment's)")
    .option('--cache-file <file>', 'refiner/generator cache (default: OUT/cache.sqlite)')
    .option('--list', 'list the experiments')
    .option('--dry-run', 'print every variant’s resolved trainer configuration and exit')
    .option('--quiet', 'no progress output')
    .option(
      '--json',
      'print a JSON summary on stdout instead of Markdown; progress as JSON lines on stderr',
    )
    .action(async (name: string | undefined, f: ExperimentFlags) => {
      await experimentCommand(name, f);
    });
}
