// What an adapter arm of `rl4qe eval` stands on, and the refusals that protect the comparison.
// An arm is a PEFT adapter directory or a run directory (src/train/records.ts): a run directory
// resolves to its checkpoints/best (else latest) checkpoint, a LoRA adapter (adapter/) or the
// full weights of a full fine-tuning run (weights/); an adapter or checkpoint directory inside a
// run directory is traced back to it. Before any generator call, evaluation refuses:
//   - a run directory whose run.json version is not RUN_VERSION (its layout may mean other things);
//   - an adapter trained on another base model than the refiner given (run.json's base digest and
//     shape, or adapter_config.json's base_model_name_or_path): LoRA deltas on another base are
//     noise, and sometimes even load when the shapes happen to agree;
//   - an evaluation set that shares a task with the run's training split (split.json): the
//     numbers would measure memorisation.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { hashHeadAndTail } from '../generators/file-digest.js';
import { readPeftConfig } from '../generators/peft-adapter.js';
import { openGguf } from '../io/gguf/index.js';
import { configFromGguf, configFromHf } from '../models/config.js';
import { ggufMetadataValues } from '../models/load.js';
import { readSplitManifest, type SplitManifest } from '../data/splits.js';
import type { CodeTask } from '../data/tasks.js';
import type { RunInfo } from '../train/records.js';
import { ConfigError, FormatError, NotFoundError, type ErrorDetails } from '../util/errors.js';
import { modelDigest, readRunInfo as readTrainRunInfo } from '../train/run-dir.js';

/** Why evaluation refused to start. */
export type RefusalReason = 'run-version' | 'base-model' | 'split-overlap';

/** Evaluation refused before any generator call; `reason` says which guard stopped it. */
export class EvalRefusedError extends ConfigError {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message, details);
  }
}

/** The refiner base model as evaluation identifies it. */
export interface BaseModelInfo {
  path: string;
  /** The trainer's modelDigest (16 hex of sha256 over name:size: + first and last MiB). */
  digest: string;
  /** Every spelling of the digest a run.json may carry (see digestForms). */
  digestForms: string[];
  /** The file or directory name reduced for comparison with base_model_name_or_path. */
  name: string;
  architecture: string;
  hiddenSize: number;
  numLayers: number;
}

/**
 * The file name without extension, lower-cased, without a trailing quantisation or format tag
 * (`SmolLM2-135M-Instruct.Q4_1.gguf`, `HuggingFaceTB/SmolLM2-135M-Instruct` and
 * `smollm2-135m-instruct-q4_1.gguf` all give `smollm2-135m-instruct`).
 */
export function normalizeModelName(p: string): string {
  let s = path.basename(p.replace(/[\\/]+$/, '')).toLowerCase();
  s = s.replace(/\.(gguf|safetensors|bin)$/, '');
  const tag = /[-._](q\d(_[a-z0-9]+)*|iq\d[a-z0-9_]*|f16|f32|bf16|fp16|fp32|gguf|ggml)$/;
  while (tag.test(s)) s = s.replace(tag, '');
  return s;
}

function digestOf(p: string, withNames: boolean): string {
  const h = createHash('sha256');
  const file = (f: string): void => {
    const size = statSync(f).size;
    if (withNames) h.update(`${path.basename(f)}:${size}:`);
    hashHeadAndTail(h, f, size);
  };
  if (statSync(p).isDirectory()) {
    h.update(readFileSync(path.join(p, 'config.json')));
    for (const f of readdirSync(p).sort()) if (f.endsWith('.safetensors')) file(path.join(p, f));
  } else file(p);
  return h.digest('hex');
}

/**
 * The spellings of a model digest accepted in run.json's base.digest: first the trainer's own
 * (train/run-dir.ts modelDigest, what `rl4qe train` records), then the full hex sha256 of the head
 * and tail with and without the `name:size:` prefix, their 16-hex prefixes, and the local
 * engine's cache identity `basename:hex16`. All name the same bytes; the extra spellings keep runs
 * written by other tools (or an older trainer) checkable.
 */
export function digestForms(p: string): string[] {
  const named = digestOf(p, true);
  const plain = digestOf(p, false);
  const base = path.basename(p);
  return [
    modelDigest(p),
    named,
    plain,
    named.slice(0, 16),
    plain.slice(0, 16),
    `${base}:${named.slice(0, 16)}`,
    `sha256:${named}`,
    `sha256:${plain}`,
  ];
}

/** Reads the refiner's identity and shape from its file header (no weights are loaded). */
export function baseModelInfo(modelPath: string): BaseModelInfo {
  const p = path.resolve(modelPath);
  if (!existsSync(p))
    throw new NotFoundError('refiner model not found', {
      where: 'refiner',
      expected: 'a GGUF file or a Hugging Face model directory',
      found: p,
      hint: 'the offline test model: node scripts/fetch-test-models.mjs',
    });
  let cfg;
  if (statSync(p).isDirectory()) {
    const file = path.join(p, 'config.json');
    if (!existsSync(file))
      throw new NotFoundError('the refiner directory has no config.json', { where: p });
    cfg = configFromHf(JSON.parse(readFileSync(file, 'utf8')), file);
  } else {
    const g = openGguf(p);
    try {
      cfg = configFromGguf(ggufMetadataValues(g.metadata), {
        tensorNames: g.tensors.map((t) => t.name),
        where: p,
      });
    } finally {
      g.close();
    }
  }
  const forms = digestForms(p);
  return {
    path: p,
    digest: forms[0]!,
    digestForms: forms,
    name: normalizeModelName(p),
    architecture: cfg.architecture,
    hiddenSize: cfg.hiddenSize,
    numLayers: cfg.numLayers,
  };
}

/** Reads RUN_DIR/run.json (train/run-dir.ts); a version mismatch is a refusal ('run-version'). */
export function readRunInfo(runDir: string): RunInfo {
  return readTrainRunInfo(runDir, {
    versionError: (message, details) => new EvalRefusedError('run-version', message, details),
  });
}

/** What the trainer's config.json says about prompting the refiner (read leniently). */
export interface RunPromptSettings {
  format?: 'paper' | 'paper-chat' | 'chat' | 'chat-ds1000';
  template?: string;
  /** How the run's generator was prompted (train config generator.input / format / system). */
  generatorInput?: 'refined' | 'original+refined' | 'original';
  generatorFormat?: 'paper' | 'chat' | 'ds1000-completion';
  generatorSystem?: string;
  /** The rewrite length training sampled (rollout.maxNewTokens). */
  maxNewTokens?: number;
  /** How training fitted long queries (refiner.maxPromptTokens, refiner.overlong). */
  maxPromptTokens?: number;
  overlong?: 'truncate-middle' | 'skip';
}

const runConfigSchema = z
  .object({
    refiner: z
      .object({
        format: z.enum(['paper', 'paper-chat', 'chat', 'chat-ds1000']).optional(),
        template: z.string().optional(),
        maxPromptTokens: z.number().int().positive().optional(),
        overlong: z.enum(['truncate-middle', 'skip']).optional(),
      })
      .passthrough()
      .optional(),
    rollout: z
      .object({ maxNewTokens: z.number().int().positive().optional() })
      .passthrough()
      .optional(),
    generator: z
      .object({
        input: z.enum(['refined', 'original+refined', 'original']).optional(),
        format: z.enum(['paper', 'chat', 'ds1000-completion']).optional(),
        system: z.string().optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

function readRunPromptSettings(runDir: string): RunPromptSettings {
  const file = path.join(runDir, 'config.json');
  if (!existsSync(file)) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('config.json is not valid JSON', { where: file, cause: e });
  }
  const r = runConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new FormatError(`invalid run config: ${issue.message}`, {
      where: `${file} field ${issue.path.join('.')}`,
    });
  }
  const out: RunPromptSettings = {};
  if (r.data.refiner?.format !== undefined) out.format = r.data.refiner.format;
  if (r.data.refiner?.template !== undefined) out.template = r.data.refiner.template;
  if (r.data.refiner?.maxPromptTokens !== undefined)
    out.maxPromptTokens = r.data.refiner.maxPromptTokens;
  if (r.data.refiner?.overlong !== undefined) out.overlong = r.data.refiner.overlong;
  const g = r.data.generator;
  if (g?.input !== undefined) out.generatorInput = g.input;
  if (g?.format !== undefined) out.generatorFormat = g.format;
  if (g?.system !== undefined) out.generatorSystem = g.system;
  if (r.data.rollout?.maxNewTokens !== undefined) out.maxNewTokens = r.data.rollout.maxNewTokens;
  return out;
}

export interface ResolvedAdapter {
  /** What the user gave. */
  arg: string;
  /** A LoRA adapter, or the full weights of a full fine-tuning checkpoint. */
  kind: 'lora' | 'full';
  /** The PEFT adapter directory to load, or (kind 'full') the checkpoint's weights/ directory. */
  adapterDir: string;
  /** The run directory it belongs to, when there is one. */
  runDir?: string;
  run?: RunInfo;
  /** The checkpoint name (step-000010) and which pointer chose it. */
  checkpoint?: { name: string; via: 'best' | 'latest' | 'given' };
  split?: SplitManifest;
  prompt: RunPromptSettings;
  /** adapter_config.json's base_model_name_or_path. */
  baseName?: string;
}

function isRunDir(d: string): boolean {
  return existsSync(path.join(d, 'run.json'));
}

/** The run directory above an adapter directory (…/checkpoints/step-N/adapter), if any. */
function runDirAbove(dir: string): string | undefined {
  let d = dir;
  for (let i = 0; i < 4; i++) {
    const up = path.dirname(d);
    if (up === d) return undefined;
    d = up;
    if (isRunDir(d)) return d;
  }
  return undefined;
}

function pointer(runDir: string, name: 'best' | 'latest'): string | undefined {
  const f = path.join(runDir, 'checkpoints', name);
  if (!existsSync(f)) return undefined;
  const v = readFileSync(f, 'utf8').trim();
  return v.length > 0 ? v : undefined;
}

/** A checkpoint directory's full fine-tuning weights (weights/model.safetensors), if it has them. */
function fullWeightsIn(dir: string): string | undefined {
  if (existsSync(path.join(dir, 'weights', 'model.safetensors'))) return path.join(dir, 'weights');
  if (path.basename(dir) === 'weights' && existsSync(path.join(dir, 'model.safetensors')))
    return dir;
  return undefined;
}

/**
 * An adapter arm's adapter: a PEFT directory, a checkpoint directory (LoRA adapter/ or full
 * weights/), or a run directory (its `checkpoint` pointer, default best, else latest). Reads
 * run.json (version guard), split.json and the refiner prompt settings of the run. A full
 * fine-tuning checkpoint must be inside its run directory: only run.json says which base model
 * its weights belong to.
 */
export async function resolveAdapter(
  arg: string,
  opts: { checkpoint?: 'best' | 'latest' } = {},
): Promise<ResolvedAdapter> {
  const p = path.resolve(arg);
  if (!existsSync(p))
    throw new NotFoundError('adapter or run directory not found', {
      where: arg,
      expected: 'a PEFT adapter directory, an rl4qe run directory or one of its checkpoints',
      found: p,
    });
  let runDir: string | undefined;
  let adapterDir: string;
  let kind: ResolvedAdapter['kind'] = 'lora';
  let checkpoint: ResolvedAdapter['checkpoint'];
  if (isRunDir(p)) {
    runDir = p;
    const want = opts.checkpoint ?? 'best';
    let name = pointer(p, want);
    let via: 'best' | 'latest' = want;
    if (name === undefined && want === 'best') {
      name = pointer(p, 'latest');
      via = 'latest';
    }
    if (name === undefined)
      throw new NotFoundError('the run has no complete checkpoint', {
        where: path.join(p, 'checkpoints'),
        expected: `a '${want}' (or 'latest') file naming a checkpoint`,
        found: 'none',
        hint: 'train until the first checkpoint is written, or pass an adapter directory',
      });
    checkpoint = { name, via };
    const ck = path.join(p, 'checkpoints', name);
    const full = fullWeightsIn(ck);
    if (existsSync(path.join(ck, 'adapter'))) adapterDir = path.join(ck, 'adapter');
    else if (full !== undefined) {
      adapterDir = full;
      kind = 'full';
    } else
      throw new NotFoundError('the checkpoint has neither a LoRA adapter nor full weights', {
        where: ck,
        expected: 'adapter/ (LoRA) or weights/model.safetensors (full fine-tuning)',
        found: existsSync(ck) ? 'neither' : 'no such directory',
      });
  } else {
    const full = fullWeightsIn(p);
    if (full !== undefined) {
      adapterDir = full;
      kind = 'full';
      runDir = runDirAbove(full);
      if (runDir === undefined)
        throw new EvalRefusedError(
          'base-model',
          'a full fine-tuning checkpoint outside its run directory cannot be checked against the refiner',
          {
            where: arg,
            expected: 'a checkpoint inside its run directory (run.json names the base model)',
            found: 'no run.json in the directories above',
            hint: 'pass the run directory (or the checkpoint inside it) as --adapter',
          },
        );
    } else {
      adapterDir = existsSync(path.join(p, 'adapter', 'adapter_config.json'))
        ? path.join(p, 'adapter')
        : p;
      runDir = runDirAbove(adapterDir);
    }
    if (runDir !== undefined) {
      // step-N/adapter, step-N/weights → step-N; a given checkpoint directory is its own name.
      const ckDir = path.dirname(adapterDir);
      checkpoint = { name: path.basename(ckDir), via: 'given' };
    }
  }
  const out: ResolvedAdapter = { arg, kind, adapterDir, prompt: {} };
  if (checkpoint) out.checkpoint = checkpoint;
  if (runDir !== undefined) {
    // The version guard first: another version's layout may mean other things.
    out.runDir = runDir;
    out.run = readRunInfo(runDir);
    if (out.run.adapter !== kind)
      throw new FormatError("the checkpoint is not of the run's adapter kind", {
        where: `${path.join(runDir, 'run.json')} field adapter`,
        expected: `'${kind}' (the checkpoint has ${kind === 'full' ? 'weights/' : 'a LoRA adapter'})`,
        found: `'${out.run.adapter}'`,
        hint: 'the run directory was edited by hand, or the checkpoint belongs to another run',
      });
    out.prompt = readRunPromptSettings(runDir);
    if (existsSync(path.join(runDir, 'split.json')))
      out.split = await readSplitManifest(path.join(runDir, 'split.json'));
  }
  if (kind === 'lora') {
    const peft = readPeftConfig(adapterDir);
    const baseRaw = (peft as { base_model_name_or_path?: unknown }).base_model_name_or_path;
    if (typeof baseRaw === 'string' && baseRaw.length > 0) out.baseName = baseRaw;
  }
  return out;
}

export interface BaseCheck {
  /** How the base model was matched. */
  via: 'run-digest' | 'adapter-name' | 'adapter-path' | 'unchecked';
  detail: string;
}

/**
 * Refuses an adapter trained on another base model. A run directory: run.json's base digest must
 * be the refiner's, and its architecture and shape must agree. An adapter directory alone:
 * base_model_name_or_path must name the refiner (same reduced file name, or a path to the same
 * bytes); without that field the check is 'unchecked' (the caller loads the adapter before any
 * generator call, so a shape mismatch still stops it).
 */
export function checkBaseModel(a: ResolvedAdapter, refiner: BaseModelInfo): BaseCheck {
  const where = a.runDir
    ? path.join(a.runDir, 'run.json')
    : path.join(a.adapterDir, 'adapter_config.json');
  if (a.run) {
    const b = a.run.base;
    const shape = `${b.architecture} (hidden ${b.hiddenSize}, ${b.numLayers} layers)`;
    const refShape = `${refiner.architecture} (hidden ${refiner.hiddenSize}, ${refiner.numLayers} layers)`;
    if (shape !== refShape || !refiner.digestForms.includes(b.digest))
      throw new EvalRefusedError('base-model', 'the adapter was trained on another base model', {
        where: `${where} field base`,
        expected: `the refiner ${refiner.path}: ${refShape}, digest ${refiner.digest.slice(0, 16)}…`,
        found: `${b.model}: ${shape}, digest ${b.digest.slice(0, 24)}`,
        hint: 'pass the base model the run was trained on as --refiner',
      });
    return { via: 'run-digest', detail: `digest ${b.digest.slice(0, 16)} = ${refiner.name}` };
  }
  if (a.baseName === undefined)
    return { via: 'unchecked', detail: 'adapter_config.json has no base_model_name_or_path' };
  // A path to the same bytes (relative to the adapter, or to the working directory).
  for (const cand of [path.resolve(a.adapterDir, a.baseName), path.resolve(a.baseName)]) {
    if (existsSync(cand)) {
      let same = false;
      try {
        same =
          realpathSync(cand) === realpathSync(refiner.path) ||
          digestOf(cand, true) === refiner.digest;
      } catch {
        same = false;
      }
      if (same) return { via: 'adapter-path', detail: `${a.baseName} is the refiner file` };
    }
  }
  if (normalizeModelName(a.baseName) === refiner.name)
    return { via: 'adapter-name', detail: `${a.baseName} ~ ${path.basename(refiner.path)}` };
  throw new EvalRefusedError('base-model', 'the adapter was trained on another base model', {
    where: `${where} field base_model_name_or_path`,
    expected: `the refiner ${path.basename(refiner.path)} (name '${refiner.name}')`,
    found: `${a.baseName} (name '${normalizeModelName(a.baseName)}')`,
    hint: 'pass the base model the adapter was trained on as --refiner',
  });
}

export interface OverlapCheck {
  /** Evaluation tasks that are in the run's training split (refused when > 0). */
  trainOverlap: number;
  /** Evaluation tasks whose family (CodeTask.group) has a member in the training split. */
  familyOverlap: number;
  /** False when the run has no split.json (an adapter without a run directory). */
  checked: boolean;
}

/**
 * Refuses an evaluation set that shares a task with the run's training split. Family overlap
 * (a perturbation of a training problem, e.g. the paper's split) is counted, not refused: the
 * paper's own split leaks families, and its headline experiment evaluates on it.
 */
export function checkSplitOverlap(
  a: ResolvedAdapter,
  evalTasks: readonly CodeTask[],
  allTasks: readonly CodeTask[],
): OverlapCheck {
  if (!a.split) return { trainOverlap: 0, familyOverlap: 0, checked: false };
  const train = new Set(a.split.ids.train);
  const hits = evalTasks.filter((t) => train.has(t.id));
  if (hits.length > 0)
    throw new EvalRefusedError(
      'split-overlap',
      "the evaluation set overlaps the run's training split",
      {
        where: path.join(a.runDir!, 'split.json'),
        expected: 'no evaluation task among ids.train',
        found: `${hits.length} of ${evalTasks.length}: ${hits
          .slice(0, 5)
          .map((t) => t.id)
          .join(', ')}${hits.length > 5 ? ', ...' : ''}`,
        hint: "evaluate on the run's own test split (--split test with this run first), or another run",
      },
    );
  const byId = new Map(allTasks.map((t) => [t.id, t]));
  const trainGroups = new Set<string>();
  for (const id of train) {
    const t = byId.get(id);
    if (t) trainGroups.add(t.group);
  }
  return {
    trainOverlap: 0,
    familyOverlap: evalTasks.filter((t) => trainGroups.has(t.group)).length,
    checked: true,
  };
}
