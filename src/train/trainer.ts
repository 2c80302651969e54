// The RL4QE training loop: REINFORCE on a refiner against a fixed code generator.
//
// One optimiser step:
//   1. take `queriesPerStep` training tasks (a seeded permutation per epoch, so the data position
//      is a function of the step and a resumed run sees the same tasks);
//   2. sample K rewrites per task from one prefill of its prompt (seeds derived from the run
//      seed, the step and the sample: no RNG state to carry across a resume);
//   3. as each task's rewrites are sampled, send them to the generator and score them (text
//      metrics, sandbox) while the next task samples: I/O-bound stages overlap the sampling;
//   4. baselines and advantages per group (train/reinforce.ts); failed or null samples are
//      dropped from the update and from their group's baseline, and counted;
//   5. score the sampled tokens with gradients, the prompt run once for its K continuations
//      (sampling/score.ts scoreGroups), in `gradAccumulation` micro-batches with the step-wide
//      denominator (so the gradient does not depend on how the step is split); optional KL to the
//      frozen base (the adapter switched off: no second model);
//   6. clip, AdamW, metrics.jsonl / samples.jsonl, checkpoint every N steps, validation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { nativeStatus } from '../backend/index.js';
import {
  getBackend,
  isCheckNanEnabled,
  noGrad,
  setCheckNan,
  tidy,
  type Tensor,
} from '../tensor/index.js';
import { AdamW, clipGradNorm } from '../nn/optim.js';
import { withAdaptersDisabled, type ComputeReport } from '../models/index.js';
import { scoreGroups, scoreTokens } from '../sampling/index.js';
import { createGenerator } from '../generators/config.js';
import type { Generator, GenerationRequest, GenerationResult } from '../generators/types.js';
import { loadTasks } from '../data/load.js';
import {
  applySplit,
  ensureRunSplit,
  readSplitManifest,
  type SplitManifest,
} from '../data/splits.js';
import { generatorPrompt } from '../data/prompts.js';
import { extractCode } from '../data/extract.js';
import type { CodeTask } from '../data/tasks.js';
import { makeReward } from '../rewards/factory.js';
import { CompositeReward, type ScoredSample } from '../rewards/composite.js';
import { runnerFromSandbox } from '../rewards/execution.js';
import type { RewardFn, RewardSample } from '../rewards/types.js';
import { Sandbox } from '../sandbox/index.js';
import { Rng } from '../util/rng.js';
import { createLogger } from '../util/log.js';
import { ConfigError, NumericError, Rl4qeError } from '../util/errors.js';
import { Baseline, reinforceLoss, shapeRewards } from './reinforce.js';
import { lrAt } from './schedule.js';
import {
  configDigest,
  generatorBackendConfig,
  refinerWeights,
  type TrainConfig,
} from './config.js';
import { Refiner } from './refiner.js';
import {
  checkpointDir,
  checkpointName,
  loadCheckpoint,
  markBest,
  saveCheckpoint,
  writeFileAtomic,
  type CheckpointState,
} from './checkpoint.js';
import { RunFiles, readRunInfo, modelDigest } from './run-dir.js';
import { readPeftAdapterTensors } from '../io/peft.js';
import { writeReport } from './report.js';
import { Progress, type ProgressMode } from './progress.js';
import {
  RUN_VERSION,
  type ComputeRecord,
  type RunInfo,
  type SampleRecord,
  type StepRecord,
  type ValRecord,
} from './records.js';

const log = createLogger('train');

/** Sequences sampled per generate() call (and sent to the generator together). */
const SAMPLE_BATCH = 8;

export interface TrainOptions {
  config: TrainConfig;
  /** A reward of your own (the API): replaces the configured composite; its value is the total. */
  reward?: RewardFn;
  /** Continue the run in config.run.dir from its latest checkpoint. */
  resume?: boolean;
  /** Aborting stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
  onStep?: (r: StepRecord) => void;
  onValidation?: (r: ValRecord) => void;
  /** Progress display: default from config.run.log. */
  progress?: ProgressMode;
  /**
   * Token ids that end a rewrite, replacing the refiner's EOS and end-of-turn tokens; [] makes
   * every rewrite exactly rollout.maxNewTokens long (what `bench rl-step` needs to compare with
   * TRL's fixed-length completions).
   */
  stopTokens?: readonly number[];
}

export interface TrainResult {
  runDir: string;
  /** Optimiser steps completed (including those before a resume). */
  steps: number;
  stopped: 'done' | 'signal';
  lastCheckpoint: string | null;
  best: { step: number; value: number; checkpoint: string } | null;
  /** Every step record of this process (not those before a resume). */
  history: StepRecord[];
  validations: ValRecord[];
}

/** One sampled rewrite on its way through the pipeline. */
interface Sample {
  task: CodeTask;
  group: number;
  k: number;
  prompt: number[];
  promptText: string;
  tokens: number[];
  logProbs: number[];
  finishReason: string;
  rewrite: string;
  generatorInput: string | null;
  output: string | null;
  code: string | null;
  failure: string | null;
  scored: ScoredSample | null;
}

/** Seeds that depend only on (run seed, step, purpose, index): a resumed run draws the same. */
function seedOf(seed: number, step: number, purpose: number, i: number): number {
  const h = createHash('sha256').update(`${seed}:${step}:${purpose}:${i}`).digest();
  return h.readUInt32LE(0);
}

/** The training task order: a seeded permutation per epoch. */
function taskAt(tasks: readonly CodeTask[], seed: number, position: number): CodeTask {
  const n = tasks.length;
  const epoch = Math.floor(position / n);
  const perm = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seedOf(seed, epoch, 1, 0));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return tasks[perm[position % n]!]!;
}

const mean = (xs: readonly number[]): number | null =>
  xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;

function std(xs: readonly number[]): number | null {
  const m = mean(xs);
  if (m === null) return null;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) * (b - m), 0) / xs.length);
}

/** What the generator is asked for one rewrite. */
function generatorRequest(
  cfg: TrainConfig,
  task: CodeTask,
  rewrite: string,
  id: string,
): { request: GenerationRequest; input: string } {
  const g = cfg.generator;
  const p = generatorPrompt({
    original: task.query,
    refined: rewrite,
    input: g.input,
    format: g.format,
    ...(g.system !== undefined ? { system: g.system } : {}),
  });
  const params = { ...g.params };
  if (p.kind === 'completion') {
    return {
      request: { id, prompt: p.prompt, params: { ...params, stop: p.stop } },
      input: p.prompt,
    };
  }
  return {
    request: {
      id,
      messages: p.messages.map((m) => ({ role: m.role, content: m.content })),
      params,
    },
    input: p.messages[p.messages.length - 1]!.content,
  };
}

/** The reward components' means over samples (nulls skipped). */
function componentMeans(scored: readonly ScoredSample[]): Record<string, number | null> {
  const names = new Set(scored.flatMap((s) => Object.keys(s.components)));
  const out: Record<string, number | null> = {};
  for (const n of names) {
    const vs = scored.map((s) => s.components[n]).filter((v): v is number => typeof v === 'number');
    out[n] = mean(vs);
  }
  return out;
}

function passRate(scored: readonly ScoredSample[]): number | null {
  const st = scored.map((s) => s.info.exec?.status).filter((v) => v !== undefined);
  if (st.length === 0) return null;
  return st.filter((s) => s === 'pass').length / st.length;
}

export class Trainer {
  readonly cfg: TrainConfig;
  private readonly opts: TrainOptions;
  private refiner!: Refiner;
  private generator: Generator | null = null;
  private sandbox: Sandbox | null = null;
  private reward!: CompositeReward;
  private optimizer!: AdamW;
  private paramNames: string[] = [];
  private params: Tensor[] = [];
  private baseline!: Baseline;
  private files!: RunFiles;
  private train: CodeTask[] = [];
  private validation: CodeTask[] = [];
  private step = 0;
  private elapsedBefore = 0;
  private consecutiveFailures = 0;
  private best: CheckpointState['best'] = null;
  private gen = { calls: 0, cached: 0, failures: 0, costUsd: 0 };
  private lastCheckpoint: string | null = null;
  private progress!: Progress;
  private prevPoolCapMb: number | undefined;
  /** Dataset rows skipped as invalid (data.invalidRows: skip), one message each. */
  invalidRows: string[] = [];

  constructor(opts: TrainOptions) {
    this.opts = opts;
    this.cfg = opts.config;
  }

  get runDir(): string {
    return path.resolve(this.cfg.run.dir);
  }

  /** Loads data, models, generator, reward and (on resume) the latest checkpoint. */
  async setup(): Promise<void> {
    const cfg = this.cfg;
    const runDir = this.runDir;
    const resume = this.opts.resume === true;
    // A step allocates its activations in the same sizes every step: let the native pool keep a
    // step's worth (unless RL4QE_POOL_MB says otherwise) so the next step reuses them instead of
    // page-faulting fresh memory (bench train-step: ~30% of a SmolLM2 LoRA step's CPU time).
    if (process.env.RL4QE_POOL_MB === undefined) {
      const mb = Math.min(16384, Math.floor((os.totalmem() / 2 ** 20) * 0.5));
      this.prevPoolCapMb = getBackend().setPoolCapMb?.(mb);
    }
    if (cfg.run.deterministic || cfg.run.threads !== undefined) {
      nativeStatus().tools?.setThreads(cfg.run.deterministic ? 1 : (cfg.run.threads as number));
    }
    const existing = fs.existsSync(path.join(runDir, 'run.json'));
    if (existing && !resume) {
      throw new ConfigError('the run directory already holds a run', {
        where: runDir,
        hint: 'resume it with `rl4qe train --resume DIR`, or choose another run.dir',
      });
    }
    let info: RunInfo | undefined;
    const digestNow = configDigest(cfg);
    if (resume) {
      if (!existing) {
        throw new ConfigError('nothing to resume: no run.json', {
          where: runDir,
          hint: 'start the run without --resume first',
        });
      }
      info = readRunInfo(runDir);
      const ck = checkpointDir(runDir);
      if (ck) {
        const st = loadCheckpoint(ck).state;
        if (st.configDigest !== digestNow) {
          throw new ConfigError('the configuration differs from the run being resumed', {
            where: path.join(runDir, 'config.json'),
            expected: `config digest ${st.configDigest.slice(0, 12)}`,
            found: digestNow.slice(0, 12),
            hint: "resume with the run's own config (rl4qe train --resume DIR takes it from config.json)",
          });
        }
      }
    }
    fs.mkdirSync(runDir, { recursive: true });

    // Data: the split is made once and kept in the run directory.
    // Malformed rows: fatal by default (data.invalidRows 'fail'); with 'skip' each is logged with
    // its file, line and field, counted, and left out.
    const invalid: string[] = [];
    const tasks = await loadTasks({
      dataset: cfg.data.dataset,
      ...(cfg.data.path !== undefined ? { path: cfg.data.path } : {}),
      ...(cfg.data.invalidRows === 'skip'
        ? {
            onInvalid: (e: Error) => {
              invalid.push(e.message.split('\n')[0] ?? e.message);
              log.warn('skipped an invalid dataset row', { error: e.message.split('\n')[0] });
            },
          }
        : {}),
    });
    this.invalidRows = invalid;
    let manifest: SplitManifest;
    if (cfg.data.manifest !== undefined && !fs.existsSync(path.join(runDir, 'split.json'))) {
      manifest = await readSplitManifest(cfg.data.manifest);
      writeFileAtomic(path.join(runDir, 'split.json'), JSON.stringify(manifest, null, 2) + '\n');
    }
    manifest = await ensureRunSplit(runDir, tasks, {
      strategy: cfg.data.split,
      seed: cfg.run.seed,
      dataset: cfg.data.dataset,
      ...(cfg.data.testSize !== undefined ? { testSize: cfg.data.testSize } : {}),
      ...(cfg.data.validationSize !== undefined ? { validationSize: cfg.data.validationSize } : {}),
    });
    const split = applySplit(tasks, manifest);
    this.train =
      cfg.data.trainLimit !== undefined ? split.train.slice(0, cfg.data.trainLimit) : split.train;
    const val = split.validation.length > 0 ? split.validation : split.test;
    this.validation = val.slice(0, cfg.data.valLimit ?? cfg.eval.problems);
    if (this.train.length === 0) {
      throw new ConfigError('the training split is empty', {
        where: 'data',
        hint: 'check data.dataset, data.path and data.trainLimit',
      });
    }

    // The refiner: base + adapter.
    const weights = refinerWeights(cfg);
    this.refiner = await Refiner.load(
      {
        model: cfg.refiner.model,
        ...(cfg.refiner.tokenizer !== undefined ? { tokenizer: cfg.refiner.tokenizer } : {}),
        ...(cfg.refiner.chatTemplate !== undefined
          ? { chatTemplate: cfg.refiner.chatTemplate }
          : {}),
        weights,
        compute: cfg.refiner.compute,
        format: cfg.refiner.format,
        ...(cfg.refiner.template !== undefined ? { template: cfg.refiner.template } : {}),
        maxPromptTokens: cfg.refiner.maxPromptTokens,
        overlong: cfg.refiner.overlong,
        contextSize: cfg.refiner.maxPromptTokens + cfg.rollout.maxNewTokens + 8,
      },
      { ...cfg.adapter, seed: seedOf(cfg.run.seed, 0, 2, 0) },
    );
    const model = this.refiner.model;
    const digest = modelDigest(cfg.refiner.model);
    if (info) {
      if (info.base.digest !== digest) {
        throw new ConfigError('the refiner model differs from the run being resumed', {
          where: cfg.refiner.model,
          expected: `base model ${info.base.model} (digest ${info.base.digest})`,
          found: `digest ${digest}`,
        });
      }
    } else {
      info = {
        version: RUN_VERSION,
        rl4qe: packageVersion(),
        createdAt: new Date().toISOString(),
        base: {
          model: cfg.refiner.model,
          digest,
          architecture: model.config.architecture,
          hiddenSize: model.config.hiddenSize,
          numLayers: model.config.numLayers,
        },
        adapter: cfg.adapter.kind,
        ...(this.refiner.compute ? { compute: computeRecord(this.refiner.compute) } : {}),
        ...(gitCommit() !== undefined ? { commit: gitCommit() as string } : {}),
      };
    }
    if (cfg.adapter.init !== undefined && !resume) this.initAdapter(cfg.adapter.init, digest);
    this.paramNames = [...this.refiner.params.keys()];
    this.params = [...this.refiner.params.values()];
    this.optimizer = new AdamW(this.params, {
      lr: cfg.optim.lr,
      beta1: cfg.optim.beta1,
      beta2: cfg.optim.beta2,
      eps: cfg.optim.eps,
      weightDecay: cfg.optim.weightDecay,
    });
    this.baseline = new Baseline({
      kind: cfg.loss.baseline,
      emaDecay: cfg.loss.emaDecay,
      scaleByStd: cfg.loss.scaleByStd,
    });

    // Generator, sandbox and reward.
    const backend = generatorBackendConfig(cfg);
    if (backend) this.generator = createGenerator(backend);
    if (this.opts.reward) {
      this.reward = new CompositeReward([{ fn: this.opts.reward, weight: 1 }]);
    } else {
      const needsExec = cfg.reward.weights.exec !== undefined;
      const ex = cfg.reward.exec;
      if (needsExec) {
        this.sandbox = new Sandbox({
          ...(ex.concurrency !== undefined ? { concurrency: ex.concurrency } : {}),
          limits: {
            ...(ex.timeoutMs !== undefined
              ? { wallSeconds: ex.timeoutMs / 1000, cpuSeconds: Math.ceil(ex.timeoutMs / 1000) }
              : {}),
            ...(ex.memoryMb !== undefined ? { memoryBytes: ex.memoryMb * 2 ** 20 } : {}),
          },
        });
      }
      this.reward = makeReward({
        weights: cfg.reward.weights,
        nullPolicy: cfg.reward.nullPolicy,
        ...(cfg.reward.smoothing !== undefined ? { smoothing: cfg.reward.smoothing } : {}),
        ...(needsExec
          ? {
              exec: {
                pSyntax: ex.pSyntax,
                pTimeout: ex.pTimeout,
                ...(ex.other !== undefined ? { other: ex.other } : {}),
                ...(ex.concurrency !== undefined ? { concurrency: ex.concurrency } : {}),
              },
              runner: runnerFromSandbox(this.sandbox as Sandbox),
            }
          : {}),
      });
    }

    this.files = new RunFiles(runDir);
    if (resume) {
      const ck = checkpointDir(runDir);
      if (ck) this.restore(ck);
      // Records after the checkpoint are replayed: drop them so each step appears once (without
      // a checkpoint everything is replayed, the initial validation included).
      this.files.truncateAfter(ck ? this.step : -1);
    } else {
      writeFileAtomic(path.join(runDir, 'run.json'), JSON.stringify(info, null, 2) + '\n');
      writeFileAtomic(path.join(runDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    }
    this.progress = new Progress({
      mode:
        this.opts.progress ??
        (cfg.run.log === 'auto' ? (process.stderr.isTTY ? 'bar' : 'json') : cfg.run.log),
      total: cfg.run.steps,
    });
  }

  /**
   * Starts the LoRA from a PEFT adapter (adapter.init). Refused before any work when it was
   * trained on another base model: its run directory's digest differs (when it lives in one), or
   * its modules, ranks or shapes do not match this refiner's adapters.
   */
  private initAdapter(dir: string, digest: string): void {
    const where = `adapter.init (${dir})`;
    const runJson = path.resolve(dir, '..', '..', '..', 'run.json');
    if (fs.existsSync(runJson)) {
      const info = readRunInfo(path.dirname(runJson));
      if (info.base.digest !== digest) {
        throw new ConfigError('the initial adapter was trained on another base model', {
          where,
          expected: `an adapter of ${this.cfg.refiner.model} (digest ${digest})`,
          found: `an adapter of ${info.base.model} (digest ${info.base.digest})`,
        });
      }
    }
    const tensors = readPeftAdapterTensors(dir);
    for (const [name, p] of this.refiner.params) {
      const t = tensors.get(name);
      const same =
        t !== undefined &&
        t.shape.length === p.shape.length &&
        t.shape.every((d, i) => d === p.shape[i]);
      if (!same) {
        throw new ConfigError('the initial adapter does not fit this refiner', {
          where: `${where}: ${name}`,
          expected: `[${p.shape.join(', ')}] (adapter ${this.cfg.adapter.r}-rank on ${this.cfg.adapter.targets.join(', ')})`,
          found: t ? `[${t.shape.join(', ')}]` : 'missing',
          hint: 'the adapter was trained on another base model or with other adapter.r / adapter.targets',
        });
      }
      (p.data as Float32Array).set(t.data);
    }
    for (const name of tensors.keys()) {
      if (!this.refiner.params.has(name)) {
        throw new ConfigError('the initial adapter has modules this configuration does not train', {
          where: `${where}: ${name}`,
          hint: "set adapter.targets to the adapter's target_modules",
        });
      }
    }
  }

  private restore(dir: string): void {
    const ck = loadCheckpoint(dir);
    this.paramNames.forEach((n, i) => {
      const src = ck.params.get(n);
      const p = this.params[i]!;
      if (!src || src.length !== p.size) {
        throw new ConfigError('the checkpoint does not match the adapter', {
          where: `${dir} (${n})`,
          expected: `${p.size} values`,
          found: src ? `${src.length}` : 'missing',
          hint: 'the run was made with another adapter configuration or base model',
        });
      }
      (p.data as Float32Array).set(src);
    });
    const st = this.optimizer.state();
    this.optimizer.loadState({
      ...st,
      step: ck.optimizerStep,
      lr: ck.state.optimizer.lr,
      m: this.paramNames.map((n) => ck.m.get(n) as Float32Array),
      v: this.paramNames.map((n) => ck.v.get(n) as Float32Array),
    });
    this.baseline = new Baseline(
      {
        kind: this.cfg.loss.baseline,
        emaDecay: this.cfg.loss.emaDecay,
        scaleByStd: this.cfg.loss.scaleByStd,
      },
      ck.state.baseline,
    );
    this.step = ck.state.step;
    this.elapsedBefore = ck.state.elapsed;
    this.consecutiveFailures = ck.state.consecutiveFailures;
    this.best = ck.state.best;
    this.gen = { ...ck.state.generator };
    this.lastCheckpoint = path.basename(dir);
  }

  private checkpoint(elapsed: number): string {
    const cfg = this.cfg;
    const name = saveCheckpoint({
      runDir: this.runDir,
      state: {
        version: RUN_VERSION,
        step: this.step,
        configDigest: configDigest(cfg),
        baseline: this.baseline.state(),
        optimizer: { step: this.optimizer.step, lr: this.optimizer.lr },
        elapsed,
        consecutiveFailures: this.consecutiveFailures,
        best: this.best,
        generator: { ...this.gen },
      },
      params: {
        names: this.paramNames,
        shapes: this.params.map((p) => [...p.shape]),
        data: this.params.map((p) => p.data as Float32Array),
      },
      optimizer: this.optimizer.state(),
      ...(cfg.adapter.kind === 'lora'
        ? {
            peft: {
              r: cfg.adapter.r,
              alpha: cfg.adapter.alpha,
              dropout: cfg.adapter.dropout,
              targets: [...cfg.adapter.targets],
              baseModel: cfg.refiner.model,
            },
          }
        : {}),
      keep: cfg.run.keepCheckpoints,
    });
    this.lastCheckpoint = name;
    return name;
  }

  /** Sends one group's rewrites to the generator and scores them. */
  private async finishGroup(
    group: Sample[],
    stepTimes: { generate: number; reward: number },
  ): Promise<void> {
    const cfg = this.cfg;
    const t0 = performance.now();
    const target = cfg.reward.target;
    if (target?.kind === 'custom') {
      // A custom target (API): its text is scored in place of generated code.
      for (const s of group)
        s.code = await target.fn({ task: s.task, query: s.task.query, rewrite: s.rewrite });
    } else if (target?.kind === 'rewrite' || !this.generator) {
      // The reward scores the rewrite itself.
      for (const s of group) s.code = s.rewrite;
    } else {
      const reqs = group.map((s) => {
        const r = generatorRequest(cfg, s.task, s.rewrite, `${s.task.id}/step${this.step}/k${s.k}`);
        s.generatorInput = r.input;
        return r.request;
      });
      const results: GenerationResult[] = await this.generator.generate(reqs);
      results.forEach((r, i) => {
        const s = group[i]!;
        this.gen.calls += 1;
        if (r.ok) {
          if (r.cached) this.gen.cached += 1;
          this.gen.costUsd += r.costUsd;
          s.output = r.text;
          s.code = extractCode(
            r.text,
            s.task.source === 'ds1000' ? { ds1000Prompt: s.task.query } : {},
          );
          this.consecutiveFailures = 0;
        } else {
          this.gen.failures += 1;
          s.failure = `generator:${r.kind}`;
          this.consecutiveFailures += 1;
          if (this.consecutiveFailures >= cfg.generator.maxConsecutiveFailures) {
            throw new Rl4qeError(
              `the generator failed ${this.consecutiveFailures} requests in a row`,
              {
                where: `generator (${r.kind})`,
                found: r.message,
                ...(r.hint
                  ? { hint: r.hint }
                  : { hint: 'check the generator configuration; nothing was scored' }),
              },
            );
          }
        }
      });
    }
    const t1 = performance.now();
    stepTimes.generate += (t1 - t0) / 1000;
    const batch: RewardSample[] = group.map((s) => ({
      query: s.task.query,
      refinedQuery: s.rewrite,
      ...(s.output !== null ? { rawOutput: s.output } : {}),
      code: s.code ?? '',
      reference: s.task.reference,
      task: s.task,
      ...(s.failure !== null ? { generationFailed: true } : {}),
    }));
    const scored = await this.reward.score(batch);
    scored.forEach((sc, i) => {
      const s = group[i]!;
      s.scored = sc;
      if (s.failure === null && (sc.total === null || !Number.isFinite(sc.total)))
        s.failure = 'reward-null';
    });
    stepTimes.reward += (performance.now() - t1) / 1000;
  }

  /** Samples K rewrites for each task, overlapping each group's generator/reward with the next sampling. */
  private async rollout(
    tasks: readonly CodeTask[],
    k: number,
    opts: { temperature: number; step: number; purpose: number },
    times: StageTimesAcc,
  ): Promise<Sample[][]> {
    const cfg = this.cfg;
    const groups: Sample[][] = tasks.map(() => []);
    const pending: Promise<void>[] = [];
    // Prompts of the tasks that fit (an over-long one under overlong 'skip' is counted).
    const prompts = tasks.map((t) => this.refiner.promptFor(t));
    const live = prompts.flatMap((p, gi) => (p ? [gi] : []));
    times.skipped += tasks.length - live.length;
    // Tasks are sampled in chunks of about SAMPLE_BATCH sequences (one generate() call: decoding
    // batches well), and each chunk's groups go to the generator and the reward while the next
    // chunk samples. Seeds depend on (step, task index, k) only, not on the chunking.
    const perChunk = Math.max(1, Math.floor(SAMPLE_BATCH / k));
    for (let c0 = 0; c0 < live.length; c0 += perChunk) {
      const chunk = live.slice(c0, c0 + perChunk);
      const t0 = performance.now();
      const seeds = chunk.flatMap((gi) =>
        Array.from({ length: k }, (_, j) =>
          seedOf(cfg.run.seed, opts.step, opts.purpose, gi * k + j),
        ),
      );
      const outs = this.refiner.sample(
        chunk.map((gi) => prompts[gi]!.ids),
        k,
        {
          temperature: opts.temperature,
          topP: cfg.rollout.topP,
          topK: cfg.rollout.topK,
          maxNewTokens: cfg.rollout.maxNewTokens,
          seeds,
          ...(this.opts.stopTokens !== undefined ? { stopTokens: this.opts.stopTokens } : {}),
        },
      );
      times.sample += (performance.now() - t0) / 1000;
      chunk.forEach((gi, ci) => {
        const p = prompts[gi]!;
        const group: Sample[] = outs.slice(ci * k, (ci + 1) * k).map((o, j) => ({
          task: tasks[gi]!,
          group: gi,
          k: j,
          prompt: p.ids,
          promptText: p.text,
          tokens: o.tokens,
          logProbs: o.logProbs,
          finishReason: o.finishReason,
          rewrite: o.rewrite,
          generatorInput: null,
          output: null,
          code: null,
          failure: null,
          scored: null,
        }));
        for (const s of group) times.sampledTokens += s.tokens.length;
        groups[gi] = group;
      });
      pending.push(
        this.finishGroup(
          chunk.flatMap((gi) => groups[gi]!),
          times,
        ),
      );
      // Let the generator's sockets and the sandbox's pipes make progress before the next
      // (synchronous) sampling call holds the event loop again.
      await new Promise((r) => setImmediate(r));
    }
    const w0 = performance.now();
    await Promise.all(pending);
    times.wait += (performance.now() - w0) / 1000;
    return groups;
  }

  /** The gradient of one step's loss, accumulated over micro-batches of groups. */
  private update(
    groups: Sample[][],
    advantages: (number | null)[][],
    times: StageTimesAcc,
  ): { loss: number; kl: number; tokens: number } {
    const cfg = this.cfg;
    const model = this.refiner.model;
    // Groups with at least one sample in the update, and which of their samples are in it.
    const live = groups
      .map((g, gi) => ({ g, adv: advantages[gi]! }))
      .map(({ g, adv }) => ({
        g: g.filter((_, j) => adv[j] !== null && adv[j] !== undefined),
        adv: adv.filter((a) => a !== null) as number[],
      }))
      .filter((x) => x.g.length > 0);
    const seqs = live.reduce((a, x) => a + x.g.length, 0);
    const toks = live.reduce((a, x) => a + x.g.reduce((b, s) => b + s.tokens.length, 0), 0);
    const denominator = cfg.loss.normalization === 'token' ? toks : seqs;
    if (denominator === 0) return { loss: 0, kl: 0, tokens: 0 };
    const micro = Math.max(1, cfg.rollout.gradAccumulation);
    const per = Math.ceil(live.length / micro);
    let loss = 0;
    let klSum = 0;
    let klTok = 0;
    for (let m0 = 0; m0 < live.length; m0 += per) {
      const part = live.slice(m0, m0 + per).filter((x) => x.g.some((s) => s.tokens.length > 0));
      if (part.length === 0) continue;
      const groupsIn = part.map((x) => ({
        prompt: x.g[0]!.prompt,
        completions: x.g.map((s) => s.tokens),
      }));
      const adv = part.flatMap((x) => x.adv);
      let ref: Float32Array | undefined;
      if (cfg.loss.klCoef > 0) {
        ref = noGrad(() =>
          withAdaptersDisabled(model, () =>
            tidy(() => {
              const r = scoreGroups(model, groupsIn, {});
              const out = Float32Array.from(r.logProbs.data);
              return out;
            }),
          ),
        );
      }
      // Dropout masks from (seed, step, micro-batch): a re-run of the micro-batch draws the same.
      const dropoutSeed = seedOf(cfg.run.seed, this.step, 3, m0);
      const forward = (): ReturnType<typeof reinforceLoss> => {
        const scored = cfg.rollout.sharedPrompt
          ? scoreGroups(model, groupsIn, { training: true, rng: new Rng(dropoutSeed) })
          : scoreGroupsSeparately(model, groupsIn, new Rng(dropoutSeed));
        return reinforceLoss(scored.logProbs, scored.offsets, adv, {
          normalization: cfg.loss.normalization,
          denominator,
          ...(ref ? { klCoef: cfg.loss.klCoef, refLogProbs: ref } : {}),
        });
      };
      tidy(() => {
        const out = forward();
        const lv = out.loss.data[0] as number;
        if (!Number.isFinite(lv)) {
          // Run the same micro-batch again with every op's output checked: the first op that
          // produced a NaN/Inf is named in the error.
          const op = firstNonFiniteOp(forward);
          throw new NumericError('the loss is not finite', {
            where: `train step ${this.step + 1}${op ? `, ${op}` : ''}`,
            found: String(lv),
            hint: `the offending samples are in nan-step-${this.step + 1}.json in the run directory`,
          });
        }
        loss += lv;
        klSum += out.kl * out.tokens;
        klTok += out.tokens;
        out.loss.backward();
      });
    }
    times.updateTokens += groups.reduce(
      (a, g) => a + (g[0] ? g[0].prompt.length : 0) + g.reduce((b, s) => b + s.tokens.length, 0),
      0,
    );
    return { loss, kl: klTok > 0 ? klSum / klTok : 0, tokens: toks };
  }

  private async validate(opts: { initial?: boolean } = {}): Promise<ValRecord> {
    const cfg = this.cfg;
    const t0 = performance.now();
    const times = newTimes();
    const groups = await this.rollout(
      this.validation,
      1,
      { temperature: 0, step: this.step, purpose: 4 },
      times,
    );
    const samples = groups.flat();
    const scored = samples.filter((s) => s.failure === null).map((s) => s.scored as ScoredSample);
    const components = componentMeans(scored);
    const metric = cfg.eval.metric;
    const value =
      metric === 'reward'
        ? mean(scored.map((s) => s.total as number))
        : (components[metric] ?? null);
    for (const s of samples) this.files.sample(this.sampleRecord(s, null, true));
    let isBest = false;
    if (!opts.initial && value !== null && (this.best === null || value > this.best.value)) {
      isBest = true;
      this.best = { step: this.step, value, checkpoint: checkpointName(this.step) };
    }
    const rec: ValRecord = {
      type: 'val',
      step: this.step,
      time: new Date().toISOString(),
      metric,
      value,
      components,
      passRate: passRate(scored),
      problems: samples.length,
      best: isBest,
      seconds: (performance.now() - t0) / 1000,
    };
    return rec;
  }

  private sampleRecord(
    s: Sample,
    ad: { baseline: number | null; advantage: number | null } | null,
    validation = false,
  ): SampleRecord {
    const sc = s.scored;
    return {
      step: validation ? this.step : this.step + 1,
      task: s.task.id,
      k: s.k,
      query: s.task.query,
      refinerPrompt: s.promptText,
      rewrite: s.rewrite,
      generatorInput: s.generatorInput,
      output: s.output,
      code: s.code,
      total: sc?.total ?? null,
      components: sc?.components ?? {},
      info: sc?.info ?? {},
      outcome: typeof sc?.info.exec?.status === 'string' ? (sc.info.exec.status as string) : null,
      baseline: ad?.baseline ?? null,
      advantage: ad?.advantage ?? null,
      logProb: s.logProbs.reduce((a, b) => a + b, 0),
      promptTokens: s.prompt.length,
      rewriteTokens: s.tokens.length,
      finishReason: s.finishReason,
      dropped: s.failure,
      ...(validation ? { validation: true } : {}),
    };
  }

  /** Runs until config.run.steps (or the signal). */
  async run(): Promise<TrainResult> {
    const cfg = this.cfg;
    const Q = cfg.rollout.queriesPerStep;
    const K = cfg.rollout.samplesPerQuery;
    const history: StepRecord[] = [];
    const validations: ValRecord[] = [];
    const started = performance.now();
    const elapsed = (): number => this.elapsedBefore + (performance.now() - started) / 1000;
    let stopped: TrainResult['stopped'] = 'done';
    this.progress.start(this.step);
    try {
      if (this.step === 0 && this.validation.length > 0) {
        // The untrained refiner (LoRA B = 0: the base model) on the validation problems: the
        // reference point of every later validation. It never becomes "best" (no checkpoint).
        const v = await this.validate({ initial: true });
        this.files.metric(v);
        validations.push(v);
        this.opts.onValidation?.(v);
        this.progress.validation(v);
      }
      while (this.step < cfg.run.steps) {
        if (this.opts.signal?.aborted) {
          stopped = 'signal';
          break;
        }
        const tStep = performance.now();
        const times = newTimes();
        const tasks = Array.from({ length: Q }, (_, i) =>
          taskAt(this.train, cfg.run.seed, this.step * Q + i),
        );
        const groups = await this.rollout(
          tasks,
          K,
          { temperature: cfg.rollout.temperature, step: this.step, purpose: 0 },
          times,
        );
        // Rewards (entropy-shaped when asked) → advantages; dropped samples are null.
        const rewards = groups.map((g) =>
          shapeRewards(
            g.map((s) => (s.failure !== null || !s.scored ? null : s.scored.total)),
            g.map((s) => s.logProbs.reduce((a, b) => a + b, 0)),
            cfg.loss.entropyCoef,
          ),
        );
        const ad = this.baseline.advantages(rewards);
        const tUpd = performance.now();
        const lr = lrAt(this.step, {
          lr: cfg.optim.lr,
          warmupSteps: cfg.optim.warmupSteps,
          schedule: cfg.optim.schedule,
          totalSteps: cfg.run.steps,
        });
        this.optimizer.lr = lr;
        let u: { loss: number; kl: number; tokens: number };
        try {
          u = this.update(
            groups,
            ad.map((g) => g.map((x) => x.advantage)),
            times,
          );
        } catch (e) {
          if (e instanceof NumericError) this.dumpNan(groups);
          throw e;
        }
        // maxGradNorm 0 turns clipping off (the norm is still measured and recorded).
        const gradNorm = clipGradNorm(
          this.params,
          cfg.optim.maxGradNorm > 0 ? cfg.optim.maxGradNorm : Infinity,
        );
        if (!Number.isFinite(gradNorm)) {
          this.dumpNan(groups);
          throw new NumericError('the gradient norm is not finite', {
            where: `train step ${this.step + 1}`,
            found: String(gradNorm),
            hint: 'rerun with RL4QE_CHECK_NAN=1 to name the op that produced it',
          });
        }
        this.optimizer.update();
        this.optimizer.zeroGrad();
        const updateSec = (performance.now() - tUpd) / 1000;
        // Records.
        const all = groups.flat();
        const scored = all.filter((s) => s.failure === null).map((s) => s.scored as ScoredSample);
        const dropped: Record<string, number> = {};
        for (const s of all)
          if (s.failure !== null) dropped[s.failure] = (dropped[s.failure] ?? 0) + 1;
        if (times.skipped > 0) dropped['prompt-too-long'] = times.skipped * K;
        const totals = scored.map((s) => s.total as number);
        const sampledTok = all.reduce((a, s) => a + s.tokens.length, 0);
        const negLp = all.reduce((a, s) => a - s.logProbs.reduce((b, c) => b + c, 0), 0);
        groups.forEach((g, gi) =>
          g.forEach((s, j) => this.files.sample(this.sampleRecord(s, ad[gi]![j]!))),
        );
        this.step += 1;
        const rec: StepRecord = {
          type: 'step',
          step: this.step,
          time: new Date().toISOString(),
          elapsed: elapsed(),
          lr,
          loss: u.loss,
          gradNorm,
          reward: mean(totals),
          rewardStd: std(totals),
          components: componentMeans(scored),
          passRate: passRate(scored),
          kl: u.kl,
          entropy: sampledTok > 0 ? negLp / sampledTok : 0,
          rewriteTokens: all.length > 0 ? sampledTok / all.length : 0,
          samples: all.length,
          scored: scored.length,
          dropped,
          sampleTokensPerSec: times.sample > 0 ? times.sampledTokens / times.sample : 0,
          updateTokensPerSec: updateSec > 0 ? times.updateTokens / updateSec : 0,
          generator: { ...this.gen },
          times: {
            sample: times.sample,
            generate: times.generate,
            reward: times.reward,
            update: updateSec,
            total: (performance.now() - tStep) / 1000,
          },
        };
        this.files.metric(rec);
        history.push(rec);
        this.opts.onStep?.(rec);
        this.progress.step(rec);
        const last = this.step === cfg.run.steps;
        const doVal =
          this.validation.length > 0 &&
          ((cfg.eval.everySteps > 0 && this.step % cfg.eval.everySteps === 0) || last);
        let valBest = false;
        if (doVal) {
          const v = await this.validate();
          this.files.metric(v);
          validations.push(v);
          this.opts.onValidation?.(v);
          this.progress.validation(v);
          valBest = v.best;
        }
        if (
          this.step % cfg.run.checkpointEvery === 0 ||
          last ||
          valBest ||
          this.opts.signal?.aborted
        ) {
          this.files.flush();
          const name = this.checkpoint(elapsed());
          if (valBest && cfg.eval.keepBest) markBest(this.runDir, name);
          this.refreshReport();
        }
      }
      if (stopped === 'signal' && this.lastCheckpoint !== checkpointName(this.step)) {
        this.files.flush();
        this.checkpoint(elapsed());
      }
    } finally {
      this.progress.end();
      this.files.flush();
    }
    return {
      runDir: this.runDir,
      steps: this.step,
      stopped,
      lastCheckpoint: this.lastCheckpoint,
      best: this.best,
      history,
      validations,
    };
  }

  /** Rewrites report.html from the files on disk; a report problem never stops training. */
  private refreshReport(): void {
    try {
      writeReport(this.runDir);
    } catch (e) {
      log.warn('could not write report.html', { error: (e as Error).message });
    }
  }

  private dumpNan(groups: Sample[][]): void {
    const file = path.join(this.runDir, `nan-step-${this.step + 1}.json`);
    const rows = groups.flat().map((s) => this.sampleRecord(s, null));
    try {
      writeFileAtomic(
        file,
        JSON.stringify(
          { step: this.step + 1, samples: rows, tokens: groups.flat().map((s) => s.tokens) },
          null,
          1,
        ),
      );
    } catch {
      // The NumericError that follows matters more than the dump.
    }
  }

  async dispose(): Promise<void> {
    this.refiner?.release();
    if (this.prevPoolCapMb !== undefined) {
      getBackend().setPoolCapMb?.(this.prevPoolCapMb);
      getBackend().trimPool?.();
      this.prevPoolCapMb = undefined;
    }
    await this.generator?.dispose();
    await this.sandbox?.dispose();
    this.files?.close();
  }
}

interface StageTimesAcc {
  sample: number;
  generate: number;
  reward: number;
  wait: number;
  sampledTokens: number;
  updateTokens: number;
  skipped: number;
}

function newTimes(): StageTimesAcc {
  return {
    sample: 0,
    generate: 0,
    reward: 0,
    wait: 0,
    sampledTokens: 0,
    updateTokens: 0,
    skipped: 0,
  };
}

/** Re-runs `fn` with the NaN/Inf check of every op on; the first offending op's message. */
function firstNonFiniteOp(fn: () => unknown): string | undefined {
  const prev = isCheckNanEnabled();
  setCheckNan(true);
  try {
    tidy(() => {
      fn();
    });
    return undefined;
  } catch (e) {
    return e instanceof NumericError ? e.message.split('\n')[0] : undefined;
  } finally {
    setCheckNan(prev);
  }
}

/** The K sequences of each group scored as separate sequences (sharedPrompt: false: the
 * reference path that scoreGroups must equal). */
function scoreGroupsSeparately(
  model: Parameters<typeof scoreTokens>[0],
  groups: { prompt: number[]; completions: number[][] }[],
  rng: Rng,
): ReturnType<typeof scoreTokens> {
  return scoreTokens(
    model,
    groups.flatMap((g) => g.completions.map((c) => ({ prompt: g.prompt, completion: c }))),
    { training: true, rng },
  );
}

let cachedVersion: string | undefined;
function packageVersion(): string {
  if (cachedVersion) return cachedVersion;
  try {
    const here = path.dirname(new URL(import.meta.url).pathname);
    for (let d = here; d !== path.dirname(d); d = path.dirname(d)) {
      const p = path.join(d, 'package.json');
      if (fs.existsSync(p)) {
        const j = JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (j.name === 'rl4qe') return (cachedVersion = j.version ?? '0.0.0');
      }
    }
  } catch {
    // fall through
  }
  return (cachedVersion = '0.0.0');
}

/** The run manifest's record of the compute mode (run.json field compute). */
function computeRecord(r: ComputeReport): ComputeRecord {
  return {
    requested: r.requested,
    used: r.used,
    units: r.units,
    converted: r.converted,
    ...(r.note ? { note: r.note } : {}),
  };
}

function gitCommit(): string | undefined {
  try {
    const here = path.dirname(new URL(import.meta.url).pathname);
    for (let d = here; d !== path.dirname(d); d = path.dirname(d)) {
      const head = path.join(d, '.git', 'HEAD');
      if (!fs.existsSync(head)) continue;
      const ref = fs.readFileSync(head, 'utf8').trim();
      if (!ref.startsWith('ref: ')) return ref;
      const p = path.join(d, '.git', ref.slice(5));
      return fs.existsSync(p) ? fs.readFileSync(p, 'utf8').trim() : undefined;
    }
  } catch {
    // not a git checkout
  }
  return undefined;
}

/** Trains a refiner as the configuration says (the typed API behind `rl4qe train`). */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const t = new Trainer(opts);
  try {
    await t.setup();
    return await t.run();
  } finally {
    await t.dispose();
  }
}
