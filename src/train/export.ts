// `rl4qe export`: a run directory's checkpoint in a format other tools load.
//
//   peft       the checkpoint's adapter/ directory (PEFT save_pretrained layout), checked and
//              copied as it is: PeftModel.from_pretrained(base, DIR), or rl4qe serve
//              --refiner-adapter DIR
//   gguf-lora  one GGUF file in llama.cpp's LoRA format (llama-cli --lora FILE, node-llama-cpp
//              createContext({ lora })), tensors renamed to GGUF names and the Llama q/k lora_b
//              rows put back into llama.cpp's order (models/adapter-export.ts says why)
//   merged     a Hugging Face model directory with W' = W + (α/r)·B·A in every adapted weight
//              (LoRA runs) or the trained weights (full fine-tuning): config.json,
//              model.safetensors, tokenizer files; transformers AutoModelForCausalLM and rl4qe
//              load it
//
// The run directory layout is src/train/records.ts. Every output is written atomically (a
// temporary sibling, fsync, rename) and never over an existing path unless overwrite is set.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readPeftConfig, readPeftLoraWeights } from '../generators/peft-adapter.js';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { openGguf, type GgufFile } from '../io/gguf/index.js';
import { writeGgufLoraAdapter } from '../io/gguf/lora.js';
import {
  SafetensorsCheckpoint,
  writeSafetensorsCheckpoint,
  type SafetensorsDtype,
  type SafetensorsTensorInput,
} from '../io/safetensors/index.js';
import {
  ggufLoraPairsOfHf,
  hfConfigJson,
  mergeLoraInto,
  type LoraMatrices,
} from '../models/adapter-export.js';
import { configFromGguf, configFromHf, type ModelConfig } from '../models/config.js';
import { ggufWeightSource, hfNameOfGguf } from '../models/gguf-names.js';
import { ggufMetadataValues } from '../models/load.js';
import { ggufVocabToTokenizerJson, readGgufVocab } from '../tokenizer/index.js';
import {
  ConfigError,
  FormatError,
  NotFoundError,
  Rl4qeError,
  UnsupportedError,
} from '../util/errors.js';
import { RUN_VERSION, type RunInfo } from './records.js';
import { modelDigest } from './run-dir.js';
import { runInfoSchema } from './run-dir.js';
import { HF_SIDE_FILES } from '../io/hub/index.js';

export const EXPORT_FORMATS = ['peft', 'gguf-lora', 'merged'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  runDir: string;
  /** 'latest' (default), 'best', or a checkpoint name (step-000010). */
  checkpoint?: string;
  format: ExportFormat;
  /**
   * Output path: a directory (peft, merged) or a .gguf file (gguf-lora). Default
   * RUN_DIR/export/<checkpoint>-<format>[.gguf].
   */
  out?: string;
  /** Replace an existing output (default: refuse). */
  overwrite?: boolean;
  /** The base model, when it no longer sits at the path the run's config names. */
  baseModel?: string;
  /**
   * Check that the base model is the one the run trained: its digest (run.json base.digest,
   * train/run-dir.ts modelDigest) and shape. Default true; false accepts another file of the
   * same architecture and size (e.g. a renamed or re-downloaded copy).
   */
  verifyBase?: boolean;
  /**
   * merged: dtype of the weights computed here. From a GGUF base that is every tensor (default
   * F32: the dequantised values exactly); from a Hugging Face base the merged tensors only
   * (default: each base tensor's own dtype; untouched tensors always keep theirs).
   */
  dtype?: 'F32' | 'F16' | 'BF16';
}

export interface ExportResult {
  format: ExportFormat;
  checkpoint: string;
  /** Absolute path of the written directory or file. */
  out: string;
  files: string[];
  /** What the export could not carry over, said plainly (e.g. no tokenizer from this GGUF). */
  notes: string[];
}

// The parts of config.json an export reads (run.json: runInfoSchema in run-dir.ts); it carries more.

const trainConfigSchema = z
  .object({
    refiner: z.object({ model: z.string() }).passthrough(),
    adapter: z
      .object({
        kind: z.enum(['lora', 'full']),
        r: z.number().optional(),
        alpha: z.number().optional(),
        dropout: z.number().optional(),
        targets: z.array(z.string()).optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

function readJson(file: string, what: string): unknown {
  if (!fs.existsSync(file)) {
    throw new NotFoundError(`${what} not found`, {
      where: file,
      hint: 'pass the directory `rl4qe train` wrote (run.dir in its config)',
    });
  }
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(`${what} is not valid JSON`, {
      where: file,
      found: e instanceof Error ? e.message : String(e),
    });
  }
}

function parsed<T>(schema: z.ZodType<T>, raw: unknown, file: string, expected: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new FormatError(`invalid ${path.basename(file)}: ${issue?.message ?? 'unparseable'}`, {
      where: `${file}: ${issue?.path.join('.') || '(root)'}`,
      expected,
    });
  }
  return r.data;
}

export interface RunForExport {
  runDir: string;
  info: RunInfo;
  /** The base model path (config.json refiner.model, or the override). */
  base: string;
  adapter: 'lora' | 'full';
  checkpoint: string;
  checkpointDir: string;
}

/** run.json (version-checked), config.json and the chosen checkpoint of a run directory. */
export function openRunForExport(
  runDir: string,
  opts: { checkpoint?: string; baseModel?: string } = {},
): RunForExport {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) {
    throw new NotFoundError('run directory not found', {
      where: runDir,
      expected: 'a directory with run.json, config.json and checkpoints/',
      hint: 'pass the directory `rl4qe train` wrote (run.dir in its config)',
    });
  }
  const runFile = path.join(runDir, 'run.json');
  const rawInfo = readJson(runFile, 'run.json');
  const version = (rawInfo as { version?: unknown } | null)?.version;
  if (version !== RUN_VERSION) {
    throw new FormatError('run directory from an incompatible rl4qe version', {
      where: `${runFile}: version`,
      expected: `version ${RUN_VERSION}`,
      found: `version ${JSON.stringify(version)}`,
      hint: 'export it with the rl4qe version that wrote it (run.json names it)',
    });
  }
  const info = parsed(runInfoSchema, rawInfo, runFile, 'RunInfo (src/train/records.ts)');
  const cfgFile = path.join(runDir, 'config.json');
  const cfg = parsed(
    trainConfigSchema,
    readJson(cfgFile, 'config.json'),
    cfgFile,
    'the resolved train config ({refiner: {model}, adapter: {kind, r, alpha, ...}})',
  );
  const adapter = cfg.adapter?.kind ?? info.adapter;
  if (adapter !== info.adapter) {
    throw new FormatError('run.json and config.json disagree on the adapter kind', {
      where: runDir,
      expected: `adapter ${info.adapter} (run.json)`,
      found: `adapter.kind ${adapter} (config.json)`,
    });
  }

  const ckRoot = path.join(runDir, 'checkpoints');
  const want = opts.checkpoint ?? 'latest';
  let name = want;
  if (want === 'latest' || want === 'best') {
    const ptr = path.join(ckRoot, want);
    if (!fs.existsSync(ptr)) {
      throw new NotFoundError(`the run has no ${want} checkpoint`, {
        where: ptr,
        expected: `checkpoints/${want} naming a checkpoint`,
        found: fs.existsSync(ckRoot)
          ? fs
              .readdirSync(ckRoot)
              .filter((n) => !n.startsWith('.'))
              .join(', ') || 'an empty checkpoints/'
          : 'no checkpoints/ directory',
        hint:
          want === 'best'
            ? 'best exists once a validation ran; use --checkpoint latest or a step name'
            : 'the run wrote no checkpoint yet',
      });
    }
    name = fs.readFileSync(ptr, 'utf8').trim();
  }
  // A checkpoint is a plain name inside checkpoints/: never a path that leaves it.
  if (name === '' || name !== path.basename(name) || name === '.' || name === '..') {
    throw new FormatError('invalid checkpoint name', {
      where: want === name ? '--checkpoint' : path.join(ckRoot, want),
      expected: 'a name such as step-000010',
      found: JSON.stringify(name),
    });
  }
  const checkpointDir = path.join(ckRoot, name);
  if (!fs.existsSync(checkpointDir)) {
    throw new NotFoundError(`checkpoint ${name} not found`, {
      where: checkpointDir,
      expected: 'latest, best or one of the run checkpoints',
      found: fs.existsSync(ckRoot)
        ? fs
            .readdirSync(ckRoot)
            .filter((n) => !n.startsWith('.'))
            .join(', ') || 'none'
        : 'no checkpoints/ directory',
    });
  }
  const base = opts.baseModel ?? cfg.refiner.model;
  if (!fs.existsSync(base)) {
    throw new NotFoundError('the run base model is not where its config says', {
      where: `${cfgFile}: refiner.model`,
      expected: 'a GGUF file or a Hugging Face model directory',
      found: base,
      hint: 'pass the base model with --base PATH (the same file the run trained on)',
    });
  }
  return { runDir, info, base, adapter, checkpoint: name, checkpointDir };
}

/** The base model's config, and whether it is a GGUF file. */
function baseConfig(base: string): { config: ModelConfig; gguf: boolean } {
  if (fs.statSync(base).isDirectory()) {
    const file = path.join(base, 'config.json');
    return { config: configFromHf(readJson(file, 'config.json'), file), gguf: false };
  }
  const f = openGguf(base);
  try {
    return { config: ggufConfig(f, base), gguf: true };
  } finally {
    f.close();
  }
}

function ggufConfig(f: GgufFile, where: string): ModelConfig {
  return configFromGguf(ggufMetadataValues(f.metadata), {
    tensorNames: f.tensors.map((t) => t.name),
    where,
  });
}

/** The checkpoint's base model must be the run's: same digest, architecture and size. */
function checkBase(run: RunForExport, config: ModelConfig, verify: boolean): void {
  const b = run.info.base;
  const bad =
    b.architecture !== config.architecture ||
    b.hiddenSize !== config.hiddenSize ||
    b.numLayers !== config.numLayers;
  if (bad) {
    throw new FormatError('the base model is not the one the run trained', {
      where: run.base,
      expected: `${b.architecture} hidden ${b.hiddenSize}, ${b.numLayers} layers (run.json)`,
      found: `${config.architecture} hidden ${config.hiddenSize}, ${config.numLayers} layers`,
      hint: 'pass the run base model with --base PATH',
    });
  }
  if (!verify) return;
  const digest = modelDigest(run.base);
  if (digest !== b.digest) {
    throw new FormatError('the base model is not the file the run trained on', {
      where: run.base,
      expected: `digest ${b.digest} (run.json base.digest, of ${b.model})`,
      found: `digest ${digest}`,
      hint: 'pass the run base model with --base PATH, or --no-verify-base to accept this one',
    });
  }
}

function defaultOut(run: RunForExport, format: ExportFormat): string {
  const stem = `${run.checkpoint}-${format}`;
  return path.join(run.runDir, 'export', format === 'gguf-lora' ? `${stem}.gguf` : stem);
}

function adapterDir(run: RunForExport, format: ExportFormat): string {
  const dir = path.join(run.checkpointDir, 'adapter');
  if (run.adapter !== 'lora') {
    throw new UnsupportedError(`a full fine-tuning run has no adapter to export as ${format}`, {
      where: run.checkpointDir,
      expected: 'a LoRA run (adapter.kind "lora")',
      found: 'adapter.kind "full"',
      hint: 'export it with --format merged',
    });
  }
  if (!fs.existsSync(dir)) {
    throw new NotFoundError('the checkpoint has no adapter/ directory', {
      where: dir,
      expected: 'adapter/ (adapter_config.json + adapter_model.safetensors)',
      found: fs.readdirSync(run.checkpointDir).join(', ') || 'an empty checkpoint',
      hint: 'the checkpoint is incomplete; export another one with --checkpoint',
    });
  }
  return dir;
}

/** Exports one checkpoint of a run directory (see the file header for the formats). */
export function exportRun(opts: ExportOptions): ExportResult {
  if (!(EXPORT_FORMATS as readonly string[]).includes(opts.format)) {
    throw new ConfigError('unknown export format', {
      where: '--format',
      expected: EXPORT_FORMATS.join(' | '),
      found: String(opts.format),
    });
  }
  const run = openRunForExport(opts.runDir, opts);
  const out = path.resolve(opts.out ?? defaultOut(run, opts.format));
  // Refused before any work (a merge reads and writes the whole model); the writers check again.
  if (fs.existsSync(out) && !opts.overwrite) {
    throw new ConfigError('output already exists', {
      where: out,
      expected: 'a path that does not exist yet',
      found: fs.statSync(out).isDirectory() ? 'a directory' : 'a file',
      hint: 'choose another --out, remove it, or pass --force',
    });
  }
  const base = { checkpoint: run.checkpoint, format: opts.format, out };
  switch (opts.format) {
    case 'peft':
      return { ...base, ...exportPeft(run, out, opts) };
    case 'gguf-lora':
      return { ...base, ...exportGgufLora(run, out, opts) };
    case 'merged':
      return { ...base, ...exportMerged(run, out, opts) };
  }
}

function exportPeft(
  run: RunForExport,
  out: string,
  opts: ExportOptions,
): { files: string[]; notes: string[] } {
  const dir = adapterDir(run, 'peft');
  readPeftConfig(dir); // refuses what PEFT and rl4qe would not load alike
  readPeftLoraWeights(dir); // tensors complete and of the configured rank
  // The trainer wrote it with io/peft.ts writePeftAdapter: copied byte for byte.
  const files = writeDirAtomic(
    out,
    (tmp) => {
      for (const f of fs.readdirSync(dir)) {
        const p = path.join(dir, f);
        if (fs.statSync(p).isFile()) fs.copyFileSync(p, path.join(tmp, f));
      }
    },
    { overwrite: opts.overwrite, where: out },
  );
  return { files, notes: [] };
}

function exportGgufLora(
  run: RunForExport,
  out: string,
  opts: ExportOptions,
): { files: string[]; notes: string[] } {
  const dir = adapterDir(run, 'gguf-lora');
  const { config } = baseConfig(run.base);
  checkBase(run, config, opts.verifyBase !== false);
  const { modules } = readPeftLoraWeights(dir);
  const { alpha, pairs } = ggufLoraPairsOfHf(config, modules);
  writeFileAtomic(
    out,
    (tmp) =>
      writeGgufLoraAdapter(tmp, {
        architecture: config.architecture,
        alpha,
        pairs,
        name: `rl4qe ${path.basename(path.resolve(run.runDir))} ${run.checkpoint}`,
      }),
    { overwrite: opts.overwrite, where: out },
  );
  return { files: [path.basename(out)], notes: [] };
}

function exportMerged(
  run: RunForExport,
  out: string,
  opts: ExportOptions,
): { files: string[]; notes: string[] } {
  const { config, gguf } = baseConfig(run.base);
  checkBase(run, config, opts.verifyBase !== false);
  const notes: string[] = [];
  // What replaces the base: LoRA deltas by module, or full weights by tensor name.
  let lora: Map<string, LoraMatrices> | undefined;
  let full: SafetensorsCheckpoint | undefined;
  if (run.adapter === 'lora') lora = readPeftLoraWeights(adapterDir(run, 'merged')).modules;
  else {
    const w = path.join(run.checkpointDir, 'weights');
    full = SafetensorsCheckpoint.open(w);
  }
  try {
    const tensors: SafetensorsTensorInput[] = [];
    const used = new Set<string>();
    const adapt = (name: string, data: Float32Array, shape: readonly number[]): Float32Array => {
      if (full?.has(name)) {
        used.add(name);
        return full.readF32(name);
      }
      const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
      const m = module !== undefined ? lora?.get(module) : undefined;
      if (m) {
        used.add(module as string);
        if (shape.length !== 2 || shape[0] !== m.nOut || shape[1] !== m.nIn) {
          throw new FormatError(`the adapter for ${module} does not fit the base weight`, {
            where: `${run.checkpointDir}: ${module}`,
            expected: `[${shape.join(', ')}]`,
            found: `LoRA ${m.nOut}×${m.nIn}`,
            hint: 'the base model is not the one the run trained',
          });
        }
        mergeLoraInto(data, m, name);
      }
      return data;
    };
    if (gguf) {
      const f = openGguf(run.base);
      try {
        const src = ggufWeightSource(config, (n) =>
          f.hasTensor(n) ? { data: f.readTensorF32(n), shape: f.tensor(n).shape } : undefined,
        );
        for (const t of f.tensors) {
          const hf = hfNameOfGguf(t.name);
          if (hf === null) {
            notes.push(`GGUF tensor ${t.name} has no Hugging Face name and was left out`);
            continue;
          }
          const w = src(hf);
          if (!w || !('data' in w)) continue;
          const data = adapt(hf, w.data, w.shape);
          tensors.push({ name: hf, shape: [...w.shape], dtype: opts.dtype ?? 'F32', data });
        }
        const torchDtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;
        const configJson = hfConfigJson(config, { dtype: torchDtype[opts.dtype ?? 'F32'] });
        const tok = tokenizerFromGguf(f, run.base);
        if (tok.note) notes.push(tok.note);
        notes.push(
          'the base is a GGUF file: weights are its dequantised float32 values (not the original ' +
            'checkpoint), config.json was written from the GGUF metadata',
        );
        checkAllUsed(out, used, lora, full);
        return writeMerged({
          out,
          opts,
          tensors,
          configJson,
          side: (tmp) => tok.write(tmp),
          notes,
        });
      } finally {
        f.close();
      }
    }
    const ck = SafetensorsCheckpoint.open(run.base);
    try {
      for (const name of ck.tensorNames) {
        const info = ck.info(name);
        const dtype = info.dtype as SafetensorsDtype;
        const module = name.slice(0, -'.weight'.length);
        const touched =
          full?.has(name) === true || (name.endsWith('.weight') && lora?.has(module) === true);
        if (!touched) {
          // Untouched weights keep their bytes and dtype exactly.
          tensors.push({ name, shape: [...info.shape], dtype, raw: ck.readBytes(name) });
          continue;
        }
        const data = adapt(name, ck.readF32(name), info.shape);
        const outDtype = opts.dtype ?? (dtype === 'F16' || dtype === 'BF16' ? dtype : 'F32');
        tensors.push({ name, shape: [...info.shape], dtype: outDtype, data });
      }
    } finally {
      ck.close();
    }
    checkAllUsed(out, used, lora, full);
    return writeMerged({
      out,
      opts,
      tensors,
      side: (tmp) => {
        // config.json and the tokenizer files are the base's, byte for byte.
        for (const f of ['config.json', ...HF_SIDE_FILES]) {
          const p = path.join(run.base, f);
          if (fs.existsSync(p)) fs.copyFileSync(p, path.join(tmp, f));
        }
      },
      notes,
    });
  } finally {
    full?.close();
  }
}

/** Every trained tensor must have found its base weight: a silent partial merge is a wrong model. */
function checkAllUsed(
  out: string,
  used: ReadonlySet<string>,
  lora: ReadonlyMap<string, LoraMatrices> | undefined,
  full: SafetensorsCheckpoint | undefined,
): void {
  const unused = [...(lora?.keys() ?? full?.tensorNames ?? [])].filter((n) => !used.has(n));
  if (unused.length > 0) {
    throw new FormatError('trained weights without a base weight to merge into', {
      where: out,
      expected: 'every adapted module or trained tensor in the base model',
      found: unused.slice(0, 5).join(', ') + (unused.length > 5 ? ` (+${unused.length - 5})` : ''),
      hint: 'the base model is not the one the run trained',
    });
  }
}

interface MergedOutput {
  out: string;
  opts: ExportOptions;
  tensors: SafetensorsTensorInput[];
  /** Written as config.json; absent when `side` copies the base's. */
  configJson?: unknown;
  /** Writes the other files (tokenizer, generation config) into the temporary directory. */
  side: (tmp: string) => void;
  notes: string[];
}

function writeMerged(o: MergedOutput): { files: string[]; notes: string[] } {
  const { out, opts, tensors, configJson, side, notes } = o;
  const files = writeDirAtomic(
    out,
    (tmp) => {
      if (configJson !== undefined)
        fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(configJson, null, 2) + '\n');
      writeSafetensorsCheckpoint(tmp, { tensors, metadata: { format: 'pt' } });
      side(tmp);
    },
    { overwrite: opts.overwrite, where: out },
  );
  return { files, notes };
}

/** tokenizer.json + tokenizer_config.json from a GGUF vocabulary, when rl4qe can convert it. */
function tokenizerFromGguf(
  f: GgufFile,
  where: string,
): { write: (dir: string) => void; note?: string } {
  try {
    const vocab = readGgufVocab(f.metadata, { source: where });
    const { json, config } = ggufVocabToTokenizerJson(vocab, { source: where });
    return {
      write: (dir) => {
        fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json) + '\n');
        fs.writeFileSync(
          path.join(dir, 'tokenizer_config.json'),
          JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', ...config }, null, 2) + '\n',
        );
      },
    };
  } catch (e) {
    if (!(e instanceof Rl4qeError)) throw e;
    return {
      write: () => {},
      note:
        `no tokenizer files: the GGUF vocabulary cannot be converted to tokenizer.json ` +
        `(${e.message.split('\n')[0]}); use the base model's own tokenizer`,
    };
  }
}
