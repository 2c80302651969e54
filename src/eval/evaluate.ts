// Paired evaluation: the same problems through the same fixed generator under several arms, so
// that differences between arms are differences of the query only.
//
//   original       the problem's own query
//   untrained      the refiner model with no adapter, greedy
//   adapter:NAME   the refiner + a trained PEFT adapter (a directory, or a run's best/latest)
//   prompt-search  the untrained refiner with the best of PROMPT_CANDIDATES, chosen on a sample of
//                  the training split (never the evaluation split)
//
// Every refinement and every generation goes through one SQLite cache (generators/cache.ts), so
// re-evaluating the same arms calls no model: the second run only re-scores. The guards of
// runs.ts (run version, base model, split overlap) run before the first model call.
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  CachedGenerator,
  GenerationCache,
  LocalEngineGenerator,
  resolveLocalWeights,
  createGenerator,
  parseGeneratorConfig,
  type GeneratorRequestOptions,
  type GenerationRequest,
  type GenerationResult,
  type Generator,
  type GeneratorConfig,
  type GeneratorIdentity,
} from '../generators/index.js';
import {
  applySplit,
  extractCode,
  generatorPrompt,
  extractRefinement,
  loadMbpp,
  loadTasks,
  makeSplit,
  type MbppProblem,
  type CodeTask,
  type GeneratorFormat,
  type GeneratorInput,
  type RefinerFormat,
  type SplitManifest,
} from '../data/index.js';
import {
  makeReward,
  runnerFromSandbox,
  type RewardSample,
  type SandboxLike,
} from '../rewards/index.js';
import { Sandbox, execVenvPython } from '../sandbox/index.js';
import { ConfigError } from '../util/errors.js';
import {
  baseModelInfo,
  checkBaseModel,
  checkSplitOverlap,
  EvalRefusedError,
  resolveAdapter,
  type BaseCheck,
  type BaseModelInfo,
  type OverlapCheck,
  type ResolvedAdapter,
} from './runs.js';
import {
  PROMPT_CANDIDATES,
  chooseCandidate,
  refinerRequest,
  type CandidateScore,
  type PromptCandidate,
} from './prompt-search.js';
import {
  compareArms,
  metricNamesFor,
  problemScores,
  summarizeArm,
  type ArmSummary,
  type Comparison,
  type EvalSample,
  type SampleOutcome,
} from './summary.js';
import { DEFAULT_RESAMPLES } from './stats.js';
import { FullWeightsGenerator } from './full-weights.js';
import { defaultFitOptions, fitRefinerRequest, loadPromptTokenizer } from './refiner-prompts.js';
import { StageClock, timedReward, type StageTimes } from './stages.js';
import type { FitOptions } from '../train/prompt.js';

/** Bumped when eval.json changes incompatibly. */
export const EVAL_VERSION = 1;

export type ArmSpec =
  | { kind: 'original' }
  | { kind: 'untrained' }
  | { kind: 'adapter'; path: string; name?: string }
  | { kind: 'prompt-search'; candidates?: readonly PromptCandidate[] };

export interface RefinerSettings {
  /** The refiner base model: GGUF file or Hugging Face directory. */
  model: string;
  /** auto (default): quantized for a GGUF file, float32 for a Hugging Face directory. */
  weights?: 'auto' | 'float32' | 'quantized';
  tokenizer?: string;
  chatTemplate?: string;
  contextSize?: number;
  maxBatchSize?: number;
  threads?: number;
  /**
   * Prompt format of the untrained arm, prompt search and adapters without a run config (default:
   * the first run's refiner.format, else 'paper' as the trainer).
   */
  format?: RefinerFormat;
  template?: string;
  /** Longest rewrite in tokens (default: the run's rollout.maxNewTokens, else 128). */
  maxTokens?: number;
  /**
   * Longest refiner prompt in tokens and what happens to a longer one, as in training
   * (train/prompt.ts): an adapter arm uses its run's refiner.maxPromptTokens / overlong; the
   * other arms these, else the first run's, else the trainer's defaults (512, truncate-middle).
   */
  maxPromptTokens?: number;
  overlong?: 'truncate-middle' | 'skip';
}

/**
 * 'pipelined': generation is sent in chunks and each chunk's tests run in the sandbox while the
 * next chunks (and the next arm) are refined and generated; the sandbox starts with the run.
 * 'sequential': every stage waits for the one before (the baseline `rl4qe bench eval` measures
 * the pipeline against); the sandbox starts at the first test. Both give the same results.
 */
export type EvalSchedule = 'pipelined' | 'sequential';

export interface EvalOptions {
  /** Dataset name for data/load.ts (default 'ds1000'); ignored when `tasks` is given. */
  dataset?: string;
  dataPath?: string;
  /** Already loaded tasks (tests, custom callers). */
  tasks?: CodeTask[];
  /** Which split to evaluate (default 'test'). */
  split?: 'test' | 'validation';
  /** First N problems of the split (its seeded order). */
  limit?: number;
  /**
   * The split when no run directory brings one: leak-free, seeded (default seed 0, the data
   * layer's default sizes).
   */
  splitSeed?: number;
  /** A split manifest to use instead (overrides the runs' and the default). */
  manifest?: SplitManifest;
  refiner: RefinerSettings;
  generator: GeneratorConfig;
  /** Default: original, untrained, prompt-search. Adapter arms are added by the caller. */
  arms?: readonly ArmSpec[];
  /** What the generator sees of a refinement (default: the run's, else 'refined' as the paper). */
  generatorInput?: GeneratorInput;
  /** Generator prompt format (default: the run's, else 'paper'). */
  generatorFormat?: GeneratorFormat;
  /** System prompt overriding the generator format's (chat formats). */
  generatorSystem?: string;
  /** Generator maxTokens (default 256). */
  maxTokens?: number;
  /** Generator samples per problem (default 1: greedy). k > 1 gives pass@k. */
  samples?: number;
  /** Generator temperature (default 0 for one sample, 0.8 for several). */
  temperature?: number;
  /** Seed of the generator samples and of the bootstrap (default 0). */
  seed?: number;
  /** 'auto' (default): run tests when the exec venv exists; 'on'; 'off': text metrics only. */
  exec?: 'auto' | 'on' | 'off';
  /** A sandbox to use (tests); otherwise one is created when exec is on. */
  sandbox?: SandboxLike;
  /** Training-split problems the prompt search scores each candidate on (default 10). */
  searchSize?: number;
  /** Metric the prompt search maximises (default pass@1 with exec, else css). */
  searchMetric?: string;
  /** Which checkpoint of a run directory (default best, else latest). */
  checkpoint?: 'best' | 'latest';
  bootstrapResamples?: number;
  /** Cache file (default: the generator cache's default); false disables the cache. */
  cache?: string | false;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Default 'pipelined'. */
  schedule?: EvalSchedule;
  /**
   * Generator requests per chunk of the pipeline (default: the local generator's maxBatchSize,
   * else 8): with the local engine, one decoding batch each.
   */
  chunkSize?: number;
}

export interface ArmInfo {
  name: string;
  kind: ArmSpec['kind'];
  /** Refiner prompt format and instruction (refiner arms). */
  format?: RefinerFormat;
  instruction?: string;
  /** How an over-long query was fitted (refiner arms), and how many were cut. */
  fit?: FitOptions;
  truncatedPrompts?: number;
  adapter?: {
    arg: string;
    /** A LoRA adapter, or a full fine-tuning checkpoint's weights. */
    kind: 'lora' | 'full';
    dir: string;
    runDir?: string;
    checkpoint?: { name: string; via: string };
    base: BaseCheck;
    overlap: OverlapCheck;
  };
}

export interface CallCounts {
  /** Requests made (cache hits included). */
  requests: number;
  /** Requests that reached the model (cache misses). */
  backend: number;
  cached: number;
  failures: number;
}

export interface EvalResult {
  version: number;
  createdAt: string;
  settings: {
    dataset: string;
    split: string;
    splitSource: string;
    limit: number | null;
    tasks: number;
    refiner: {
      model: string;
      weights: string;
      maxTokens: number;
      digest: string;
      /** The fit of the untrained and prompt-search arms (adapter arms: arms[].fit). */
      maxPromptTokens: number;
      overlong: 'truncate-middle' | 'skip';
    };
    generator: {
      identity: GeneratorIdentity;
      input: GeneratorInput;
      format: GeneratorFormat;
      system?: string;
    };
    maxTokens: number;
    samples: number;
    temperature: number;
    passK: number[];
    exec: boolean;
    execNote: string;
    bootstrap: { resamples: number; seed: number; level: number };
    baseline: string;
  };
  arms: ArmInfo[];
  summaries: ArmSummary[];
  comparisons: Comparison[];
  promptSearch: {
    metric: string;
    problems: string[];
    candidates: CandidateScore[];
    chosen: string;
    samples: EvalSample[];
  } | null;
  tasks: { id: string; stratum: string; group: string; query: string; reference: string }[];
  samples: EvalSample[];
  calls: { refiner: CallCounts; generator: CallCounts };
  seconds: number;
  /** Where the time went (stages.ts): busy seconds per stage, which overlap when pipelined. */
  timings: {
    schedule: EvalSchedule;
    chunkSize: number;
    stages: StageTimes;
    /** Seconds from starting our own sandbox pool to its workers being ready (null: not ours). */
    sandboxStartSeconds: number | null;
  };
}

/** Counts the requests that reach the wrapped generator (below the cache: the real calls). */
class CountingGenerator implements Generator {
  readonly identity: GeneratorIdentity;
  calls = 0;
  constructor(private readonly inner: Generator) {
    this.identity = inner.identity;
  }
  generate(
    rs: readonly GenerationRequest[],
    o?: GeneratorRequestOptions,
  ): Promise<GenerationResult[]> {
    this.calls += rs.length;
    return this.inner.generate(rs, o);
  }
  dispose(): Promise<void> {
    return this.inner.dispose();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

interface Counted {
  gen: Generator;
  counter: CountingGenerator;
  counts: CallCounts;
  /** The local engine underneath, for refiners (to load it early). */
  local?: LocalEngineGenerator;
}

function zero(): CallCounts {
  return { requests: 0, backend: 0, cached: 0, failures: 0 };
}

/** Requests through the cache; `backend` is read from the counters at the end (calls overlap). */
async function call(c: Counted, rs: GenerationRequest[]): Promise<GenerationResult[]> {
  if (rs.length === 0) return [];
  const out = await c.gen.generate(rs);
  c.counts.requests += rs.length;
  for (const r of out) {
    if (r.ok && r.cached) c.counts.cached++;
    if (!r.ok) c.counts.failures++;
  }
  return out;
}

interface Refined {
  ok: boolean;
  rewrite: string | null;
  tokens: number | null;
  cached: boolean | null;
  failure: string | null;
  /** Whether the query's middle was cut to fit maxPromptTokens (null: never prompted). */
  truncated: boolean | null;
}

function armName(spec: ArmSpec, taken: Set<string>): string {
  let base: string;
  if (spec.kind === 'adapter') {
    base = spec.name ?? `adapter:${path.basename(path.resolve(spec.path))}`;
  } else base = spec.kind;
  let n = base;
  for (let i = 2; taken.has(n); i++) n = `${base}#${i}`;
  taken.add(n);
  return n;
}

/** The evaluation: guards, refinements, generations, scores, statistics. */
export async function evaluate(opts: EvalOptions): Promise<EvalResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((): void => {});
  const dataset = opts.dataset ?? 'ds1000';
  const specs = opts.arms ?? [
    { kind: 'original' },
    { kind: 'untrained' },
    { kind: 'prompt-search' },
  ];
  if (specs.length < 2)
    throw new ConfigError('paired evaluation needs at least two arms', {
      where: 'arms',
      found: specs.map((s) => s.kind).join(', ') || 'none',
      hint: 'e.g. --arms original,untrained',
    });
  const samples = opts.samples ?? 1;
  if (!Number.isInteger(samples) || samples < 1)
    throw new ConfigError('samples must be a positive integer', {
      where: 'samples',
      found: String(samples),
    });
  const temperature = opts.temperature ?? (samples > 1 ? 0.8 : 0);
  if (samples > 1 && temperature === 0)
    throw new ConfigError('several samples per problem need a temperature > 0', {
      where: 'temperature',
      hint: 'greedy decoding would give the same sample k times',
    });
  const seed = opts.seed ?? 0;
  const maxTokens = opts.maxTokens ?? 256;
  const genCfg = parseGeneratorConfig(opts.generator);

  // ---- Everything the guards need, before any model call --------------------------------------
  const refiner: BaseModelInfo = baseModelInfo(opts.refiner.model);
  // 'auto' resolved once (generators/local.ts), so eval.json records the mode that ran.
  const refinerWeights = resolveLocalWeights(refiner.path, opts.refiner.weights);
  const taken = new Set<string>();
  const arms: { spec: ArmSpec; info: ArmInfo; adapter?: ResolvedAdapter }[] = [];
  for (const spec of specs) {
    const name = armName(spec, taken);
    const info: ArmInfo = { name, kind: spec.kind };
    if (spec.kind === 'adapter') {
      const a = await resolveAdapter(spec.path, { checkpoint: opts.checkpoint ?? 'best' });
      arms.push({ spec, info, adapter: a });
    } else arms.push({ spec, info });
  }
  const adapters = arms.filter((a) => a.adapter !== undefined);
  const allTasks =
    opts.tasks ?? (await loadTasks({ dataset, ...(opts.dataPath ? { path: opts.dataPath } : {}) }));
  let manifest: SplitManifest;
  let splitSource: string;
  const runWithSplit = adapters.find((a) => a.adapter!.split !== undefined);
  if (opts.manifest) {
    manifest = opts.manifest;
    splitSource = 'given manifest';
  } else if (runWithSplit) {
    manifest = runWithSplit.adapter!.split!;
    splitSource = `${path.join(runWithSplit.adapter!.runDir!, 'split.json')}`;
  } else if (dataset === 'mbpp' && opts.tasks === undefined && opts.splitSeed === undefined) {
    // MBPP has an official split (test 11–510, validation 511–600, train 601–974): results stay
    // comparable with published numbers.
    manifest = mbppOfficialManifest(
      await loadMbpp(opts.dataPath !== undefined ? { path: opts.dataPath } : {}),
    );
    splitSource = 'MBPP official split';
  } else {
    manifest = makeSplit(allTasks, { seed: opts.splitSeed ?? 0, dataset });
    splitSource = `leak-free split, seed ${opts.splitSeed ?? 0}`;
  }
  const parts = applySplit(allTasks, manifest);
  const splitName = opts.split ?? 'test';
  let evalTasks = splitName === 'validation' ? parts.validation : parts.test;
  if (opts.limit !== undefined) {
    if (!Number.isInteger(opts.limit) || opts.limit < 1)
      throw new ConfigError('limit must be a positive integer', {
        where: 'limit',
        found: String(opts.limit),
      });
    evalTasks = evalTasks.slice(0, opts.limit);
  }
  if (evalTasks.length === 0)
    throw new ConfigError(`the ${splitName} split is empty`, {
      where: splitSource,
      hint: 'use --split test, or a run whose split has a validation set',
    });
  const evalIds = new Set(evalTasks.map((t) => t.id));
  for (const a of adapters) {
    const r = a.adapter!;
    const base = checkBaseModel(r, refiner);
    const overlap = checkSplitOverlap(r, evalTasks, allTasks);
    a.info.adapter = {
      arg: r.arg,
      kind: r.kind,
      dir: r.adapterDir,
      ...(r.runDir !== undefined ? { runDir: r.runDir } : {}),
      ...(r.checkpoint ? { checkpoint: r.checkpoint } : {}),
      base,
      overlap,
    };
  }
  // Unset prompt settings follow the first run that records them (so its adapter is evaluated as
  // it was trained), else the trainer's defaults (train/config.ts).
  const fromRun = <K extends keyof ResolvedAdapter['prompt']>(k: K): ResolvedAdapter['prompt'][K] =>
    adapters.find((a) => a.adapter!.prompt[k] !== undefined)?.adapter!.prompt[k];
  const defaultFormat: RefinerFormat = opts.refiner.format ?? fromRun('format') ?? 'paper';
  const genInput: GeneratorInput = opts.generatorInput ?? fromRun('generatorInput') ?? 'refined';
  const genFormat: GeneratorFormat = opts.generatorFormat ?? fromRun('generatorFormat') ?? 'paper';
  const genSystem = opts.generatorSystem ?? fromRun('generatorSystem');
  const refMaxTokens = opts.refiner.maxTokens ?? fromRun('maxNewTokens') ?? 128;
  const defaults = defaultFitOptions();
  const baseFit: FitOptions = {
    maxPromptTokens:
      opts.refiner.maxPromptTokens ?? fromRun('maxPromptTokens') ?? defaults.maxPromptTokens,
    overlong: opts.refiner.overlong ?? fromRun('overlong') ?? defaults.overlong,
  };
  if (!Number.isInteger(baseFit.maxPromptTokens) || baseFit.maxPromptTokens < 1)
    throw new ConfigError('maxPromptTokens must be a positive integer', {
      where: 'refiner.maxPromptTokens',
      found: String(baseFit.maxPromptTokens),
    });
  for (const a of arms) {
    if (a.spec.kind === 'original') continue;
    a.info.format = a.adapter?.prompt.format ?? defaultFormat;
    a.info.fit = {
      maxPromptTokens: a.adapter?.prompt.maxPromptTokens ?? baseFit.maxPromptTokens,
      overlong: a.adapter?.prompt.overlong ?? baseFit.overlong,
    };
  }
  // The refiner's tokenizer (no model): prompts are fitted with it, and a chat format for a model
  // without a chat template is refused now rather than at its arm.
  const refinerArms = arms.filter((a) => a.spec.kind !== 'original');
  const promptTok =
    refinerArms.length > 0
      ? await loadPromptTokenizer({
          model: opts.refiner.model,
          ...(opts.refiner.tokenizer !== undefined ? { tokenizer: opts.refiner.tokenizer } : {}),
          ...(opts.refiner.chatTemplate !== undefined
            ? { chatTemplate: opts.refiner.chatTemplate }
            : {}),
        })
      : undefined;
  const chatArm = refinerArms.find((a) => a.info.format !== 'paper');
  if (chatArm && !promptTok!.chatTemplate)
    throw new ConfigError('the refiner model has no chat template', {
      where: `arm ${chatArm.info.name}: refiner format`,
      expected: "a completion format ('paper') for a model without a chat template",
      found: chatArm.info.format,
      hint: 'use --refiner-format paper, or a refiner with a chat template',
    });
  const schedule: EvalSchedule = opts.schedule ?? 'pipelined';
  const chunkSize = opts.chunkSize ?? (genCfg.backend === 'local' ? (genCfg.maxBatchSize ?? 8) : 8);
  if (!Number.isInteger(chunkSize) || chunkSize < 1)
    throw new ConfigError('chunkSize must be a positive integer', {
      where: 'chunkSize',
      found: String(chunkSize),
    });
  // The prompt search's problems: the head of the training split's seeded order, never an
  // evaluation problem (disjoint by construction; checked anyway).
  const searchSize = opts.searchSize ?? 10;
  const searchTasks = parts.train.filter((t) => !evalIds.has(t.id)).slice(0, searchSize);
  if (arms.some((a) => a.spec.kind === 'prompt-search') && searchTasks.length === 0)
    throw new ConfigError('the prompt search needs training-split problems', {
      where: splitSource,
      found: 'an empty training split',
    });

  // Execution: decided before anything starts, and said in the results.
  const haveTests = evalTasks.some((t) => t.tests !== undefined);
  const execMode = opts.exec ?? 'auto';
  let execNote: string;
  let exec: boolean;
  if (execMode === 'off') {
    exec = false;
    execNote = 'off (--exec off)';
  } else if (!haveTests) {
    exec = false;
    execNote = 'off: the tasks have no tests';
  } else if (opts.sandbox || execMode === 'on' || execVenvPython() !== undefined) {
    exec = true;
    execNote = opts.sandbox ? 'on (given sandbox)' : 'on';
  } else {
    exec = false;
    execNote = 'off: no exec venv (run `rl4qe setup-exec`); text metrics only';
  }
  const passK =
    samples > 1 ? [...new Set([1, ...[5, 10].filter((k) => k < samples), samples])] : [1];
  const metricNames = metricNamesFor(exec, passK);
  const searchMetric = opts.searchMetric ?? (exec ? 'pass@1' : 'css');
  if (!metricNamesFor(exec, passK).includes(searchMetric))
    throw new ConfigError(`unknown prompt-search metric '${searchMetric}'`, {
      where: 'searchMetric',
      expected: metricNames.join(', '),
    });

  // ---- Models: lazy (a fully cached re-run loads none) -----------------------------------------
  // The cache file: --cache-file, else the generator config's cache.file, else the default.
  // A generator config with cache.enabled false keeps its answers out of the cache (refinements
  // are still cached).
  const cacheFile =
    opts.cache !== undefined && opts.cache !== false ? opts.cache : genCfg.cache.file;
  const cache =
    opts.cache === false
      ? undefined
      : new GenerationCache(cacheFile !== undefined ? { file: cacheFile } : {});
  const clock = new StageClock();
  const wrap = (g: Generator, useCache = true): Counted => {
    const counter = new CountingGenerator(g);
    return {
      gen: cache && useCache ? new CachedGenerator(counter, cache) : counter,
      counter,
      counts: zero(),
    };
  };
  const refinerCounts = zero();
  const genCounts = zero();
  // The local engines decode in this thread (between two batches the event loop takes the
  // sandbox's replies and sends it the next tests). A worker thread would keep the loop free
  // throughout, but decoding there measured 7-12x slower on 2 busy cores (OpenMP threads spinning;
  // fine with OMP_WAIT_POLICY=passive): left to the generator config's `worker`.
  const generator = wrap(
    createGenerator({ ...genCfg, cache: { enabled: false } }),
    genCfg.cache.enabled,
  );
  generator.counts = genCounts;
  const refinerCounters: CountingGenerator[] = [];
  const localOpts = {
    model: opts.refiner.model,
    ...(opts.refiner.tokenizer !== undefined ? { tokenizer: opts.refiner.tokenizer } : {}),
    ...(opts.refiner.chatTemplate !== undefined ? { chatTemplate: opts.refiner.chatTemplate } : {}),
    ...(opts.refiner.contextSize !== undefined ? { contextSize: opts.refiner.contextSize } : {}),
    ...(opts.refiner.maxBatchSize !== undefined ? { maxBatchSize: opts.refiner.maxBatchSize } : {}),
    ...(opts.refiner.threads !== undefined ? { threads: opts.refiner.threads } : {}),
  };
  let baseRefiner: Counted | undefined;
  const adapterRefiners = new Map<string, Counted>();
  const refinerFor = (a: (typeof arms)[number]): Counted => {
    const mk = (g: Generator, local?: LocalEngineGenerator): Counted => {
      const c = wrap(g);
      c.counts = refinerCounts;
      refinerCounters.push(c.counter);
      if (local) c.local = local;
      return c;
    };
    const local = (adapter?: string): Counted => {
      const g = new LocalEngineGenerator({
        ...localOpts,
        weights: refinerWeights,
        ...(adapter ? { adapter } : {}),
      });
      return mk(g, g);
    };
    if (!a.adapter) return (baseRefiner ??= local());
    let c = adapterRefiners.get(a.info.name);
    if (!c) {
      c =
        a.adapter.kind === 'full'
          ? mk(new FullWeightsGenerator({ local: localOpts, weightsDir: a.adapter.adapterDir }))
          : local(a.adapter.adapterDir);
      adapterRefiners.set(a.info.name, c);
    }
    return c;
  };
  // The sandbox: started at once in a pipelined evaluation (its workers warm up while the models
  // load and generate), at the first test in a sequential one (no overlap at all).
  let ownSandbox: Sandbox | undefined;
  let sandboxStartSeconds: number | null = null;
  const sandboxNow = (): SandboxLike => {
    if (opts.sandbox) return opts.sandbox;
    if (!ownSandbox) {
      const t = performance.now();
      // The data-science imports only pay for DS-1000; HumanEval / MBPP tests need none. A
      // pipelined evaluation starts the workers while the models load and decode: on a loaded
      // 2-core machine their DS-1000 imports took over the pool's default 180 s there (every
      // test then a sandbox_error), so they get longer; tests wait in the pool's queue meanwhile.
      ownSandbox = new Sandbox({
        preload: evalTasks.some((t) => t.source === 'ds1000'),
        startupSeconds: 900,
      });
      void ownSandbox.ready().then(
        () => (sandboxStartSeconds = (performance.now() - t) / 1000),
        () => {},
      );
    }
    return ownSandbox;
  };
  const lazySandbox: SandboxLike = {
    runDs1000: (t) => sandboxNow().runDs1000(t),
    runScript: (r) => sandboxNow().runScript(r),
  };
  const disposeAll = async (): Promise<void> => {
    for (const c of [generator, baseRefiner, ...adapterRefiners.values()]) await c?.gen.dispose();
    await ownSandbox?.dispose();
    cache?.close();
  };

  try {
    // An adapter whose base could not be checked by name is loaded now: a shape mismatch then
    // stops evaluation before any generator call.
    for (const a of adapters) {
      if (a.info.adapter!.base.via !== 'unchecked') continue;
      try {
        await refinerFor(a).local!.load();
      } catch (e) {
        throw new EvalRefusedError('base-model', 'the adapter does not fit the refiner model', {
          where: a.adapter!.adapterDir,
          expected: `an adapter for ${path.basename(refiner.path)}`,
          found: e instanceof Error ? e.message.split('\n')[0] : String(e),
          hint: 'pass the base model the adapter was trained on as --refiner',
          cause: e,
        });
      }
    }
    if (exec && schedule === 'pipelined') sandboxNow();
    const reward = timedReward(
      makeReward({
        weights: exec ? { exec: 0 } : {},
        ...(exec ? { runner: runnerFromSandbox(lazySandbox) } : {}),
      }),
      clock,
    );

    const refine = async (
      a: (typeof arms)[number],
      tasks: readonly CodeTask[],
      instruction: string | undefined,
      tag: string,
    ): Promise<Refined[]> => {
      const format = a.info.format!;
      const template = a.adapter?.prompt.template ?? opts.refiner.template;
      // The query fitted to maxPromptTokens as training fitted it (train/prompt.ts).
      const fitted = tasks.map((t) =>
        fitRefinerRequest(
          t.query,
          (q) =>
            refinerRequest(`${tag}/${t.id}`, q, {
              format,
              ...(template !== undefined ? { template } : {}),
              ...(instruction !== undefined ? { instruction } : {}),
              params: { temperature: 0, maxTokens: refMaxTokens },
            }),
          promptTok!,
          a.info.fit!,
          format,
        ),
      );
      const rs = fitted.flatMap((f) => (f.ok ? [f.request] : []));
      const out = await clock.time('refine', () => call(refinerFor(a), rs));
      let j = 0;
      return fitted.map((f): Refined => {
        if (!f.ok)
          return {
            ok: false,
            rewrite: null,
            tokens: null,
            cached: null,
            failure: f.message,
            truncated: null,
          };
        const r = out[j++]!;
        return r.ok
          ? {
              ok: true,
              rewrite: extractRefinement(r.text),
              tokens: r.usage.completionTokens,
              cached: r.cached,
              failure: null,
              truncated: f.truncated,
            }
          : {
              ok: false,
              rewrite: null,
              tokens: null,
              cached: null,
              failure: `${r.kind}: ${r.message}`,
              truncated: f.truncated,
            };
      });
    };

    /**
     * Generates `samples` per task (refinements null for the original arm) in chunks of
     * `chunkSize` requests, and scores each chunk when it comes back. Pipelined: every chunk is
     * sent at once (the local engine decodes them in that order, one batch each) and a chunk's
     * tests run in the sandbox while the later chunks decode; resolves when the last chunk is
     * generated, `scored` when the last is scored. Sequential: chunk by chunk, each generated
     * and then scored before the next is sent; `scored` is already done. The requests, batches
     * and scores are the same either way.
     */
    const generateAndScore = async (
      arm: string,
      tasks: readonly CodeTask[],
      refined: readonly Refined[] | null,
    ): Promise<{ samples: EvalSample[]; scored: Promise<void> }> => {
      // Every sample in its final order; those sent to the generator are filled as they return.
      const out: EvalSample[] = [];
      const todo: { request: GenerationRequest; sample: EvalSample; task: CodeTask }[] = [];
      tasks.forEach((t, ti) => {
        const rf = refined?.[ti];
        const base = (
          k: number,
        ): Pick<EvalSample, 'arm' | 'task' | 'stratum' | 'k' | 'rewrite' | 'rewriteTokens'> => ({
          arm,
          task: t.id,
          stratum: t.stratum,
          k,
          rewrite: rf?.rewrite ?? null,
          rewriteTokens: rf?.tokens ?? null,
        });
        const truncated = rf?.truncated === true ? { promptTruncated: true as const } : {};
        if (rf && !rf.ok) {
          for (let k = 0; k < samples; k++)
            out.push({
              ...base(k),
              generatorInput: null,
              output: null,
              code: null,
              components: {},
              outcome: 'refiner_failure',
              failure: rf.failure,
              cached: { refiner: null, generator: null },
              ...truncated,
            });
          return;
        }
        const gp = generatorPrompt({
          original: t.query,
          ...(rf ? { refined: rf.rewrite! } : {}),
          input: rf ? genInput : 'original',
          format: genFormat,
          ...(genSystem !== undefined ? { system: genSystem } : {}),
        });
        for (let k = 0; k < samples; k++) {
          const params = {
            temperature,
            maxTokens,
            ...(samples > 1 ? { seed: seed + k } : {}),
            ...(gp.kind === 'completion' ? { stop: gp.stop } : {}),
          };
          const id = `${arm}/${t.id}/${k}`;
          const request: GenerationRequest =
            gp.kind === 'completion'
              ? { id, prompt: gp.prompt, params }
              : { id, messages: gp.messages, params };
          const sample: EvalSample = {
            ...base(k),
            generatorInput:
              gp.kind === 'completion' ? gp.prompt : gp.messages[gp.messages.length - 1]!.content,
            output: null,
            code: null,
            components: {},
            outcome: 'not_run',
            failure: null,
            cached: { refiner: rf ? rf.cached : null, generator: null },
            ...truncated,
          };
          out.push(sample);
          todo.push({ request, sample, task: t });
        }
      });
      const chunks: (typeof todo)[] = [];
      for (let i = 0; i < todo.length; i += chunkSize) chunks.push(todo.slice(i, i + chunkSize));
      const generate = async (chunk: typeof todo): Promise<void> => {
        const results = await clock.time('generate', () =>
          call(
            generator,
            chunk.map((c) => c.request),
          ),
        );
        results.forEach((r, i) => {
          const { sample: s, task: t } = chunk[i]!;
          if (!r.ok) {
            s.outcome = 'generator_failure';
            s.failure = `${r.kind}: ${r.message}`;
            return;
          }
          s.output = r.text;
          s.code = extractCode(r.text, t.source === 'ds1000' ? { ds1000Prompt: t.query } : {});
          s.cached.generator = r.cached;
        });
      };
      const score = async (chunk: typeof todo): Promise<void> => {
        const live = chunk.filter((c) => c.sample.code !== null);
        if (live.length === 0) return;
        const batch: RewardSample[] = live.map(({ sample: s, task: t }) => ({
          query: t.query,
          ...(s.rewrite !== null ? { refinedQuery: s.rewrite } : {}),
          rawOutput: s.output ?? '',
          code: s.code!,
          reference: t.reference,
          task: t,
        }));
        const scored = await reward.score(batch);
        live.forEach(({ sample: s }, j) => {
          const sc = scored[j]!;
          s.components = sc.components;
          const status = sc.info.exec?.status;
          if (typeof status === 'string' && status !== 'no_tests' && status !== 'generation_failed')
            s.outcome = status as SampleOutcome;
          const errorType = sc.info.exec?.errorType;
          const detail = sc.info.exec?.detail;
          if (typeof errorType === 'string' && status !== 'pass')
            s.execError = typeof detail === 'string' ? `${errorType}: ${detail}` : errorType;
          const retriedAfter = sc.info.exec?.retriedAfter;
          if (typeof retriedAfter === 'string') s.execRetriedAfter = retriedAfter;
        });
      };
      if (schedule === 'sequential') {
        for (const c of chunks) {
          await generate(c);
          await score(c);
        }
        return { samples: out, scored: Promise.resolve() };
      }
      const scoring: Promise<void>[] = [];
      await Promise.all(
        chunks.map(async (c) => {
          await generate(c);
          const p = score(c);
          // Marked handled now (the caller's Promise.all still sees a rejection): a scoring
          // error must not become an unhandled rejection while later chunks are generating.
          p.catch(() => {});
          scoring.push(p);
        }),
      );
      return { samples: out, scored: Promise.all(scoring).then(() => undefined) };
    };

    // ---- The arms -----------------------------------------------------------------------------
    const allSamples: EvalSample[] = [];
    const pending: Promise<void>[] = [];
    let promptSearch: EvalResult['promptSearch'] = null;
    for (const a of arms) {
      const name = a.info.name;
      let refined: Refined[] | null = null;
      if (a.spec.kind === 'prompt-search') {
        const candidates = a.spec.candidates ?? PROMPT_CANDIDATES;
        log(
          `prompt search: ${candidates.length} instructions on ${searchTasks.length} training problems (${searchMetric})`,
        );
        // Each candidate's tests run while the next candidate refines and generates.
        const runs: { c: PromptCandidate; samples: EvalSample[]; scored: Promise<void> }[] = [];
        for (const c of candidates) {
          const rf = await refine(a, searchTasks, c.instruction, `search:${c.name}`);
          const g = await generateAndScore(`search:${c.name}`, searchTasks, rf);
          g.scored.catch(() => {});
          runs.push({ c, ...g });
        }
        const scores: CandidateScore[] = [];
        const searchSamples: EvalSample[] = [];
        for (const { c, samples: ss, scored } of runs) {
          await scored;
          searchSamples.push(...ss);
          const ps = problemScores(ss, passK);
          const vs = ps
            .map((p) => p.metrics[searchMetric])
            .filter((v): v is number => typeof v === 'number');
          const meanOf = (m: string): number | null => {
            const xs = ps
              .map((p) => p.metrics[m])
              .filter((v): v is number => typeof v === 'number');
            return xs.length > 0 ? xs.reduce((x, y) => x + y, 0) / xs.length : null;
          };
          scores.push({
            name: c.name,
            instruction: c.instruction,
            score: vs.length > 0 ? vs.reduce((x, y) => x + y, 0) / vs.length : null,
            tiebreak: searchMetric === 'css' ? null : meanOf('css'),
            n: vs.length,
            failures: ss.filter(
              (s) => s.outcome === 'generator_failure' || s.outcome === 'refiner_failure',
            ).length,
          });
        }
        const best = chooseCandidate(scores)!;
        a.info.instruction = best.instruction;
        promptSearch = {
          metric: searchMetric,
          problems: searchTasks.map((t) => t.id),
          candidates: scores,
          chosen: best.name,
          samples: searchSamples,
        };
        log(
          `prompt search: chose '${best.name}' (${searchMetric} ${best.score?.toFixed(4) ?? 'n/a'})`,
        );
        refined = await refine(a, evalTasks, best.instruction, name);
      } else if (a.spec.kind !== 'original') {
        log(`${name}: refining ${evalTasks.length} problems`);
        refined = await refine(a, evalTasks, undefined, name);
      }
      if (refined) a.info.truncatedPrompts = refined.filter((r) => r.truncated === true).length;
      // An adapter's model is not needed after its refinements: free it before generating.
      const ar = adapterRefiners.get(name);
      if (ar) {
        await ar.gen.dispose();
        adapterRefiners.delete(name);
      }
      log(`${name}: generating ${evalTasks.length * samples} samples`);
      // Tests of this arm run in the sandbox while the next arm refines and generates.
      const g = await generateAndScore(name, evalTasks, refined);
      allSamples.push(...g.samples);
      g.scored.catch(() => {});
      pending.push(g.scored);
    }
    await Promise.all(pending);
    genCounts.backend = generator.counter.calls;
    refinerCounts.backend = refinerCounters.reduce((n, c) => n + c.calls, 0);

    // ---- Numbers ------------------------------------------------------------------------------
    const scoresByArm = new Map<string, ReturnType<typeof problemScores>>();
    const summaries: ArmSummary[] = arms.map((a) => {
      const ss = allSamples.filter((s) => s.arm === a.info.name);
      const ps = problemScores(ss, passK);
      scoresByArm.set(a.info.name, ps);
      return summarizeArm(a.info.name, ss, ps, metricNames);
    });
    const baseArm = arms.find((a) => a.spec.kind === 'original') ?? arms[0]!;
    const resamples = opts.bootstrapResamples ?? DEFAULT_RESAMPLES;
    const comparisons = arms
      .filter((a) => a !== baseArm)
      .map((a) =>
        compareArms(
          { arm: baseArm.info.name, scores: scoresByArm.get(baseArm.info.name)! },
          { arm: a.info.name, scores: scoresByArm.get(a.info.name)! },
          metricNames,
          { resamples, seed },
        ),
      );
    return {
      version: EVAL_VERSION,
      createdAt: new Date().toISOString(),
      settings: {
        dataset: opts.tasks ? (allTasks[0]?.source ?? dataset) : dataset,
        split: splitName,
        splitSource,
        limit: opts.limit ?? null,
        tasks: evalTasks.length,
        refiner: {
          model: refiner.path,
          weights: refinerWeights,
          maxTokens: refMaxTokens,
          digest: refiner.digest,
          maxPromptTokens: baseFit.maxPromptTokens,
          overlong: baseFit.overlong,
        },
        generator: {
          identity: generator.gen.identity,
          input: genInput,
          format: genFormat,
          ...(genSystem !== undefined ? { system: genSystem } : {}),
        },
        maxTokens,
        samples,
        temperature,
        passK,
        exec,
        execNote,
        bootstrap: { resamples, seed, level: 0.95 },
        baseline: baseArm.info.name,
      },
      arms: arms.map((a) => a.info),
      summaries,
      comparisons,
      promptSearch,
      tasks: evalTasks.map((t) => ({
        id: t.id,
        stratum: t.stratum,
        group: t.group,
        query: t.query,
        reference: t.reference,
      })),
      samples: allSamples,
      calls: { refiner: refinerCounts, generator: genCounts },
      seconds: (performance.now() - t0) / 1000,
      timings: { schedule, chunkSize, stages: clock.seconds(), sandboxStartSeconds },
    };
  } finally {
    await disposeAll();
  }
}

/** MBPP's official split as a manifest (the few-shot prompt tasks 1–10 are in none). */
export function mbppOfficialManifest(problems: readonly MbppProblem[]): SplitManifest {
  const ids = { train: [] as string[], validation: [] as string[], test: [] as string[] };
  for (const p of problems) if (p.split !== 'prompt') ids[p.split].push(`mbpp/${p.taskId}`);
  const sizes = {
    train: ids.train.length,
    validation: ids.validation.length,
    test: ids.test.length,
  };
  return {
    version: 1,
    dataset: 'mbpp',
    // No families in MBPP: the official split is leak-free by construction.
    strategy: 'leak-free',
    seed: 0,
    createdAt: new Date(0).toISOString(),
    sizes,
    countsByStratum: { mbpp: sizes },
    ids,
  };
}

/** True when `p` looks like a run directory (for CLI messages). */
export function isRunDirectory(p: string): boolean {
  return existsSync(path.join(p, 'run.json'));
}
