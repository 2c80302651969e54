// rl4qe demo: the main job on an embedded default, from a fresh clone. It trains a query refiner
// (SmolLM2-135M-Instruct, quantised, LoRA) with REINFORCE against a fixed generator
// (Qwen2.5-Coder-0.5B-Instruct in rl4qe's own engine; SmolLM2 under --quick) on DS-1000's
// leak-free training split, then evaluates it on held-out test problems against the original
// query and the untrained refiner with the paired evaluation, prints the comparison with
// bootstrap intervals and says where the HTML reports are.
//   rl4qe demo                 about ten minutes on 2 cores
//   rl4qe demo --quick         about a minute: the smoke run CI affords
//   rl4qe demo --steps 40 --problems 50 --out runs/my-demo      scaled up
// Everything the demo writes is under --out: run/ (the training run directory, report.html),
// eval/ (eval.json, eval.md, report.html), cache.sqlite (every refiner and generator call) and
// demo.json (settings, machine, commit and wall times).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  refinerWeights,
  resolveTrainConfig,
  type TrainConfig,
  type TrainConfigInput,
} from '../../train/config.js';
import { addDeprecatedAliases, type DeprecatedAlias } from '../aliases.js';
import { weightsFlag, type WeightsMode } from '../flags.js';
import { cliProgress } from '../progress.js';
import { train } from '../../train/trainer.js';
import { writeReport } from '../../train/report.js';
import { execVenvPython } from '../../sandbox/index.js';
import { evaluate, writeEvalOutputs, type EvalResult } from '../../eval/index.js';
import {
  commitInfo,
  machineRecord,
  METRIC_LABEL,
  requireModelFile,
  scoreCell,
  type MachineInfo,
} from '../../eval/experiments.js';
import { cachePaths } from '../../util/paths.js';
import { ConfigError } from '../../util/errors.js';

export const DEMO_REFINER = 'smollm2-135m-instruct-q4_1.gguf';
export const DEMO_GENERATOR = 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf';

/** The two sizes of the demo. Tuned on 2 cores (numbers in docs/results.md when measured). */
export interface DemoSize {
  steps: number;
  queriesPerStep: number;
  samplesPerQuery: number;
  /** Longest rewrite in tokens. */
  rewriteTokens: number;
  /** Longest generated answer in tokens (training and evaluation). */
  codeTokens: number;
  /** Longest refiner prompt; longer DS-1000 queries lose their middle. */
  promptTokens: number;
  /** Training tasks drawn from (a subset of the leak-free training split). */
  trainTasks: number;
  /** Held-out test problems evaluated. */
  problems: number;
}

export const DEMO_SIZES: Record<'default' | 'quick', DemoSize> = {
  default: {
    steps: 8,
    queriesPerStep: 2,
    samplesPerQuery: 4,
    rewriteTokens: 48,
    codeTokens: 96,
    promptTokens: 768,
    trainTasks: 64,
    problems: 12,
  },
  quick: {
    steps: 2,
    queriesPerStep: 1,
    samplesPerQuery: 2,
    rewriteTokens: 12,
    codeTokens: 16,
    promptTokens: 320,
    trainTasks: 4,
    problems: 3,
  },
};

export interface DemoFlags {
  quick?: boolean;
  steps?: string;
  /** Held-out test problems evaluated. */
  limit?: string;
  out?: string;
  exec: string;
  refinerModel?: string;
  refinerWeights?: string;
  /** The generator model. */
  model?: string;
  weights?: string;
  quiet?: boolean;
}

/** demo's old names (0.1.0). */
const DEMO_ALIASES: readonly DeprecatedAlias[] = [
  { flags: '--refiner <model>', use: '--refiner-model <model>', to: (v) => ({ refinerModel: v }) },
  { flags: '--generator <model>', use: '--model <model>', to: (v) => ({ model: v }) },
  { flags: '--problems <n>', use: '--limit <n>', to: (v) => ({ limit: v }) },
];

export interface DemoPlan {
  quick: boolean;
  size: DemoSize;
  exec: boolean;
  execNote: string;
  outDir: string;
  refiner: string;
  generator: string;
  /** The generator's weights mode (auto: resolved by the local engine per model). */
  generatorWeights: WeightsMode;
  config: TrainConfig;
}

function positive(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigError(`${flag} must be an integer ≥ 1`, { where: flag, found: v });
  return n;
}

function defaultOutDir(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return path.join('runs', `demo-${t}`);
}

/** The embedded default as a trainer configuration layer. */
export function demoConfigLayer(o: {
  size: DemoSize;
  exec: boolean;
  refiner: string;
  generator: string;
  runDir: string;
  cacheFile: string;
  /** Default auto for both: quantized for a GGUF file, float32 for a Hugging Face directory. */
  refinerWeights?: WeightsMode;
  generatorWeights?: WeightsMode;
}): TrainConfigInput {
  const s = o.size;
  return {
    refiner: {
      model: o.refiner,
      weights: o.refinerWeights ?? 'auto',
      // SmolLM2 is chat-tuned: the paper's instruction as one user message.
      format: 'paper-chat',
      maxPromptTokens: s.promptTokens,
      overlong: 'truncate-middle',
    },
    adapter: { kind: 'lora', r: 8, alpha: 32, dropout: 0.1 },
    optim: { lr: 2e-4, warmupSteps: 1, schedule: 'constant' },
    rollout: {
      queriesPerStep: s.queriesPerStep,
      samplesPerQuery: s.samplesPerQuery,
      temperature: 0.7,
      topP: 0.9,
      maxNewTokens: s.rewriteTokens,
    },
    loss: { baseline: 'rloo', klCoef: 0.02 },
    // BLEU-4 against the reference (the paper's reward), plus DS-1000's own tests when the
    // sandbox venv exists: RL then optimises code that runs, not only code that looks alike.
    reward: o.exec
      ? { weights: { bleu: 1, exec: 1 }, exec: { pSyntax: 0.5, pTimeout: 0.5, concurrency: 2 } }
      : { weights: { bleu: 1 } },
    generator: {
      backend: 'local',
      model: o.generator,
      weights: o.generatorWeights ?? 'auto',
      // The generator sees the problem (with the scaffold its code must fit) and the rewrite,
      // and continues DS-1000's `BEGIN SOLUTION <code>` cue.
      input: 'original+refined',
      format: 'ds1000-completion',
      params: { temperature: 0, maxTokens: s.codeTokens },
      cache: { enabled: true, file: o.cacheFile },
    },
    data: { dataset: 'ds1000', split: 'leak-free', trainLimit: s.trainTasks },
    // No validation passes during the demo: the held-out evaluation after training is the
    // measurement, and each validation would cost generator calls the ten minutes cannot spare.
    eval: { everySteps: 0, problems: 0, metric: 'reward' },
    run: {
      dir: o.runDir,
      steps: s.steps,
      seed: 0,
      checkpointEvery: s.steps,
      keepCheckpoints: 1,
      log: 'auto',
    },
  };
}

/** Flags → what the demo will do (validated; nothing runs, no model is loaded). */
export function demoPlan(f: DemoFlags): DemoPlan {
  const quick = f.quick === true;
  const base = DEMO_SIZES[quick ? 'quick' : 'default'];
  const size: DemoSize = {
    ...base,
    steps: positive('--steps', f.steps) ?? base.steps,
    problems: positive('--limit', f.limit) ?? base.problems,
  };
  if (!['auto', 'on', 'off'].includes(f.exec))
    throw new ConfigError('invalid --exec', {
      where: '--exec',
      expected: 'auto | on | off',
      found: f.exec,
    });
  const venv = execVenvPython() !== undefined;
  const exec = f.exec === 'on' || (f.exec === 'auto' && venv);
  const execNote =
    f.exec === 'off'
      ? 'off (--exec off)'
      : exec
        ? 'on (DS-1000 tests in the sandbox)'
        : 'off: no sandbox venv (run `rl4qe setup-exec` for the execution reward and pass@1)';
  const models = cachePaths.testModels();
  const refiner = f.refinerModel ?? path.join(models, DEMO_REFINER);
  const generator = f.model ?? path.join(models, quick ? DEMO_REFINER : DEMO_GENERATOR);
  const refinerMode = weightsFlag('--refiner-weights', f.refinerWeights) ?? 'auto';
  const generatorWeights = weightsFlag('--weights', f.weights) ?? 'auto';
  const outDir = path.resolve(f.out ?? defaultOutDir());
  const config = resolveTrainConfig([
    {
      source: 'rl4qe demo',
      value: demoConfigLayer({
        size,
        exec,
        refiner,
        generator,
        runDir: path.join(outDir, 'run'),
        cacheFile: path.join(outDir, 'cache.sqlite'),
        refinerWeights: refinerMode,
        generatorWeights,
      }),
    },
  ]);
  return { quick, size, exec, execNote, outDir, refiner, generator, generatorWeights, config };
}

export interface DemoResult {
  plan: DemoPlan;
  eval: EvalResult;
  files: {
    runDir: string;
    trainReport: string;
    evalJson: string;
    evalMarkdown: string;
    evalReport: string;
    summary: string;
  };
  seconds: { train: number; eval: number; total: number };
  machine: MachineInfo;
}

/** The comparison the demo prints: one row per metric, each arm's score and change vs original. */
export function demoTable(r: EvalResult): string {
  const metrics = Object.keys(r.summaries[0]?.metrics ?? {});
  const arms = r.summaries.map((s) => s.arm);
  const head = ['metric', ...arms];
  const rows = metrics.map((m) => [
    METRIC_LABEL[m] ?? m,
    ...r.summaries.map((s) =>
      scoreCell(
        s.metrics[m]?.mean ?? null,
        r.comparisons.find((c) => c.arm === s.arm)?.metrics.find((x) => x.metric === m),
      ),
    ),
  ]);
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  return (
    `${r.settings.tasks} held-out DS-1000 test problems (leak-free split); each cell: mean, ` +
    `relative change vs the original query [95% paired bootstrap interval, ` +
    `${r.settings.bootstrap.resamples} resamples]; ▲/▼ the interval excludes 0.\n\n` +
    lines.join('\n') +
    '\n'
  );
}

/** Runs the demo: train, evaluate, write, print. */
export async function demoCommand(
  f: DemoFlags,
  io: {
    stdout?: (s: string) => void;
    stderr?: (s: string) => void;
    /** Aborting stops training after the current step (with a checkpoint); the demo evaluates it. */
    signal?: AbortSignal;
  } = {},
): Promise<DemoResult> {
  const stdout = io.stdout ?? ((s: string): void => void process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string): void => void process.stderr.write(s));
  // Text on a terminal, JSON lines otherwise (cli/progress.ts), as training's own progress.
  const say = cliProgress('demo', { stderr, isTTY: io.stderr ? false : undefined });
  const t0 = performance.now();
  // The code that runs is the checkout as it is now (a long run may outlive later commits).
  const commit = commitInfo();
  const startedAt = new Date().toISOString();
  const plan = demoPlan(f);
  // Both models before any work: a missing file says how to get it.
  requireModelFile(plan.refiner, 'refiner model', 'HuggingFaceTB/SmolLM2-135M-Instruct');
  requireModelFile(
    plan.generator,
    'generator model',
    plan.quick ? 'HuggingFaceTB/SmolLM2-135M-Instruct' : 'Qwen/Qwen2.5-Coder-0.5B-Instruct',
  );
  const runDir = plan.config.run.dir;
  if (fs.existsSync(path.join(runDir, 'run.json')))
    throw new ConfigError('the demo output directory already holds a run', {
      where: plan.outDir,
      hint: 'choose another --out (or remove it)',
    });
  fs.mkdirSync(plan.outDir, { recursive: true });
  const s = plan.size;
  say(
    `${plan.quick ? 'quick smoke run' : 'demo'}: refiner ${path.basename(plan.refiner)} (LoRA r 8), ` +
      `generator ${path.basename(plan.generator)}, execution ${plan.execNote}`,
  );
  say(
    `[1/2] training ${s.steps} steps × ${s.queriesPerStep} queries × ${s.samplesPerQuery} rewrites ` +
      `(≤ ${s.rewriteTokens} tokens) on ${s.trainTasks} DS-1000 training tasks → ${runDir}`,
  );
  const tt = performance.now();
  const tr = await train({
    config: plan.config,
    ...(io.signal ? { signal: io.signal } : {}),
    ...(f.quiet ? { progress: 'quiet' as const } : {}),
  });
  const trainReport = writeReport(tr.runDir);
  const trainSeconds = (performance.now() - tt) / 1000;
  say(
    `${tr.stopped === 'signal' ? 'stopped after' : 'trained'} ${tr.steps} steps in ` +
      `${trainSeconds.toFixed(0)} s; report ${trainReport}`,
  );

  say(
    `[2/2] evaluating on ${s.problems} held-out test problems: original query, untrained ` +
      `refiner, trained refiner`,
  );
  const te = performance.now();
  const r = await evaluate({
    dataset: 'ds1000',
    split: 'test',
    limit: s.problems,
    refiner: {
      model: plan.refiner,
      // The mode training used ('auto' resolved as the trainer resolved it).
      weights: refinerWeights(plan.config),
    },
    generator: { backend: 'local', model: plan.generator, weights: plan.generatorWeights },
    arms: [
      { kind: 'original' },
      { kind: 'untrained' },
      { kind: 'adapter', path: tr.runDir, name: 'trained' },
    ],
    exec: plan.exec ? 'on' : 'off',
    maxTokens: s.codeTokens,
    cache: path.join(plan.outDir, 'cache.sqlite'),
    ...(f.quiet ? {} : { log: (l: string): void => say(`eval: ${l}`) }),
  });
  const evalDir = path.join(plan.outDir, 'eval');
  const files = await writeEvalOutputs(r, evalDir);
  const evalSeconds = (performance.now() - te) / 1000;
  const total = (performance.now() - t0) / 1000;
  const machine = machineRecord();
  const summary = path.join(plan.outDir, 'demo.json');
  fs.writeFileSync(
    summary,
    JSON.stringify(
      {
        version: 1,
        command: [
          'rl4qe demo',
          ...(plan.quick ? ['--quick'] : []),
          `--steps ${s.steps} --limit ${s.problems} --exec ${plan.exec ? 'on' : 'off'}`,
          `--out ${plan.outDir}`,
        ].join(' '),
        startedAt,
        endedAt: new Date().toISOString(),
        quick: plan.quick,
        size: s,
        exec: plan.execNote,
        models: { refiner: plan.refiner, generator: plan.generator },
        machine,
        commit,
        seconds: { train: trainSeconds, eval: evalSeconds, total },
        runDir: tr.runDir,
        eval: files,
        comparisons: r.comparisons,
      },
      null,
      2,
    ) + '\n',
  );
  stdout(demoTable(r));
  stdout(
    `\nTraining report:   ${trainReport}\nEvaluation report: ${files.html}\n` +
      `Tables: ${files.markdown}; every sample and number: ${files.json}\n` +
      `Wall time ${total.toFixed(0)} s (training ${trainSeconds.toFixed(0)} s, evaluation ` +
      `${evalSeconds.toFixed(0)} s) on ${machine.cores} × ${machine.cpu} ` +
      `(load average ${machine.loadAverage.join(' / ')}).\n`,
  );
  return {
    plan,
    eval: r,
    files: {
      runDir: tr.runDir,
      trainReport,
      evalJson: files.json,
      evalMarkdown: files.markdown,
      evalReport: files.html,
      summary,
    },
    seconds: { train: trainSeconds, eval: evalSeconds, total },
    machine,
  };
}

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'the main job on an embedded default: train a refiner on DS-1000 (~10 min on 2 cores), ' +
        'evaluate it against the original query, print the table, write the HTML reports',
    )
    .option('--quick', 'a one-minute smoke run (SmolLM2 as refiner and generator, 3 problems)')
    .option('--steps <n>', 'training steps (default 8; --quick 2)')
    .option('--limit <n>', 'held-out test problems evaluated (default 12; --quick 3)')
    .option('--out <dir>', 'output directory (default runs/demo-<time>)')
    .option(
      '--exec <mode>',
      'execution reward and pass@1: auto (when the venv exists) | on | off',
      'auto',
    )
    .option(
      '--refiner-model <model>',
      'refiner base model: GGUF file or HF directory (default: the offline test model)',
    )
    .option('--refiner-weights <mode>', WEIGHTS_HELP)
    .option(
      '--model <model>',
      "generator model on rl4qe's own engine: GGUF file or HF directory (default: the offline test model)",
    )
    .option('--weights <mode>', WEIGHTS_HELP)
    .option('--quiet', 'no progress output')
    .action(async (f: DemoFlags) => {
      // As `rl4qe train`: the first Ctrl-C ends training after the current step (the demo then
      // evaluates that checkpoint), a second exits at once.
      const ac = new AbortController();
      let interrupts = 0;
      const onSigint = (): void => {
        interrupts += 1;
        if (interrupts > 1) process.exit(130);
        process.stderr.write(
          '\nrl4qe demo: stopping training after this step (Ctrl-C again to exit)\n',
        );
        ac.abort();
      };
      process.on('SIGINT', onSigint);
      try {
        await demoCommand(f, { signal: ac.signal });
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
  addDeprecatedAliases(cmd, DEMO_ALIASES);
}

const WEIGHTS_HELP =
  'auto (default: quantized for a GGUF file, float32 for a Hugging Face directory) | float32 | quantized';
