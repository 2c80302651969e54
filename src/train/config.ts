// The trainer's one configuration (like TRL's GRPOConfig): every key, its default and a one-line
// doc live in the schema below and nowhere else. A run's configuration is layers deep-merged in
// order — config files (YAML or JSON), then `--set key=value` flags, or objects from the API —
// and then validated once against this schema, which fills in the defaults. Unknown keys, wrong
// types and impossible combinations are ConfigErrors that name the key and where it was set
// (`configs/x.yaml:12 (optim.lr)`, `--set optim.lr`).
//
// Merging: objects merge key by key; scalars and arrays replace. Defaults are not a layer (they
// are the schema's), so a layer that gives reward.weights gives the whole weight map unless a
// later layer changes single weights. Relative paths stay relative to the working directory;
// path-valued keys expand `~` and `${VAR}` (`${RL4QE_HOME}` falls back to rl4qe's cache root).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { isMap, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument } from 'yaml';
import type { Node as YamlNode } from 'yaml';
import { generatorConfigSchema, type ParsedGeneratorConfig } from '../generators/config.js';
import { REWARD_NAMES } from '../rewards/factory.js';
import { TEXT_METRICS } from '../rewards/text-rewards.js';
import { DATASETS } from '../data/load.js';
import type { GeneratorFormat, GeneratorInput, RefinerFormat } from '../data/prompts.js';
import type { CodeTask } from '../data/tasks.js';
import { ConfigError, FormatError, NotFoundError } from '../util/errors.js';
import { rl4qeHome } from '../util/paths.js';

// ---------------------------------------------------------------------------------------------
// Value lists. Where the type lives elsewhere, `every<T>()` makes a missing member a compile
// error, so a format added in data/prompts.ts cannot silently be unreachable from configs.

function every<T extends string>() {
  return <const A extends readonly T[]>(a: A & ([T] extends [A[number]] ? unknown : never)): A => a;
}

const REFINER_FORMATS = every<RefinerFormat>()(['paper', 'paper-chat', 'chat', 'chat-ds1000']);
const GENERATOR_FORMATS = every<GeneratorFormat>()(['paper', 'chat', 'ds1000-completion']);
// 'original' (the generator sees the query alone) is evaluation's baseline: a training run with
// it would give every rewrite the same reward, so it is not offered here.
const GENERATOR_INPUTS = [
  'refined',
  'original+refined',
] as const satisfies readonly GeneratorInput[];
export const ADAPTER_TARGETS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;

/** Input of a custom reward target: what the trainer knows about one sample before scoring. */
export interface RewardTargetSample {
  task: CodeTask;
  query: string;
  rewrite: string;
}

/**
 * A custom reward target (API only): the text scored in place of generated code; the text
 * metrics still compare it with the task's reference, and exec runs it as code.
 */
export type RewardTargetFn = (s: RewardTargetSample) => string | Promise<string>;

// ---------------------------------------------------------------------------------------------
// The schema. Every key has `.describe()`: describeConfig() prints it and the test fails when a
// key has none.

const int = (): z.ZodNumber => z.number().int();

/** An object section whose keys all have defaults: absent means all defaults. */
function section<S extends z.core.$ZodLooseShape>(shape: S, doc: string) {
  // `{}` is a valid input when every key has a default; the generic type cannot show it.
  return z
    .strictObject(shape)
    .prefault({} as never)
    .describe(doc);
}

const refinerSchema = z
  .object({
    model: z
      .string()
      .min(1)
      .describe('Refiner base model: a GGUF file or a Hugging Face model directory (required)'),
    tokenizer: z
      .string()
      .min(1)
      .optional()
      .describe("tokenizer.json directory or GGUF file (default: the model's own)"),
    weights: z
      .enum(['auto', 'quantized', 'float32'])
      .default('auto')
      .describe(
        'Base weights in memory: auto = quantized for GGUF, float32 for HF dirs (and for full fine-tuning, and for compute bf16)',
      ),
    compute: z
      .enum(['fp32', 'bf16'])
      .default('fp32')
      .describe(
        "Frozen base products (rollout prefill, scoring, update): fp32, or bf16 on the CPU's bf16 units (AVX512-BF16 vdpbf16ps, fp32 sums; LoRA, its gradients and AdamW stay fp32); float32 projection weights are rounded to bf16 once, GGUF blocks stay as they are; falls back to fp32 with a note where there is no unit; not with adapter.kind full",
      ),
    format: z
      .enum(REFINER_FORMATS)
      .default('paper')
      .describe('Refiner prompt format (data/prompts.ts): paper, paper-chat, chat, chat-ds1000'),
    template: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Refiner template with {query} (formats paper and paper-chat; default: the paper's)",
      ),
    maxPromptTokens: int()
      .positive()
      .default(512)
      .describe(
        'Longest refiner prompt in tokens; longer ones are handled as refiner.overlong says',
      ),
    overlong: z
      .enum(['truncate-middle', 'skip'])
      .default('truncate-middle')
      .describe(
        'Too-long prompts: cut the middle of the QUERY (marker "[…]" on its own line; never the instruction cue), or skip the task',
      ),
    chatTemplate: z
      .string()
      .min(1)
      .optional()
      .describe("Jinja chat template text overriding the tokenizer's (chat formats only)"),
  })
  .strict()
  // An absent section parses as {}, so a missing model is reported as refiner.model.
  .prefault({} as never)
  .describe('The policy being trained');

const adapterSchema = section(
  {
    kind: z
      .enum(['lora', 'full'])
      .default('lora')
      .describe('lora: train low-rank adapters only; full: train every weight (needs float32)'),
    r: int().positive().default(8).describe('LoRA rank'),
    alpha: z
      .number()
      .positive()
      .default(32)
      .describe('LoRA alpha (the update is scaled by alpha / r)'),
    dropout: z.number().min(0).lt(1).default(0.1).describe('LoRA dropout on the adapter input'),
    targets: z
      .array(z.enum(ADAPTER_TARGETS))
      .min(1)
      .default(['q_proj', 'k_proj', 'v_proj', 'o_proj'])
      .describe(
        'Projections that get adapters: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj',
      ),
    init: z
      .string()
      .min(1)
      .optional()
      .describe('PEFT adapter directory to start from (default: fresh adapters, B = 0)'),
  },
  'What is trained',
);

const optimSchema = section(
  {
    lr: z.number().positive().default(1e-4).describe('Peak learning rate (AdamW)'),
    weightDecay: z.number().min(0).default(0.01).describe('AdamW decoupled weight decay'),
    beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW first-moment decay'),
    beta2: z.number().min(0).lt(1).default(0.999).describe('AdamW second-moment decay'),
    eps: z.number().positive().default(1e-8).describe('AdamW epsilon'),
    maxGradNorm: z
      .number()
      .min(0)
      .default(1.0)
      .describe('Clip the global gradient L2 norm to this (0 = no clipping)'),
    warmupSteps: int().min(0).default(0).describe('Linear warm-up steps from 0 to optim.lr'),
    schedule: z
      .enum(['constant', 'linear', 'cosine'])
      .default('constant')
      .describe('Learning-rate schedule after warm-up (linear and cosine decay to 0 at run.steps)'),
  },
  'AdamW and the learning-rate schedule',
);

const rolloutSchema = section(
  {
    queriesPerStep: int().positive().default(2).describe('Queries (tasks) per optimiser step'),
    samplesPerQuery: int()
      .positive()
      .default(4)
      .describe('Rewrites sampled per query (K); rloo and group baselines need K >= 2'),
    gradAccumulation: int()
      .positive()
      .default(1)
      .describe('Micro-batches per step (must divide rollout.queriesPerStep)'),
    temperature: z.number().min(0).default(0.7).describe('Refiner sampling temperature'),
    topP: z.number().gt(0).max(1).default(0.9).describe('Refiner nucleus sampling (1 = off)'),
    topK: int().min(0).default(0).describe('Refiner top-k sampling (0 = off)'),
    maxNewTokens: int().positive().default(128).describe('Longest rewrite in tokens'),
    sharedPrompt: z
      .boolean()
      .default(true)
      .describe("One prefill and one scoring pass of the prompt per query's K samples"),
  },
  'Sampling rewrites from the refiner',
);

const lossSchema = section(
  {
    baseline: z
      .enum(['rloo', 'none', 'ema', 'group'])
      .default('rloo')
      .describe(
        'REINFORCE baseline: rloo (leave-one-out mean), none, ema (running mean), group (group mean)',
      ),
    emaDecay: z.number().min(0).lt(1).default(0.9).describe('Decay of the ema baseline'),
    scaleByStd: z
      .boolean()
      .default(false)
      .describe("Divide advantages by the group's reward std (GRPO-style)"),
    normalization: z
      .enum(['sequence', 'token'])
      .default('sequence')
      .describe(
        'Sum log-probs per rewrite (sequence) or average over all tokens of the step (token)',
      ),
    klCoef: z.number().min(0).default(0).describe('Weight of KL(policy ‖ frozen base) in the loss'),
    entropyCoef: z.number().min(0).default(0).describe('Weight of the entropy bonus'),
  },
  'The policy-gradient loss',
);

const execSchema = section(
  {
    pSyntax: z.number().min(0).default(0.5).describe('Reward for a syntax error is -pSyntax'),
    pTimeout: z.number().min(0).default(0.5).describe('Reward for a timeout is -pTimeout'),
    other: z
      .object({
        memory: z
          .number()
          .nullable()
          .describe('Reward when the test ran out of memory (default -pTimeout)'),
        crash: z.number().nullable().describe('Reward when the test process crashed (default 0)'),
        sandbox_error: z
          .number()
          .nullable()
          .describe('Reward when the harness itself failed (default null: not scored)'),
      })
      .partial()
      .strict()
      .optional()
      .describe('Rewards for the other sandbox outcomes (null = not scored)'),
    timeoutMs: int()
      .positive()
      .optional()
      .describe("Wall-clock limit per test (default: the sandbox's, 30 s)"),
    memoryMb: int()
      .positive()
      .optional()
      .describe("Memory budget per test in MiB (default: the sandbox's, 4096)"),
    concurrency: int()
      .positive()
      .optional()
      .describe("Tests run at once (default: the sandbox pool's)"),
  },
  'The execution reward (pass 1, fail 0, penalties below)',
);

const targetSchema = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('rewrite') }).strict(),
    z
      .object({
        kind: z.literal('custom'),
        name: z.string().min(1),
        fn: z.custom<RewardTargetFn>((v) => typeof v === 'function', {
          message: 'a custom reward target needs fn, a function: it is given through the API only',
        }),
      })
      .strict(),
  ])
  .optional()
  .describe(
    'What is scored: absent = the generated code; {kind: rewrite} = the rewrite text itself (generator none)',
  );

const rewardSchema = section(
  {
    weights: z
      .partialRecord(z.enum(REWARD_NAMES), z.number())
      .default({ bleu: 1 })
      .describe(`Weight per reward (${REWARD_NAMES.join(', ')}); text metrics are always stored`),
    nullPolicy: z
      .enum(['skip', 'renormalize', 'null'])
      .default('skip')
      .describe(
        'Null components: skip (contribute 0), renormalize (weighted mean of the rest), null',
      ),
    smoothing: z
      .enum(['method1', 'none'])
      .optional()
      .describe("BLEU smoothing (default method1; the authors' code used none)"),
    tokenizer: z
      .enum(['paper', 'code'])
      .optional()
      .describe('Text-metric tokens: paper (lower-cased whitespace, default) or code tokens'),
    exec: execSchema,
    target: targetSchema,
  },
  'How samples are scored',
);

// The generator's sampling parameters, taken from the generator config so both validate alike.
const sampling = generatorConfigSchema.options[0].shape.defaultParams.unwrap().shape;

const paramsSchema = section(
  {
    temperature: sampling.temperature
      .unwrap()
      .default(0)
      .describe('Generator temperature (0 = greedy: the reward then depends on the rewrite only)'),
    maxTokens: sampling.maxTokens
      .unwrap()
      .default(512)
      .describe('Longest generated answer in tokens'),
    topP: sampling.topP.describe('Generator nucleus sampling'),
    topK: sampling.topK.describe('Generator top-k sampling'),
    seed: sampling.seed.describe('Generator sampling seed'),
    stop: sampling.stop.describe('Extra stop strings'),
  },
  'Sampling parameters of every generator request',
);

/** The trainer's own generator keys, beside the backend's (generators/config.ts). */
const generatorCommon = {
  input: z
    .enum(GENERATOR_INPUTS)
    .default('refined')
    .describe('What the generator sees: the rewrite alone (the paper) or original+refined'),
  format: z
    .enum(GENERATOR_FORMATS)
    .default('paper')
    .describe('Generator prompt format: paper (<think>/<answer>), chat, ds1000-completion'),
  system: z
    .string()
    .min(1)
    .optional()
    .describe("System prompt overriding the format's (chat formats)"),
  maxConsecutiveFailures: int()
    .positive()
    .default(20)
    .describe('Stop the run when this many generator requests in a row fail'),
  params: paramsSchema,
};

/** The trainer's keys of the generator section (the rest belongs to the backend). */
export const GENERATOR_TRAINER_KEYS = Object.keys(
  generatorCommon,
) as (keyof typeof generatorCommon)[];

const [openaiOption, llamaOption, localOption] = generatorConfigSchema.options;

const generatorUnion = z.discriminatedUnion('backend', [
  z.object({ backend: z.literal('none'), ...generatorCommon }).strict(),
  openaiOption.extend(generatorCommon).strict(),
  llamaOption.extend(generatorCommon).strict(),
  localOption.extend(generatorCommon).strict(),
]);

// `backend` defaults to 'none' (a discriminated union needs its discriminator before parsing).
const generatorSchema = z
  .preprocess(
    (v) => (isPlainObject(v) && v.backend === undefined ? { ...v, backend: 'none' } : v),
    generatorUnion,
  )
  .prefault({})
  .describe(
    "The fixed code generator: backend none | openai | llama.cpp | local (+ that backend's keys, generators/config.ts)",
  );

const dataSchema = section(
  {
    dataset: z
      .enum(DATASETS)
      .default('ds1000')
      .describe('Benchmark: ds1000, humaneval, mbpp, custom'),
    path: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Dataset file: the custom JSONL (required for custom), or an override of the shared file',
      ),
    split: z
      .enum(['leak-free', 'paper'])
      .default('leak-free')
      .describe(
        "Split strategy: leak-free (whole perturbation families) or the paper's uniform 800/200",
      ),
    manifest: z
      .string()
      .min(1)
      .optional()
      .describe('An existing split manifest (split.json) to use instead of making one'),
    testSize: int()
      .min(0)
      .optional()
      .describe("Test tasks held out (default: the strategy's, 20%)"),
    validationSize: int()
      .min(0)
      .optional()
      .describe("Validation tasks carved from train (default: the strategy's)"),
    trainLimit: int()
      .positive()
      .optional()
      .describe('Use only the first N training tasks (seeded order)'),
    valLimit: int()
      .positive()
      .optional()
      .describe('Use only the first N validation tasks (seeded order)'),
    invalidRows: z
      .enum(['fail', 'skip'])
      .default('fail')
      .describe('A malformed dataset row: fail (naming file and line) or skip it with a warning'),
  },
  'Tasks and their split',
);

const evalSchema = section(
  {
    everySteps: int().min(0).default(0).describe('Validate every N steps (0 = only at the end)'),
    problems: int()
      .min(0)
      .default(20)
      .describe('Validation problems per validation (greedy refinement)'),
    metric: z
      .enum(['reward', ...REWARD_NAMES])
      .default('reward')
      .describe(
        'Validation metric that selects the best checkpoint: reward (total) or a component',
      ),
    keepBest: z.boolean().default(true).describe('Keep the best checkpoint by eval.metric'),
  },
  'Validation during training',
);

const runSchema = section(
  {
    dir: z
      .string()
      .min(1)
      .default(() => defaultRunDir())
      .meta({ description: 'Run directory', defaultText: 'runs/<UTC timestamp>' }),
    steps: int().positive().default(100).describe('Optimiser steps'),
    seed: int().min(0).default(0).describe('Seed of the split, the task order and the sampling'),
    deterministic: z
      .boolean()
      .default(false)
      .describe('One thread, fixed reduction order: a resumed run is bit-identical'),
    checkpointEvery: int()
      .min(0)
      .default(10)
      .describe('Checkpoint every N steps (0 = only at the end)'),
    keepCheckpoints: int()
      .min(0)
      .default(2)
      .describe('Newest checkpoints kept besides the best (0 = keep all)'),
    threads: int().positive().optional().describe('Engine threads (default: the number of cores)'),
    log: z
      .enum(['auto', 'bar', 'json', 'quiet'])
      .default('auto')
      .describe('Progress: auto (bar on a TTY, JSON lines otherwise), bar, json, quiet'),
  },
  'The run and its directory (a NaN/Inf loss always stops the run)',
);

const trainConfigObject = z
  .object({
    refiner: refinerSchema,
    adapter: adapterSchema,
    optim: optimSchema,
    rollout: rolloutSchema,
    loss: lossSchema,
    reward: rewardSchema,
    generator: generatorSchema,
    data: dataSchema,
    eval: evalSchema,
    run: runSchema,
  })
  .strict();

/** One impossible combination: the keys involved (the first one set by a layer is named). */
interface Conflict {
  keys: string[];
  message: string;
  expected?: string;
  hint?: string;
}

function conflicts(c: z.output<typeof trainConfigObject>): Conflict[] {
  const out: Conflict[] = [];
  const w = c.reward.weights;
  const none = c.generator.backend === 'none';
  const target = c.reward.target?.kind;
  const weightsOf = JSON.stringify(w);
  if (c.adapter.kind === 'full' && c.refiner.weights === 'quantized') {
    out.push({
      keys: ['refiner.weights', 'adapter.kind'],
      message: 'full fine-tuning needs float32 weights (quantised blocks are frozen)',
      expected: "refiner.weights 'float32' or 'auto' with adapter.kind 'full'",
      hint: 'set refiner.weights to float32 (or auto), or adapter.kind to lora',
    });
  }
  if (c.adapter.kind === 'full' && c.refiner.compute === 'bf16') {
    out.push({
      keys: ['refiner.compute', 'adapter.kind'],
      message: 'the bf16 compute mode rounds frozen base weights; full fine-tuning freezes none',
      expected: "refiner.compute 'fp32' with adapter.kind 'full'",
      hint: 'set refiner.compute to fp32, or adapter.kind to lora (LoRA trains in fp32 beside bf16 products)',
    });
  }
  if (c.adapter.kind === 'full' && c.adapter.init !== undefined) {
    out.push({
      keys: ['adapter.init', 'adapter.kind'],
      message: 'adapter.init is a PEFT adapter: it starts a LoRA run, not full fine-tuning',
      hint: 'remove adapter.init, or set adapter.kind to lora',
    });
  }
  if (new Set(c.adapter.targets).size !== c.adapter.targets.length) {
    out.push({ keys: ['adapter.targets'], message: 'adapter.targets names a projection twice' });
  }
  if (c.rollout.queriesPerStep % c.rollout.gradAccumulation !== 0) {
    out.push({
      keys: ['rollout.gradAccumulation', 'rollout.queriesPerStep'],
      message: `rollout.gradAccumulation (${c.rollout.gradAccumulation}) does not divide rollout.queriesPerStep (${c.rollout.queriesPerStep})`,
      expected: 'queriesPerStep a multiple of gradAccumulation',
      hint: 'each micro-batch holds queriesPerStep / gradAccumulation whole queries',
    });
  }
  if (
    c.rollout.samplesPerQuery < 2 &&
    (c.loss.baseline === 'rloo' || c.loss.baseline === 'group')
  ) {
    out.push({
      keys: ['rollout.samplesPerQuery', 'loss.baseline'],
      message: `the ${c.loss.baseline} baseline compares a query's samples: it needs samplesPerQuery >= 2`,
      expected: 'rollout.samplesPerQuery >= 2',
      hint: "sample more rewrites per query, or use loss.baseline 'ema' or 'none'",
    });
  }
  if (c.rollout.temperature === 0 && c.rollout.samplesPerQuery > 1) {
    out.push({
      keys: ['rollout.temperature', 'rollout.samplesPerQuery'],
      message: `temperature 0 makes the ${c.rollout.samplesPerQuery} samples of a query identical: every advantage is 0`,
      expected: 'rollout.temperature > 0 when rollout.samplesPerQuery > 1',
      hint: "set rollout.temperature (e.g. 0.7), or samplesPerQuery 1 with loss.baseline 'ema'",
    });
  }
  if (Object.values(w).every((v) => v === 0 || v === undefined)) {
    out.push({
      keys: ['reward.weights'],
      message: 'every reward weight is 0: the total reward is constant and nothing is learnt',
      expected: 'at least one non-zero weight',
    });
  }
  if (w.exec !== undefined && none && target !== 'custom') {
    out.push({
      keys: ['reward.weights.exec', 'generator.backend'],
      message: "the execution reward runs generated code, and generator 'none' generates none",
      expected: `text metrics only (${TEXT_METRICS.join(', ')}) with generator.backend 'none'`,
      hint: 'remove reward.weights.exec, or configure a generator backend',
    });
  } else if (w.exec !== undefined && target === 'rewrite') {
    out.push({
      keys: ['reward.weights.exec', 'reward.target'],
      message: 'the execution reward would run the rewrite text as code',
      hint: 'remove reward.weights.exec, or score the generated code (no reward.target)',
    });
  }
  if (none && target === undefined) {
    out.push({
      keys: ['generator.backend', 'reward.target'],
      message: "with generator 'none' there is no code: the reward must be computed on the rewrite",
      expected: "reward.target {kind: rewrite} with generator.backend 'none'",
      hint: 'set reward.target.kind: rewrite, or configure a generator backend',
    });
  }
  if (c.eval.metric === 'exec' && w.exec === undefined) {
    out.push({
      keys: ['eval.metric', 'reward.weights'],
      message: 'eval.metric names the execution reward, which this run does not compute',
      expected: `'reward' or a configured reward (${['reward', ...TEXT_METRICS].join(', ')})`,
      hint: `add reward.weights.exec (weights now ${weightsOf}), or choose another eval.metric`,
    });
  }
  if (c.data.dataset === 'custom' && c.data.path === undefined) {
    out.push({
      keys: ['data.path', 'data.dataset'],
      message: 'the custom dataset needs a file',
      expected: 'data.path: a .jsonl or .jsonl.gz file of {query, reference, tests?} rows',
      hint: 'format: docs/data.md',
    });
  }
  if (c.run.deterministic && c.run.threads !== undefined && c.run.threads > 1) {
    out.push({
      keys: ['run.threads', 'run.deterministic'],
      message: 'a deterministic run uses one thread',
      expected: 'run.threads 1 (or unset) with run.deterministic true',
    });
  }
  const completion = c.refiner.format === 'chat' || c.refiner.format === 'chat-ds1000';
  if (c.refiner.template !== undefined && completion) {
    out.push({
      keys: ['refiner.template', 'refiner.format'],
      message: `refiner format '${c.refiner.format}' does not use refiner.template`,
      expected: "refiner.format 'paper' or 'paper-chat' with a template",
    });
  } else if (c.refiner.template !== undefined && !c.refiner.template.includes('{query}')) {
    out.push({
      keys: ['refiner.template'],
      message:
        'the refiner template has no {query} placeholder: the refiner would never see the query',
      expected: 'a template containing {query}',
    });
  }
  if (c.refiner.chatTemplate !== undefined && c.refiner.format === 'paper') {
    out.push({
      keys: ['refiner.chatTemplate', 'refiner.format'],
      message: "refiner format 'paper' is a completion prompt: no chat template is applied",
      expected: "refiner.format 'paper-chat', 'chat' or 'chat-ds1000' with a chatTemplate",
    });
  }
  if (c.generator.system !== undefined && c.generator.format === 'ds1000-completion') {
    out.push({
      keys: ['generator.system', 'generator.format'],
      message:
        "generator format 'ds1000-completion' is a completion prompt: it has no system prompt",
      expected: "generator.format 'paper' or 'chat' with a system prompt",
    });
  }
  return out;
}

/** The full schema: defaults, types and the impossible combinations. */
export const trainConfigSchema = trainConfigObject.superRefine((c, ctx) => {
  for (const k of conflicts(c)) {
    ctx.addIssue({
      code: 'custom',
      message: k.message,
      path: k.keys[0]!.split('.'),
      params: { keys: k.keys, expected: k.expected, hint: k.hint },
    });
  }
});

/** The resolved configuration: every key present, defaults filled in. */
export type TrainConfig = z.output<typeof trainConfigSchema>;

type DeepPartial<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends readonly unknown[]
    ? T
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

/** What a layer may hold: any part of the configuration. */
export type TrainConfigInput = DeepPartial<
  Omit<z.input<typeof trainConfigObject>, 'generator'> & {
    generator: z.input<typeof generatorUnion>;
  }
>;

/** One source of configuration values (a file, the flags, an API object), lowest first. */
export interface ConfigLayer {
  /** A file path, `--set`, or a name for API values; used in error messages. */
  source: string;
  value: unknown;
  /** Line of a key path in the source, when it is a file. */
  lines?: (path: string[]) => number | undefined;
}

// ---------------------------------------------------------------------------------------------
// Resolution.

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v) as unknown;
  return p === Object.prototype || p === null;
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (!isPlainObject(a) || !isPlainObject(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = deepMerge(a[k], v);
  return out;
}

function getPath(v: unknown, p: readonly string[]): { found: boolean; value: unknown } {
  let cur = v;
  for (const k of p) {
    if (Array.isArray(cur) && /^\d+$/.test(k) && Number(k) < cur.length) cur = cur[Number(k)];
    else if (isPlainObject(cur) && Object.prototype.hasOwnProperty.call(cur, k)) cur = cur[k];
    else return { found: false, value: undefined };
  }
  return { found: true, value: cur };
}

/** Where a key was set: the last layer holding it, or (files only) its deepest ancestor. */
function whereOf(layers: readonly ConfigLayer[], p: readonly string[]): string {
  const key = p.length > 0 ? p.join('.') : '(top level)';
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    if (!getPath(l.value, p).found) continue;
    const line = l.lines?.([...p]);
    if (line !== undefined) return `${l.source}:${line} (${key})`;
    return l.source.startsWith('--') ? `${l.source} ${key}` : `${l.source} (${key})`;
  }
  // Not set anywhere (a missing required key, or a default): point at the section in a file.
  for (let n = p.length - 1; n >= 1; n--) {
    for (let i = layers.length - 1; i >= 0; i--) {
      const l = layers[i]!;
      if (!l.lines || !getPath(l.value, p.slice(0, n)).found) continue;
      const line = l.lines(p.slice(0, n));
      if (line !== undefined) return `${l.source}:${line} (${key})`;
    }
  }
  return key;
}

function isSetBy(layers: readonly ConfigLayer[], p: readonly string[]): boolean {
  return layers.some((l) => getPath(l.value, p).found);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing (the key is missing)';
  if (typeof v === 'function') return 'a function';
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length]!;
}

// Internal view of zod's schema definitions, for walking the schema (describeConfig, key hints).
interface Def {
  type: string;
  innerType?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
  element?: z.ZodType;
  entries?: Record<string, string | number>;
  values?: unknown[];
  keyType?: z.ZodType;
  discriminator?: string;
}
const defOf = (s: z.ZodType): Def => s._zod.def as unknown as Def;

/** Strips default/optional/... wrappers; collects the doc, the default and optionality. */
function unwrap(s: z.ZodType): {
  inner: z.ZodType;
  doc?: string;
  defaultText?: string;
  hasDefault: boolean;
  optional: boolean;
} {
  let cur = s;
  let doc: string | undefined;
  let defaultText: string | undefined;
  let hasDefault = false;
  let optional = false;
  for (;;) {
    const meta = z.globalRegistry.get(cur) as
      { description?: string; defaultText?: string } | undefined;
    doc ??= meta?.description;
    defaultText ??= meta?.defaultText;
    const d = defOf(cur);
    if (d.type === 'default' || d.type === 'prefault') {
      hasDefault = true;
      if (defaultText === undefined && d.type === 'default') {
        defaultText = show((cur._zod.def as unknown as { defaultValue: unknown }).defaultValue);
      }
      cur = d.innerType!;
    } else if (d.type === 'optional' || d.type === 'nullable') {
      optional ||= d.type === 'optional';
      cur = d.innerType!;
    } else if (d.type === 'pipe') {
      cur = d.out!;
    } else {
      return { inner: cur, doc, defaultText, hasDefault, optional };
    }
  }
}

/** The keys allowed at a key path (object keys, or a record's enum keys), for unknown-key hints. */
function keysAt(p: readonly string[], merged: unknown): string[] {
  let s: z.ZodType = trainConfigObject;
  for (let i = 0; ; i++) {
    s = unwrap(s).inner;
    let d = defOf(s);
    if (d.type === 'union' && d.discriminator !== undefined) {
      // Pick the member the value names (generator.backend).
      const v = getPath(merged, p.slice(0, i)).value;
      const tag = isPlainObject(v) ? v[d.discriminator] : undefined;
      const hit = d.options!.find((o) =>
        defOf(unwrap(defOf(o).shape![d.discriminator!]!).inner).values?.includes(tag),
      );
      if (!hit) return [];
      s = hit;
      d = defOf(s);
    }
    if (i === p.length) {
      if (d.type === 'object') return Object.keys(d.shape!);
      if (d.type === 'record')
        return Object.values(defOf(unwrap(d.keyType!).inner).entries ?? {}).map(String);
      return [];
    }
    const next = d.type === 'object' ? d.shape![p[i]!] : undefined;
    if (!next) return [];
    s = next;
  }
}

type Issue = z.core.$ZodIssue;

/** Picks, inside a union error, the member the value was meant for (paths made absolute). */
function flatten(issue: Issue, prefix: PropertyKey[] = []): Issue {
  const abs = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    for (const branch of issue.errors) {
      const rejectsShape = branch.some(
        (b) => b.path.length === 0 && (b.code === 'invalid_type' || b.code === 'invalid_value'),
      );
      if (!rejectsShape && branch.length > 0) return flatten(branch[0]!, abs);
    }
  }
  return { ...issue, path: abs } as Issue;
}

function issueError(issue0: Issue, layers: readonly ConfigLayer[], merged: unknown): ConfigError {
  const issue = flatten(issue0);
  const p = issue.path.map(String);
  const value = getPath(merged, p).value;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const k = issue.keys[0]!;
      const keys = keysAt(p, merged);
      const close = keys
        .map((c) => ({ c, d: levenshtein(k.toLowerCase(), c.toLowerCase()) }))
        .sort((a, b) => a.d - b.d)[0];
      const full = [...p, k];
      return new ConfigError(`unknown key '${k}'`, {
        where: whereOf(layers, full),
        expected:
          keys.length > 0
            ? `a key of ${p.join('.') || 'the config'}: ${keys.join(', ')}`
            : undefined,
        found: k,
        hint:
          close && close.d <= Math.max(2, Math.floor(k.length / 3))
            ? `did you mean '${[...p, close.c].join('.')}'?`
            : 'describeConfig() / `rl4qe train --help-config` lists every key',
      });
    }
    case 'invalid_type': {
      const missing = value === undefined;
      return new ConfigError(missing ? 'missing required key' : 'wrong type', {
        where: whereOf(layers, p),
        expected: issue.expected,
        found: show(value),
        hint: missing
          ? `set ${p.join('.')} in a config file or with --set ${p.join('.')}=...`
          : undefined,
      });
    }
    case 'invalid_value':
      return new ConfigError('invalid value', {
        where: whereOf(layers, p),
        expected: issue.values.map((v) => JSON.stringify(v)).join(' | '),
        found: show(value),
      });
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      const op = small ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      const what =
        issue.origin === 'array'
          ? `${op} ${bound} items`
          : issue.origin === 'string'
            ? `length ${op} ${bound}`
            : `${op} ${bound}`;
      return new ConfigError('value out of range', {
        where: whereOf(layers, p),
        expected: what,
        found: show(value),
      });
    }
    case 'invalid_union':
      return new ConfigError(issue.message, {
        where: whereOf(layers, p),
        expected: unionOptions(issue),
        found: show(value),
      });
    case 'custom': {
      const prm = (issue.params ?? {}) as { keys?: string[]; expected?: string; hint?: string };
      if (prm.keys) {
        const chosen = prm.keys.find((k) => isSetBy(layers, k.split('.'))) ?? prm.keys[0]!;
        return new ConfigError(`impossible combination: ${issue.message}`, {
          where: whereOf(layers, chosen.split('.')),
          expected: prm.expected,
          found: prm.keys
            .map((k) => `${k} = ${show(getPath(parsedForShow(merged), k.split('.')).value)}`)
            .join(', '),
          hint: prm.hint,
        });
      }
      return new ConfigError(issue.message, { where: whereOf(layers, p), found: show(value) });
    }
    default:
      return new ConfigError(issue.message, { where: whereOf(layers, p), found: show(value) });
  }
}

/** The discriminator values a union error lists (zod puts them on the issue). */
function unionOptions(issue: Issue): string | undefined {
  const o = (issue as { options?: unknown }).options;
  return Array.isArray(o) ? o.map((x) => JSON.stringify(x)).join(' | ') : undefined;
}

/** The merged value with defaults, for showing default values in conflict messages. */
function parsedForShow(merged: unknown): unknown {
  const r = trainConfigObject.safeParse(merged);
  return r.success ? r.data : merged;
}

/** Key paths whose string values are file paths (expanded: `~`, `${VAR}`). */
const PATH_KEYS: readonly (readonly string[])[] = [
  ['refiner', 'model'],
  ['refiner', 'tokenizer'],
  ['adapter', 'init'],
  ['data', 'path'],
  ['data', 'manifest'],
  ['run', 'dir'],
  ['generator', 'model'],
  ['generator', 'modelPath'],
  ['generator', 'adapter'],
  ['generator', 'tokenizer'],
  ['generator', 'cache', 'file'],
];

/** `~` → the home directory, `${NAME}` → the environment (RL4QE_HOME defaults to rl4qe's root). */
export function expandPath(s: string, onMissing: (name: string) => never): string {
  let out = s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
    const v = process.env[name];
    if (v !== undefined && v !== '') return v;
    if (name === 'RL4QE_HOME') return rl4qeHome();
    return onMissing(name);
  });
  if (out === '~') out = os.homedir();
  else if (out.startsWith('~/')) out = path.join(os.homedir(), out.slice(2));
  return out;
}

function expandPaths(merged: unknown, layers: readonly ConfigLayer[]): unknown {
  if (!isPlainObject(merged)) return merged;
  const out = structuredCloneSafe(merged);
  const gen = out.generator;
  for (const p of PATH_KEYS) {
    // An OpenAI model is a name, not a file.
    if (p[0] === 'generator' && p[1] === 'model' && isPlainObject(gen) && gen.backend !== 'local')
      continue;
    const parent = getPath(out, p.slice(0, -1)).value;
    const k = p[p.length - 1]!;
    if (!isPlainObject(parent) || typeof parent[k] !== 'string') continue;
    parent[k] = expandPath(parent[k], (name) => {
      throw new ConfigError(`environment variable ${name} is not set`, {
        where: whereOf(layers, p),
        found: parent[k] as string,
        hint: `export ${name}=..., or write the path out`,
      });
    });
  }
  return out;
}

/** A deep copy of plain objects and arrays; other values (functions) are shared. */
function structuredCloneSafe(v: Record<string, unknown>): Record<string, unknown> {
  const copy = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(copy)
      : isPlainObject(x)
        ? Object.fromEntries(Object.entries(x).map(([k, y]) => [k, copy(y)]))
        : x;
  return copy(v) as Record<string, unknown>;
}

/**
 * Deep-merges the layers in order (lowest first) and validates the result against the schema,
 * which supplies every default. Errors are ConfigErrors naming the key and the layer (file:line).
 */
export function resolveTrainConfig(layers: readonly ConfigLayer[]): TrainConfig {
  let merged: unknown = {};
  for (const l of layers) {
    if (l.value === undefined || l.value === null) continue;
    if (!isPlainObject(l.value)) {
      throw new ConfigError('a configuration layer must be a mapping of sections', {
        where: l.source,
        expected: 'refiner:, adapter:, optim:, ... (a YAML mapping or JSON object)',
        found: show(l.value),
      });
    }
    merged = deepMerge(merged, l.value);
  }
  merged = expandPaths(merged, layers);
  const r = trainConfigSchema.safeParse(merged);
  if (!r.success) {
    // Type and key errors first: a conflict between two keys matters only once both are valid.
    const issues = [...r.error.issues].sort(
      (a, b) => Number(a.code === 'custom') - Number(b.code === 'custom'),
    );
    throw issueError(issues[0]!, layers, merged);
  }
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// Sources: files and flags.

/** Reads a .yaml/.yml/.json config file; syntax errors are FormatErrors with file:line. */
export function loadConfigFile(file: string): Required<ConfigLayer> {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new ConfigError('unsupported config file type', {
      where: file,
      expected: '.yaml, .yml or .json',
      found: ext || '(no extension)',
    });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new NotFoundError('cannot read the config file', {
      where: file,
      found: (e as Error).message,
      cause: e,
    });
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  let value: unknown;
  if (ext === '.json') {
    try {
      value = JSON.parse(text) as unknown;
    } catch (e) {
      const msg = (e as Error).message;
      throw new FormatError('invalid JSON', {
        where: `${file}:${jsonErrorLine(text, msg)}`,
        found: msg,
      });
    }
  } else {
    const err = doc.errors[0];
    if (err) {
      throw new FormatError('invalid YAML', {
        where: `${file}:${err.linePos?.[0].line ?? 1}`,
        found: err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      });
    }
    try {
      value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    } catch (e) {
      throw new FormatError('invalid YAML', { where: file, found: (e as Error).message });
    }
  }
  const lines = (p: string[]): number | undefined => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const k of p) {
      if (isMap(node)) {
        const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === k);
        if (!pair) return undefined;
        const range = (pair.key as YamlNode).range;
        if (range) line = lc.linePos(range[0]).line;
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(k)] as YamlNode | undefined;
        if (!item) return undefined;
        if (item.range) line = lc.linePos(item.range[0]).line;
        node = item;
      } else {
        return undefined;
      }
    }
    return line;
  };
  return { source: file, value, lines };
}

/** The line of a JSON.parse error (V8 reports `position N`, newer ones `line N column M`). */
function jsonErrorLine(text: string, msg: string): number {
  const l = /line (\d+) column/.exec(msg);
  if (l) return Number(l[1]);
  const p = /position (\d+)/.exec(msg);
  if (p) return text.slice(0, Number(p[1])).split('\n').length;
  return text.split('\n').length;
}

/**
 * `--set key.path=value` flags → one layer value. Values are YAML scalars or flow collections
 * (`3e-5`, `true`, `[q_proj, v_proj]`, `{bleu: 1, exec: 1}`); anything else is a string.
 */
export function parseSetFlags(sets: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    const key = eq < 0 ? s : s.slice(0, eq);
    const parts = key.split('.');
    if (eq < 0 || parts.some((p) => p.trim() === '')) {
      throw new ConfigError('a --set flag is key.path=value', {
        where: `--set ${s}`,
        expected: 'e.g. --set optim.lr=3e-5',
        found: s,
      });
    }
    const raw = s.slice(eq + 1);
    let value: unknown = raw;
    if (raw.trim() !== '') {
      try {
        value = parseYaml(raw) as unknown;
      } catch {
        value = raw;
      }
    }
    let cur = out;
    for (const p of parts.slice(0, -1)) {
      if (!isPlainObject(cur[p])) cur[p] = {};
      cur = cur[p] as Record<string, unknown>;
    }
    cur[parts[parts.length - 1]!] = value;
  }
  return out;
}

/** Files (in order), then `--set` flags: the CLI's configuration. */
export function loadTrainConfig(opts: {
  files?: readonly string[];
  sets?: readonly string[];
}): TrainConfig {
  const layers: ConfigLayer[] = (opts.files ?? []).map(loadConfigFile);
  if (opts.sets && opts.sets.length > 0)
    layers.push({ source: '--set', value: parseSetFlags(opts.sets) });
  return resolveTrainConfig(layers);
}

// ---------------------------------------------------------------------------------------------
// Documentation, digest, helpers for the trainer.

export interface ConfigKeyDoc {
  key: string;
  type: string;
  /** The default as JSON text; undefined for required keys and optional keys without one. */
  default?: string;
  required: boolean;
  doc?: string;
}

function typeText(s: z.ZodType): string {
  const d = defOf(s);
  switch (d.type) {
    case 'enum':
      return Object.values(d.entries!).join('|');
    case 'literal':
      return d.values!.map(String).join('|');
    case 'array':
      return `list of ${typeText(unwrap(d.element!).inner)}`;
    case 'record':
      return `map ${typeText(unwrap(d.keyType!).inner)} → number`;
    case 'number':
      return (s as z.ZodNumber).isInt ? 'integer' : 'number';
    case 'union':
      return d.discriminator ? `object by ${d.discriminator}` : 'union';
    default:
      return d.type;
  }
}

/** Every key of the configuration with its type, default and doc, in schema order. */
export function configKeys(): ConfigKeyDoc[] {
  const out: ConfigKeyDoc[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [k, s] of Object.entries(shape)) {
      const key = prefix + k;
      const u = unwrap(s);
      const d = defOf(u.inner);
      if (d.type === 'object') {
        walk(d.shape!, key + '.');
        continue;
      }
      out.push({
        key,
        type: typeText(u.inner),
        default: u.defaultText,
        required: !u.optional && !u.hasDefault,
        doc: u.doc,
      });
    }
  };
  for (const [sec, s] of Object.entries(trainConfigObject.shape)) {
    // The generator section is a union: its trainer keys, then each backend's keys.
    if (sec === 'generator') out.push(...configKeysOfGenerator());
    else walk(defOf(unwrap(s).inner).shape!, sec + '.');
  }
  return out;
}

function configKeysOfGenerator(): ConfigKeyDoc[] {
  const out: ConfigKeyDoc[] = [
    {
      key: 'generator.backend',
      type: 'none|openai|llama.cpp|local',
      default: '"none"',
      required: false,
      doc: 'Generator backend; with none the reward is computed on the rewrite (reward.target)',
    },
  ];
  const walkShape = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [k, s] of Object.entries(shape)) {
      const u = unwrap(s);
      const d = defOf(u.inner);
      if (d.type === 'object') {
        walkShape(d.shape!, `${prefix}${k}.`);
        continue;
      }
      out.push({
        key: prefix + k,
        type: typeText(u.inner),
        default: u.defaultText,
        required: !u.optional && !u.hasDefault,
        doc: u.doc,
      });
    }
  };
  for (const [k, s] of Object.entries(generatorCommon)) {
    const u = unwrap(s);
    if (defOf(u.inner).type === 'object') walkShape(defOf(u.inner).shape!, `generator.${k}.`);
    else walkShape({ [k]: s }, 'generator.');
  }
  for (const o of [openaiOption, llamaOption, localOption]) {
    const name = String(defOf(o.shape.backend).values![0]);
    const keys = Object.entries(o.shape)
      .filter(([k]) => k !== 'backend')
      .map(([k, s]) => (unwrap(s).optional || unwrap(s).hasDefault ? `${k}?` : k));
    out.push({
      key: `generator.(${name})`,
      type: 'keys',
      required: false,
      doc: `with backend ${name}: ${keys.join(', ')} (generators/config.ts)`,
    });
  }
  return out;
}

/** Every key, its type, default and doc (for `rl4qe train --help-config`). */
export function describeConfig(): string {
  const keys = configKeys();
  const w = Math.max(...keys.map((k) => k.key.length));
  const lines = [
    'Training configuration (defaults in brackets). Files: --config FILE.yaml|.json; flags: --set key=value.',
    '',
  ];
  let section = '';
  for (const k of keys) {
    const sec = k.key.split('.')[0]!;
    if (sec !== section) {
      const doc = unwrap(trainConfigObject.shape[sec as keyof typeof trainConfigObject.shape]).doc;
      if (section !== '') lines.push('');
      lines.push(`${sec}: ${doc ?? ''}`);
      section = sec;
    }
    const dflt = k.required
      ? '(required)'
      : k.default !== undefined
        ? `[${k.default}]`
        : '(optional)';
    lines.push(`  ${k.key.padEnd(w)}  ${k.type}  ${dflt}  ${k.doc ?? ''}`.trimEnd());
  }
  return lines.join('\n') + '\n';
}

/**
 * Keys that may change when a run is resumed without changing what its steps compute: where the
 * run lives and how it reports. run.steps too, unless the schedule decays towards it.
 */
export const RESUME_SAFE_KEYS: readonly string[] = [
  'run.dir',
  'run.log',
  'run.threads',
  'run.checkpointEvery',
  'run.keepCheckpoints',
  'generator.maxConsecutiveFailures',
];

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = v[k];
      if (x === undefined || typeof x === 'function') continue;
      out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

/**
 * sha256 of the canonical JSON (sorted keys, no undefined, no functions) of the configuration
 * less RESUME_SAFE_KEYS: equal digests mean a run may be resumed with this configuration.
 */
export function configDigest(cfg: TrainConfig): string {
  const c = structuredCloneSafe(cfg as unknown as Record<string, unknown>);
  const skip = [...RESUME_SAFE_KEYS];
  if (cfg.optim.schedule === 'constant') skip.push('run.steps');
  for (const k of skip) {
    const p = k.split('.');
    const parent = getPath(c, p.slice(0, -1)).value;
    if (isPlainObject(parent)) delete parent[p[p.length - 1]!];
  }
  return createHash('sha256')
    .update(JSON.stringify(canonical(c)))
    .digest('hex');
}

/**
 * The refiner's weights mode: 'auto' resolved (GGUF → quantized; HF dir, full FT or compute bf16
 * → float32: the bf16 mode rounds float32 weights, GGUF blocks would stay as they are).
 */
export function refinerWeights(cfg: TrainConfig): 'quantized' | 'float32' {
  if (cfg.refiner.weights !== 'auto') return cfg.refiner.weights;
  if (cfg.adapter.kind === 'full' || cfg.refiner.compute === 'bf16') return 'float32';
  return cfg.refiner.model.toLowerCase().endsWith('.gguf') ? 'quantized' : 'float32';
}

/** The generator section as generators/config.ts takes it (the trainer's keys removed). */
export function generatorBackendConfig(cfg: TrainConfig): ParsedGeneratorConfig | undefined {
  const g = cfg.generator;
  if (g.backend === 'none') return undefined;
  const rest: Record<string, unknown> = { ...g };
  for (const k of GENERATOR_TRAINER_KEYS) delete rest[k];
  return rest as unknown as ParsedGeneratorConfig;
}

function defaultRunDir(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return path.join('runs', t);
}
