// The paper's experiments as data: a spec (configs/experiments/NAME.yaml) names training
// variants that differ in one thing (the reward, the LoRA rank, the refiner model, the split) on
// top of shared trainer layers; `runExperiment` trains each variant with the trainer, evaluates
// every trained refiner against the original query (and the untrained refiner) with the paired
// evaluation, and writes one table shaped like the paper's — a score per metric and its relative
// change with a bootstrap interval — plus what a reader needs to trust it: machine, wall times,
// seeds, models, commit. Nothing is extrapolated: a variant that was not trained or could not be
// evaluated is a row that says so.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import {
  configDigest,
  generatorBackendConfig,
  loadConfigFile,
  refinerWeights,
  resolveTrainConfig,
  type ConfigLayer,
  type TrainConfig,
} from '../train/config.js';
import { train } from '../train/trainer.js';
import { writeReport } from '../train/report.js';
import { checkpointDir } from '../train/checkpoint.js';
import type { ProgressMode } from '../train/progress.js';
import type { ValRecord } from '../train/records.js';
import { modelDigest, readJsonlRecords, METRICS_FILE } from '../train/run-dir.js';
import { nativeStatus } from '../backend/index.js';
import { ConfigError, FormatError, NotFoundError } from '../util/errors.js';
import { cpuLabel } from '../util/cpu-id.js';
import { evaluate, type ArmSpec, type EvalResult } from './evaluate.js';
import { writeEvalOutputs } from './report.js';
import type { MetricComparison } from './summary.js';

// ---------------------------------------------------------------------------------------------
// The spec.

const layerSchema = z.record(z.string(), z.unknown());

const variantSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, . _ -')
      .describe('Row name and run directory name'),
    label: z.string().min(1).optional().describe('Row label in the table (default: the name)'),
    train: layerSchema.default({}).describe('Trainer keys of this variant (over the shared ones)'),
    quick: layerSchema.default({}).describe('Extra keys of this variant under --quick'),
  })
  .strict();

const evalSpecSchema = z
  .object({
    limit: z.number().int().positive().default(20).describe('Test problems per evaluation'),
    quickLimit: z.number().int().positive().default(3).describe('Test problems under --quick'),
    maxTokens: z.number().int().positive().optional().describe('Generator maxTokens (eval)'),
    quickMaxTokens: z.number().int().positive().optional().describe('The same under --quick'),
    exec: z.enum(['auto', 'on', 'off']).default('auto').describe('Run the tests in the sandbox'),
    quickExec: z.enum(['auto', 'on', 'off']).default('off').describe('The same under --quick'),
    untrained: z.boolean().default(true).describe('Also evaluate the untrained refiner'),
    resamples: z.number().int().positive().default(2000).describe('Bootstrap resamples'),
    seed: z.number().int().min(0).default(0).describe('Bootstrap seed'),
  })
  .strict()
  .prefault({});

export const experimentSpecSchema = z
  .object({
    name: z.string().min(1),
    title: z.string().min(1),
    /** What the paper claims: printed above the table, so the reader can compare. */
    claim: z.string().min(1),
    /** The settings that match the paper (on a GPU), for the record. */
    paper: z.string().min(1),
    /** Trainer config files, lowest layers first (paths relative to the working directory). */
    base: z.array(z.string().min(1)).default([]),
    train: layerSchema.default({}),
    quick: layerSchema.default({}),
    variants: z.array(variantSchema).min(1),
    eval: evalSpecSchema,
  })
  .strict();

export type ExperimentSpec = z.output<typeof experimentSpecSchema>;

/** configs/experiments/ of this checkout (found from this file, so any working directory works). */
export function experimentsDir(): string {
  const here = path.dirname(new URL(import.meta.url).pathname);
  for (let d = here; d !== path.dirname(d); d = path.dirname(d)) {
    const c = path.join(d, 'configs', 'experiments');
    if (fs.existsSync(c)) return c;
  }
  return path.resolve('configs', 'experiments');
}

/** The experiments shipped in configs/experiments/. */
export function listExperiments(dir = experimentsDir()): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Reads and validates a spec: a name from configs/experiments/, or a path to a YAML file. */
export function loadExperimentSpec(nameOrFile: string): { spec: ExperimentSpec; file: string } {
  const dir = experimentsDir();
  const file =
    nameOrFile.endsWith('.yaml') || nameOrFile.includes('/')
      ? nameOrFile
      : path.join(dir, `${nameOrFile}.yaml`);
  if (!fs.existsSync(file))
    throw new NotFoundError('unknown experiment', {
      where: nameOrFile,
      expected: listExperiments(dir).join(' | ') || 'a YAML file in configs/experiments/',
      found: file,
    });
  let raw: unknown;
  try {
    raw = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('the experiment file is not valid YAML', {
      where: file,
      found: (e as Error).message,
    });
  }
  const r = experimentSpecSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ConfigError(i.message, { where: `${file} (${i.path.join('.')})` });
  }
  const names = r.data.variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new ConfigError('two variants share a name', { where: `${file} (variants)`, found: dup });
  return { spec: r.data, file };
}

// ---------------------------------------------------------------------------------------------
// The record: machine, commit.

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  native: string;
  /** Engine threads (RL4QE_THREADS / run.threads), when set. */
  threads?: string;
  /**
   * 1, 5 and 15 min load averages when the record was taken (at the end of a run): a wall time
   * measured on a shared machine is only comparable with its load beside it.
   */
  loadAverage: number[];
}

/** The machine, for a results record (typed; util/bench.ts machineInfo is the benchmarks'). */
export function machineRecord(): MachineInfo {
  const cpus = os.cpus();
  const n = nativeStatus();
  return {
    cpu: cpuLabel(),
    cores: cpus.length,
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    native: n.backend ? `native (${n.reason})` : `reference (${n.reason})`,
    ...(process.env.RL4QE_THREADS !== undefined ? { threads: process.env.RL4QE_THREADS } : {}),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** The checkout's commit, with "-dirty" when tracked files changed; null outside git. */
export function commitInfo(cwd = process.cwd()): string | null {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: 'pipe' })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      stdio: 'pipe',
    })
      .toString()
      .trim();
    return dirty.length > 0 ? `${head}-dirty` : head;
  } catch {
    return null;
  }
}

/** A model file the job needs, checked before any work, with how to get it. */
export function requireModelFile(file: string, what: string, hubRepo: string): void {
  if (fs.existsSync(file)) return;
  throw new NotFoundError(`${what} not found`, {
    where: file,
    hint:
      `offline test models: node scripts/fetch-test-models.mjs (writes ${path.dirname(file)}); ` +
      `on a connected machine: rl4qe pull ${hubRepo}, then pass the downloaded directory`,
  });
}

// ---------------------------------------------------------------------------------------------
// Running.

export interface ExperimentOptions {
  spec: ExperimentSpec;
  /** Where the spec came from (error messages, the record). */
  specFile?: string;
  quick?: boolean;
  outDir: string;
  /** A layer over every variant (the CLI's --set flags): scales the experiment up or down. */
  overrides?: Record<string, unknown>;
  /** Only these variants (default all). */
  only?: readonly string[];
  /** Test problems per evaluation, overriding the spec's. */
  limit?: number;
  /** Generator/refiner cache for the evaluations (default: one file in outDir); false: none. */
  cache?: string | false;
  progress?: ProgressMode;
  /** Progress lines of the runner and the evaluations. */
  log?: (line: string) => void;
  /** The command line, for the record. */
  command?: string;
}

export interface VariantRecord {
  name: string;
  label: string;
  runDir: string;
  configDigest: string;
  settings: {
    refiner: string;
    adapter: string;
    reward: Record<string, number | undefined>;
    split: string;
    steps: number;
    queriesPerStep: number;
    samplesPerQuery: number;
    maxNewTokens: number;
    lr: number;
    seed: number;
    trainTasks: number | null;
  };
  train: {
    status: 'trained' | 'reused' | 'failed';
    error?: string;
    steps: number;
    seconds: number;
    /** The trainer's validation records (greedy, validation split), first and last. */
    firstVal: ValRecord | null;
    lastVal: ValRecord | null;
  };
  eval: {
    status: 'evaluated' | 'not-evaluated';
    reason?: string;
    /** The eval group (directory name under outDir) and this variant's arm in it. */
    group?: string;
    arm?: string;
  };
}

export interface EvalGroupRecord {
  name: string;
  dir: string;
  refiner: string;
  refinerDigest: string;
  split: string;
  splitSource: string;
  problems: number;
  exec: boolean;
  execNote: string;
  generator: string;
  seconds: number;
  metrics: string[];
  /** Means per arm: arm → metric → mean. */
  means: Record<string, Record<string, number | null>>;
  /** Each arm against the original query. */
  comparisons: Record<string, MetricComparison[]>;
  calls: EvalResult['calls'];
}

export interface ExperimentResult {
  version: 1;
  experiment: string;
  title: string;
  claim: string;
  paper: string;
  specFile: string | null;
  quick: boolean;
  command: string | null;
  startedAt: string;
  endedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  commit: string | null;
  seeds: { train: number[]; bootstrap: number; resamples: number };
  models: { refiners: Record<string, string>; generator: string };
  variants: VariantRecord[];
  evals: EvalGroupRecord[];
}

/** Every variant's resolved trainer configuration, validated before anything runs. */
export function variantConfigs(
  o: Pick<ExperimentOptions, 'spec' | 'specFile' | 'quick' | 'outDir' | 'overrides' | 'only'>,
): { name: string; label: string; config: TrainConfig }[] {
  const src = o.specFile ?? o.spec.name;
  const variants =
    o.only && o.only.length > 0
      ? o.only.map((n) => {
          const v = o.spec.variants.find((x) => x.name === n);
          if (!v)
            throw new ConfigError('unknown variant', {
              where: '--only',
              expected: o.spec.variants.map((x) => x.name).join(' | '),
              found: n,
            });
          return v;
        })
      : o.spec.variants;
  return variants.map((v) => {
    const layers: ConfigLayer[] = [
      ...o.spec.base.map((f) => loadConfigFile(f)),
      { source: `${src} (train)`, value: o.spec.train },
      ...(o.quick ? [{ source: `${src} (quick)`, value: o.spec.quick }] : []),
      { source: `${src} (variants.${v.name}.train)`, value: v.train },
      ...(o.quick ? [{ source: `${src} (variants.${v.name}.quick)`, value: v.quick }] : []),
      ...(o.overrides ? [{ source: '--set', value: o.overrides }] : []),
      { source: 'experiment', value: { run: { dir: path.join(o.outDir, 'runs', v.name) } } },
    ];
    return { name: v.name, label: v.label ?? v.name, config: resolveTrainConfig(layers) };
  });
}

/** Variants evaluated together share the refiner, the generator and the split. */
function evalGroupKey(c: TrainConfig): string {
  return JSON.stringify({
    refiner: path.resolve(c.refiner.model),
    generator: generatorBackendConfig(c),
    input: c.generator.input,
    format: c.generator.format,
    data: {
      dataset: c.data.dataset,
      path: c.data.path,
      split: c.data.split,
      seed: c.run.seed,
      manifest: c.data.manifest,
      testSize: c.data.testSize,
      validationSize: c.data.validationSize,
    },
  });
}

function completedSteps(runDir: string): number | null {
  const latest = checkpointDir(runDir, 'latest');
  if (latest === undefined) return null;
  try {
    const st = JSON.parse(fs.readFileSync(path.join(latest, 'state.json'), 'utf8')) as {
      step?: unknown;
    };
    return typeof st.step === 'number' ? st.step : null;
  } catch {
    return null;
  }
}

function valRecords(runDir: string): ValRecord[] {
  const file = path.join(runDir, METRICS_FILE);
  if (!fs.existsSync(file)) return [];
  return readJsonlRecords<{ type?: string }>(file).records.filter(
    (r): r is ValRecord => r.type === 'val',
  );
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Trains every variant, evaluates the trained refiners, writes results.json and results.md. */
export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  // The code that runs is the checkout as it is now (a long run may outlive later commits).
  const commit = commitInfo();
  const log = o.log ?? ((): void => {});
  const spec = o.spec;
  const outDir = path.resolve(o.outDir);
  const configs = variantConfigs({ ...o, outDir });
  // Every model must be there before hours of work start.
  for (const { config: c } of configs) {
    requireModelFile(c.refiner.model, 'refiner model', 'HuggingFaceTB/SmolLM2-135M-Instruct');
    const g = generatorBackendConfig(c);
    if (g === undefined)
      throw new ConfigError('an experiment needs a generator to evaluate with', {
        where: `${o.specFile ?? spec.name} (generator.backend)`,
        hint: 'set generator.backend (e.g. local) in the spec’s train section',
      });
    if (g.backend === 'local')
      requireModelFile(g.model, 'generator model', 'Qwen/Qwen2.5-Coder-0.5B-Instruct');
  }
  fs.mkdirSync(outDir, { recursive: true });

  const variants: VariantRecord[] = [];
  for (const [i, { name, label, config: c }] of configs.entries()) {
    const runDir = path.resolve(c.run.dir);
    const rec: VariantRecord = {
      name,
      label,
      runDir,
      configDigest: configDigest(c),
      settings: {
        refiner: path.basename(c.refiner.model),
        adapter:
          c.adapter.kind === 'full'
            ? `full fine-tuning (${refinerWeights(c)})`
            : `LoRA r ${c.adapter.r} α ${c.adapter.alpha} on ${c.adapter.targets.join(',')}`,
        reward: { ...c.reward.weights },
        split: c.data.split,
        steps: c.run.steps,
        queriesPerStep: c.rollout.queriesPerStep,
        samplesPerQuery: c.rollout.samplesPerQuery,
        maxNewTokens: c.rollout.maxNewTokens,
        lr: c.optim.lr,
        seed: c.run.seed,
        trainTasks: c.data.trainLimit ?? null,
      },
      train: { status: 'failed', steps: 0, seconds: 0, firstVal: null, lastVal: null },
      eval: { status: 'not-evaluated' },
    };
    variants.push(rec);
    log(`variant ${i + 1}/${configs.length} ${name}: training (${c.run.steps} steps) in ${runDir}`);
    const tv = performance.now();
    try {
      const done = completedSteps(runDir);
      if (done !== null && done >= c.run.steps) {
        // A finished run from an earlier invocation: its config must be this one.
        const old = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as {
          run?: { dir?: string };
        };
        const oldCfg = resolveTrainConfig([
          { source: path.join(runDir, 'config.json'), value: old },
          { source: 'experiment', value: { run: { dir: c.run.dir } } },
        ]);
        if (configDigest(oldCfg) !== rec.configDigest)
          throw new ConfigError('the run directory holds a run of another configuration', {
            where: runDir,
            hint: 'choose another --out, or remove that run directory',
          });
        rec.train.status = 'reused';
        rec.train.steps = done;
        log(`variant ${name}: reusing the finished run (${done} steps)`);
      } else {
        const r = await train({
          config: c,
          resume: done !== null,
          ...(o.progress !== undefined ? { progress: o.progress } : {}),
        });
        writeReport(r.runDir);
        rec.train.status = 'trained';
        rec.train.steps = r.steps;
      }
    } catch (e) {
      // One variant failing (out of memory, a generator down) must not lose the others' rows.
      rec.train.error = errorText(e);
      // What it did reach, never more: the steps of its latest checkpoint.
      rec.train.steps = completedSteps(runDir) ?? 0;
      log(`variant ${name}: training failed: ${rec.train.error.split('\n')[0]}`);
    }
    rec.train.seconds = (performance.now() - tv) / 1000;
    const vals = valRecords(runDir);
    rec.train.firstVal = vals[0] ?? null;
    rec.train.lastVal = vals.length > 1 ? vals[vals.length - 1]! : null;
  }

  // Evaluate, one group per (refiner, generator, split): the original arm is the same problems
  // through the same generator for every variant of the group, so it runs once.
  const groups = new Map<string, { name: string; members: number[] }>();
  for (const [i, { config: c }] of configs.entries()) {
    const key = evalGroupKey(c);
    let g = groups.get(key);
    if (!g) {
      const base = `${path.basename(c.refiner.model).replace(/\.gguf$/, '')}-${c.data.split}`;
      let n = base;
      for (let j = 2; [...groups.values()].some((x) => x.name === n); j++) n = `${base}-${j}`;
      g = { name: n, members: [] };
      groups.set(key, g);
    }
    g.members.push(i);
  }
  const limit = o.limit ?? (o.quick ? spec.eval.quickLimit : spec.eval.limit);
  const maxTokens = o.quick
    ? (spec.eval.quickMaxTokens ?? spec.eval.maxTokens)
    : spec.eval.maxTokens;
  const evals: EvalGroupRecord[] = [];
  for (const g of groups.values()) {
    const members = g.members.filter((i) => {
      const v = variants[i]!;
      if (v.train.status === 'failed') {
        v.eval.reason = 'training failed';
        return false;
      }
      return true;
    });
    if (members.length === 0) continue;
    const c = configs[members[0]!]!.config;
    const arms: ArmSpec[] = [
      { kind: 'original' },
      ...(spec.eval.untrained ? [{ kind: 'untrained' } as const] : []),
      ...members.map((i): ArmSpec => ({
        kind: 'adapter',
        path: variants[i]!.runDir,
        name: variants[i]!.name,
      })),
    ];
    const dir = path.join(outDir, `eval-${g.name}`);
    log(`evaluating ${g.name}: ${arms.length} arms on ${limit} test problems → ${dir}`);
    const te = performance.now();
    try {
      const r = await evaluate({
        dataset: c.data.dataset,
        ...(c.data.path !== undefined ? { dataPath: c.data.path } : {}),
        split: 'test',
        limit,
        refiner: {
          model: c.refiner.model,
          weights: refinerWeights(c),
          ...(c.refiner.tokenizer !== undefined ? { tokenizer: c.refiner.tokenizer } : {}),
          ...(c.refiner.chatTemplate !== undefined ? { chatTemplate: c.refiner.chatTemplate } : {}),
        },
        generator: generatorBackendConfig(c)!,
        arms,
        exec: o.quick ? spec.eval.quickExec : spec.eval.exec,
        ...(maxTokens !== undefined ? { maxTokens } : {}),
        seed: spec.eval.seed,
        bootstrapResamples: spec.eval.resamples,
        cache: o.cache ?? path.join(outDir, 'cache.sqlite'),
        log: (l) => log(`eval ${g.name}: ${l}`),
      });
      await writeEvalOutputs(r, dir);
      const metrics = Object.keys(r.summaries[0]?.metrics ?? {});
      evals.push({
        name: g.name,
        dir,
        refiner: path.basename(c.refiner.model),
        refinerDigest: r.settings.refiner.digest,
        split: c.data.split,
        splitSource: r.settings.splitSource,
        problems: r.settings.tasks,
        exec: r.settings.exec,
        execNote: r.settings.execNote,
        generator: `${r.settings.generator.identity.backend} ${r.settings.generator.identity.model}`,
        seconds: (performance.now() - te) / 1000,
        metrics,
        means: Object.fromEntries(
          r.summaries.map((s) => [
            s.arm,
            Object.fromEntries(metrics.map((m) => [m, s.metrics[m]?.mean ?? null])),
          ]),
        ),
        comparisons: Object.fromEntries(r.comparisons.map((cmp) => [cmp.arm, cmp.metrics])),
        calls: r.calls,
      });
      for (const i of members) {
        variants[i]!.eval = { status: 'evaluated', group: g.name, arm: variants[i]!.name };
      }
    } catch (e) {
      const msg = errorText(e);
      log(`evaluating ${g.name} failed: ${msg.split('\n')[0]}`);
      for (const i of members) variants[i]!.eval.reason = `evaluation failed: ${msg}`;
    }
  }

  const refiners: Record<string, string> = {};
  for (const { config: c } of configs) {
    refiners[path.basename(c.refiner.model)] = fs.existsSync(c.refiner.model)
      ? modelDigest(c.refiner.model)
      : 'missing';
  }
  const g0 = generatorBackendConfig(configs[0]!.config)!;
  const result: ExperimentResult = {
    version: 1,
    experiment: spec.name,
    title: spec.title,
    claim: spec.claim,
    paper: spec.paper,
    specFile: o.specFile ?? null,
    quick: o.quick === true,
    command: o.command ?? null,
    startedAt,
    endedAt: new Date().toISOString(),
    wallSeconds: (performance.now() - t0) / 1000,
    machine: machineRecord(),
    commit,
    seeds: {
      train: [...new Set(configs.map((c) => c.config.run.seed))],
      bootstrap: spec.eval.seed,
      resamples: spec.eval.resamples,
    },
    models: {
      refiners,
      generator: `${g0.backend} ${'model' in g0 ? path.basename(g0.model) : ''}`.trim(),
    },
    variants,
    evals,
  };
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(result, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, 'results.md'), renderExperimentMarkdown(result));
  return result;
}

// ---------------------------------------------------------------------------------------------
// The table.

const f3 = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3);
const pct = (v: number): string => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`;

/** "0.412 +8.1% [−2.0%, +15.3%] ▲": the score, its relative change and interval vs original. */
export function scoreCell(mean: number | null, c: MetricComparison | undefined): string {
  if (!c) return f3(mean);
  const parts = [f3(mean)];
  if (c.rel !== null) {
    parts.push(c.relCi ? `${pct(c.rel)} [${pct(c.relCi.lo)}, ${pct(c.relCi.hi)}]` : pct(c.rel));
  } else if (c.diff !== null && c.diffCi !== null) {
    parts.push(
      `Δ ${c.diff >= 0 ? '+' : ''}${c.diff.toFixed(3)} [${f3(c.diffCi.lo)}, ${f3(c.diffCi.hi)}]`,
    );
  }
  if (c.diffCi && c.diffCi.lo > 0) parts.push('▲');
  else if (c.diffCi && c.diffCi.hi < 0) parts.push('▼');
  return parts.join(' ');
}

function mdTable(head: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Column labels as the paper prints them. */
export const METRIC_LABEL: Readonly<Record<string, string>> = {
  bleu: 'BLEU-4',
  rouge_l: 'ROUGE-L',
  f1: 'F1',
  overlap: 'Overlap',
  css: 'CSS',
};

function duration(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

export function renderExperimentMarkdown(r: ExperimentResult): string {
  const out: string[] = [];
  out.push(`# ${r.title}${r.quick ? ' (--quick smoke run: not a result)' : ''}`);
  out.push('');
  out.push(`**The paper:** ${r.claim}`);
  out.push('');
  out.push(
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGb} GB, ${r.machine.os}, ` +
      `Node ${r.machine.node}, ${r.machine.native}. Commit ${r.commit ?? 'unknown'}. ` +
      `${r.startedAt} → ${r.endedAt}, wall time ${duration(r.wallSeconds)}; load average ` +
      `(1/5/15 min) at the end ${r.machine.loadAverage.join(' / ')} on ${r.machine.cores} cores.` +
      (r.command ? ` Command: \`${r.command}\`.` : ''),
  );
  out.push('');
  out.push(
    `Models: refiner${Object.keys(r.models.refiners).length > 1 ? 's' : ''} ` +
      Object.entries(r.models.refiners)
        .map(([m, d]) => `${m} (digest ${d})`)
        .join(', ') +
      `; generator ${r.models.generator}. Seeds: training ${r.seeds.train.join(', ')}, ` +
      `bootstrap ${r.seeds.bootstrap} (${r.seeds.resamples} paired resamples, 95% percentile intervals).`,
  );
  for (const e of r.evals) {
    out.push('');
    out.push(
      `## Test split: ${e.split} (${e.problems} problems, refiner ${e.refiner}, ${e.generator})`,
    );
    out.push('');
    out.push(
      `Each cell: mean score, relative change vs the original query with its 95% interval; ` +
        `▲/▼ the interval of the difference excludes 0. Execution: ${e.exec ? 'on' : e.execNote}. ` +
        `Split from ${e.splitSource}. Evaluation ${duration(e.seconds)}; details in ` +
        `${path.basename(e.dir)}/ (eval.md, report.html).`,
    );
    out.push('');
    const rows: string[][] = [];
    const label = (arm: string): string => {
      const v = r.variants.find((x) => x.eval.group === e.name && x.eval.arm === arm);
      if (v) return v.label;
      return arm === 'original'
        ? 'original query'
        : arm === 'untrained'
          ? 'untrained refiner'
          : arm;
    };
    for (const arm of Object.keys(e.means)) {
      rows.push([
        label(arm),
        ...e.metrics.map((m) =>
          scoreCell(
            e.means[arm]![m] ?? null,
            e.comparisons[arm]?.find((c) => c.metric === m),
          ),
        ),
      ]);
    }
    out.push(mdTable(['', ...e.metrics.map((m) => METRIC_LABEL[m] ?? m)], rows));
  }
  out.push('');
  out.push('## Training');
  out.push('');
  out.push(
    mdTable(
      [
        'variant',
        'refiner',
        'adapter',
        'reward',
        'split',
        'steps',
        'queries × K × tokens',
        'lr',
        'train time',
        'validation (first → last)',
        'evaluated',
      ],
      r.variants.map((v) => {
        const s = v.settings;
        const val =
          v.train.firstVal !== null
            ? `${v.train.firstVal.metric} ${f3(v.train.firstVal.value)} → ${f3(v.train.lastVal?.value)}`
            : '–';
        return [
          v.label,
          s.refiner,
          s.adapter,
          Object.entries(s.reward)
            .map(([k, w]) => `${k} ${w}`)
            .join(' + '),
          s.split,
          `${v.train.steps}/${s.steps}`,
          `${s.queriesPerStep} × ${s.samplesPerQuery} × ${s.maxNewTokens}`,
          String(s.lr),
          v.train.status === 'failed'
            ? `failed: ${(v.train.error ?? '').split('\n')[0]}`
            : `${duration(v.train.seconds)}${v.train.status === 'reused' ? ' (reused run)' : ''}`,
          val,
          v.eval.status === 'evaluated' ? 'yes' : `no: ${(v.eval.reason ?? '').split('\n')[0]}`,
        ];
      }),
    ),
  );
  out.push('');
  out.push(`**Settings that match the paper (GPU):** ${r.paper}`);
  out.push('');
  return out.join('\n');
}
