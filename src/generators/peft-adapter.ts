// PEFT LoRA adapters (a directory with adapter_config.json + adapter_model.safetensors, as
// `PeftModel.save_pretrained` writes it) attached to one of rl4qe's own models, so a refiner
// trained here or with Python PEFT can be served by the local engine. Only what the forward pass
// can reproduce exactly is accepted; everything else (DoRA, trained biases, modules_to_save,
// LoRA on embeddings or the LM head...) is a typed error naming the field, never a silent
// approximation. Matching follows peft/tuners/tuners_utils.py (check_target_module_exists) and
// peft/utils/other.py (get_pattern_key) of peft 0.21.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readGgufLoraAdapter } from '../io/gguf/lora.js';
import { SafetensorsFile } from '../io/safetensors/index.js';
import { hfLoraOfGgufPairs, type LoraMatrices } from '../models/adapter-export.js';
import type { CausalLM } from '../models/index.js';
import { Rng } from '../util/rng.js';
import { FormatError, NotFoundError, ShapeError, UnsupportedError } from '../util/errors.js';

// A model's linear layer (the type nn/ exports; generators may not import nn directly).
type Linear = ReturnType<CausalLM['linears']> extends Map<string, infer L> ? L : never;

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';

// Fields we read; unknown fields (task_type, base_model_name_or_path, revision, ...) are passed
// through, since PEFT adds fields in every release and most do not change the forward pass.
const peftConfigSchema = z
  .object({
    peft_type: z.string().optional(),
    r: z.number().int().positive(),
    lora_alpha: z.number(),
    target_modules: z
      .union([z.array(z.string()), z.string()])
      .nullable()
      .optional(),
    exclude_modules: z
      .union([z.array(z.string()), z.string()])
      .nullable()
      .optional(),
    lora_dropout: z.number().optional(),
    bias: z.string().optional(),
    use_dora: z.boolean().optional(),
    use_rslora: z.boolean().optional(),
    lora_bias: z.boolean().optional(),
    fan_in_fan_out: z.boolean().optional(),
    modules_to_save: z.array(z.string()).nullable().optional(),
    layers_to_transform: z
      .union([z.number().int(), z.array(z.number().int())])
      .nullable()
      .optional(),
    layers_pattern: z
      .union([z.string(), z.array(z.string())])
      .nullable()
      .optional(),
    rank_pattern: z.record(z.string(), z.number().int().positive()).nullable().optional(),
    alpha_pattern: z.record(z.string(), z.number()).nullable().optional(),
    target_parameters: z.array(z.string()).nullable().optional(),
    trainable_token_indices: z.unknown().optional(),
  })
  .passthrough();

export type PeftLoraConfig = z.infer<typeof peftConfigSchema>;

export interface PeftAdapterInfo {
  dir: string;
  config: PeftLoraConfig;
  /** sha256 of adapter_config.json + adapter_model.safetensors (hex): what the cache keys on. */
  sha256: string;
  /** Modules that received LoRA, by Hugging Face module name, with their rank and scaling. */
  modules: { name: string; r: number; scaling: number }[];
}

/** Reads and validates adapter_config.json (typed errors name the field). */
export function readPeftConfig(dir: string): PeftLoraConfig {
  const file = path.join(dir, PEFT_CONFIG_FILE);
  if (!existsSync(file)) {
    throw new NotFoundError('PEFT adapter config not found', {
      where: dir,
      expected: `a PEFT adapter directory with ${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE}`,
      found: existsSync(dir) ? `no ${PEFT_CONFIG_FILE}` : 'no such directory',
      hint: 'pass the directory PeftModel.save_pretrained() (or rl4qe training) wrote',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('adapter_config.json is not valid JSON', { where: file, cause: e });
  }
  const r = peftConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new FormatError(`invalid PEFT adapter config: ${issue.message}`, {
      where: `${file}: ${issue.path.join('.') || '(root)'}`,
      expected: '{peft_type: "LORA", r, lora_alpha, target_modules, ...}',
    });
  }
  const c = r.data;
  const unsupported = (field: string, found: string, hint: string): never => {
    throw new UnsupportedError(`this PEFT adapter uses ${field}, which rl4qe cannot apply`, {
      where: `${file}: ${field}`,
      expected: 'a plain LoRA adapter',
      found,
      hint,
    });
  };
  if (c.peft_type !== undefined && c.peft_type !== 'LORA')
    unsupported('peft_type', c.peft_type, 'only LoRA adapters (peft_type "LORA") are supported');
  if (c.use_dora) unsupported('use_dora', 'true', 'DoRA is not implemented; train a plain LoRA');
  if (c.bias !== undefined && c.bias !== 'none')
    unsupported('bias', c.bias, 'train with bias="none" (trained biases are not applied)');
  if (c.lora_bias) unsupported('lora_bias', 'true', 'train with lora_bias=False');
  if (c.fan_in_fan_out) unsupported('fan_in_fan_out', 'true', 'only nn.Linear layouts');
  if (c.modules_to_save && c.modules_to_save.length > 0)
    unsupported(
      'modules_to_save',
      c.modules_to_save.join(', '),
      'fully trained modules are not loaded; merge them into the base model instead',
    );
  if (c.target_parameters && c.target_parameters.length > 0)
    unsupported('target_parameters', c.target_parameters.join(', '), 'target modules only');
  if (c.trainable_token_indices !== undefined && c.trainable_token_indices !== null)
    unsupported('trainable_token_indices', JSON.stringify(c.trainable_token_indices), '');
  // Newer LoRA variants that change the forward pass (peft 0.21 LoraConfig fields).
  const extra = c as Record<string, unknown>;
  for (const f of [
    'alora_invocation_tokens',
    'use_qalora',
    'layer_replication',
    'use_bdlora',
    'arrow_config',
    'kasa_config',
    'velora_config',
    'monteclora_config',
  ]) {
    const v = extra[f];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0))
      unsupported(f, JSON.stringify(v), 'only plain LoRA (optionally rsLoRA) is implemented');
  }
  if (c.target_modules === undefined || c.target_modules === null)
    throw new FormatError('the adapter config names no target_modules', {
      where: `${file}: target_modules`,
      expected: 'a list of module names or a regular expression',
      found: String(c.target_modules),
    });
  return c;
}

/** Python's re.fullmatch for the simple expressions PEFT configs use. */
function fullMatch(pattern: string, s: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})$`).test(s);
  } catch (e) {
    throw new FormatError('a PEFT module pattern is not a valid regular expression', {
      found: pattern,
      cause: e,
    });
  }
}

/** peft check_target_module_exists: is module `key` adapted under this config? */
export function isPeftTarget(c: PeftLoraConfig, key: string): boolean {
  const ex = c.exclude_modules;
  if (ex) {
    if (
      typeof ex === 'string'
        ? fullMatch(ex, key)
        : ex.some((e) => key === e || key.endsWith(`.${e}`))
    )
      return false;
  }
  const t = c.target_modules;
  if (typeof t === 'string') return fullMatch(t, key);
  if (!t) return false;
  let found = t.includes(key) || t.some((k) => key.endsWith(`.${k}`));
  const idx = c.layers_to_transform;
  const usesIdx = idx !== undefined && idx !== null && (!Array.isArray(idx) || idx.length > 0);
  if (found && usesIdx && !t.includes(key)) {
    const lp = c.layers_pattern;
    // peft: no pattern → the first numbered segment (`.*?\.[^.]*\.(\d+)\.`); else the first
    // `<pattern>.<n>.` of any listed pattern.
    const regexes =
      lp === undefined || lp === null || lp.length === 0
        ? [/^.*?\.[^.]*\.(\d+)\./]
        : [lp].flat().map((x) => new RegExp(`^(?:|.*?\\.)${x}\\.(\\d+)\\.`));
    let layer: number | undefined;
    for (const re of regexes) {
      const m = re.exec(key);
      if (m) {
        layer = Number(m[1]);
        break;
      }
    }
    found = layer !== undefined && (Array.isArray(idx) ? idx.includes(layer) : idx === layer);
  }
  return found;
}

/**
 * peft get_pattern_key: the first rank_pattern / alpha_pattern key that applies to module `key`
 * (`(.*\.)?(<pattern key>)$`), or undefined (the config's r / lora_alpha then apply).
 */
export function peftPatternKey(keys: readonly string[], key: string): string | undefined {
  return keys.find((k) => new RegExp(`^(.*\\.)?(${k})$`).test(key));
}

function patternValue(
  pattern: Record<string, number> | null | undefined,
  key: string,
): number | undefined {
  if (!pattern) return undefined;
  const k = peftPatternKey(Object.keys(pattern), key);
  return k === undefined ? undefined : pattern[k];
}

/** PEFT's tensor name → our module name + which matrix. */
function parseTensorName(
  name: string,
): { module: string; which: 'A' | 'B' } | { other: string } | undefined {
  let n = name.startsWith('base_model.model.') ? name.slice('base_model.model.'.length) : name;
  // save_pretrained drops the adapter name; a raw state_dict keeps `.default`.
  n = n.replace(/\.lora_([AB])\.default\.weight$/, '.lora_$1.weight');
  const m = /^(.*)\.lora_([AB])\.weight$/.exec(n);
  if (m) return { module: m[1]!, which: m[2] as 'A' | 'B' };
  if (/lora_embedding_|lora_magnitude_vector|\.lora_[AB]\.bias$/.test(n)) return { other: n };
  return undefined;
}

/**
 * Attaches the PEFT LoRA adapter in `dir` to `model` (LoRA on each targeted linear layer, A and
 * B loaded by PEFT name and shape-checked). Returns what was attached. On error the model may
 * hold partially attached adapters: callers load into a fresh model and release it on failure.
 */
export function attachPeftAdapter(model: CausalLM, dir: string): PeftAdapterInfo {
  const config = readPeftConfig(dir);
  const wfile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(wfile)) {
    const bin = existsSync(path.join(dir, 'adapter_model.bin'));
    throw new NotFoundError(`${PEFT_WEIGHTS_FILE} not found`, {
      where: dir,
      found: bin ? 'adapter_model.bin (a pickle file)' : 'no adapter weights',
      hint: bin
        ? 'rl4qe reads safetensors only: re-save with save_pretrained(dir, safe_serialization=True)'
        : 'the adapter directory is incomplete',
    });
  }

  const linears = model.linears();
  const targets: string[] = [];
  for (const name of linears.keys()) if (isPeftTarget(config, name)) targets.push(name);
  const cfgFile = path.join(dir, PEFT_CONFIG_FILE);
  if (targets.length === 0) {
    throw new NotFoundError('no layer of the model matches the adapter target_modules', {
      where: `${cfgFile}: target_modules`,
      expected: `module names of this model, e.g. ${[...linears.keys()].slice(0, 3).join(', ')}`,
      found: JSON.stringify(config.target_modules),
      hint: 'the adapter was trained for another architecture',
    });
  }
  if (targets.includes('lm_head')) {
    throw new UnsupportedError('LoRA on the LM head is not applied by rl4qe', {
      where: `${cfgFile}: target_modules`,
      found: 'lm_head',
      hint: 'train without lm_head in target_modules',
    });
  }
  // peft raises when a named target module is absent from the model; so do we.
  if (Array.isArray(config.target_modules)) {
    const leaves = new Set([...linears.keys()].map((n) => n.slice(n.lastIndexOf('.') + 1)));
    const missing = config.target_modules.filter(
      (t) =>
        !linears.has(t) && !leaves.has(t) && ![...linears.keys()].some((n) => n.endsWith(`.${t}`)),
    );
    if (missing.length > 0) {
      throw new NotFoundError('adapter target modules not found in the model', {
        where: `${cfgFile}: target_modules`,
        expected: `linear layers of this model: ${[...leaves].join(', ')}`,
        found: missing.join(', '),
        hint: 'LoRA on embeddings or other layer types is not supported; or the adapter belongs to another architecture',
      });
    }
  }

  const file = SafetensorsFile.open(wfile);
  try {
    const names = file.tensors.map((t) => t.name);
    const byModule = new Map<string, { A?: string; B?: string }>();
    for (const n of names) {
      const p = parseTensorName(n);
      if (p === undefined) {
        throw new FormatError('unexpected tensor in a PEFT LoRA adapter', {
          where: `${wfile}: ${n}`,
          expected: 'base_model.model.<module>.lora_A.weight / lora_B.weight',
          found: n,
        });
      }
      if ('other' in p) {
        throw new UnsupportedError('the adapter holds tensors rl4qe does not apply', {
          where: `${wfile}: ${n}`,
          found: n,
          hint: 'LoRA on embeddings, DoRA magnitudes and LoRA biases are not supported',
        });
      }
      if (!linears.has(p.module)) {
        throw new NotFoundError('adapter tensor for a module the model does not have', {
          where: `${wfile}: ${n}`,
          expected: 'a linear layer of this model',
          found: p.module,
          hint: 'the adapter was trained for another architecture or size',
        });
      }
      if (!targets.includes(p.module)) {
        throw new FormatError('adapter tensor for a module its config does not target', {
          where: `${wfile}: ${n}`,
          found: p.module,
          hint: 'adapter_config.json and adapter_model.safetensors do not belong together',
        });
      }
      const e = byModule.get(p.module) ?? {};
      e[p.which] = n;
      byModule.set(p.module, e);
    }
    const modules: PeftAdapterInfo['modules'] = [];
    for (const name of targets) {
      const e = byModule.get(name);
      if (!e?.A || !e.B) {
        throw new NotFoundError(`adapter weights for ${name} are missing`, {
          where: wfile,
          expected: `base_model.model.${name}.lora_A.weight and .lora_B.weight`,
          found: e?.A ?? e?.B ?? 'neither',
          hint: 'adapter_config.json targets this module but the weights file has no LoRA for it',
        });
      }
      const lin = linears.get(name) as Linear;
      const r = patternValue(config.rank_pattern, name) ?? config.r;
      const alpha = patternValue(config.alpha_pattern, name) ?? config.lora_alpha;
      // LoraAdapter scales by alpha/r; rsLoRA scales by alpha/√r, i.e. alpha' = alpha·√r.
      const effAlpha = config.use_rslora ? alpha * Math.sqrt(r) : alpha;
      const want = { A: [r, lin.inFeatures], B: [lin.outFeatures, r] } as const;
      const data: Record<'A' | 'B', Float32Array> = {
        A: new Float32Array(0),
        B: new Float32Array(0),
      };
      for (const which of ['A', 'B'] as const) {
        const tname = e[which] as string;
        const info = file.tensor(tname);
        const w = want[which];
        if (info.shape.length !== 2 || info.shape[0] !== w[0] || info.shape[1] !== w[1]) {
          throw new ShapeError(`adapter tensor ${tname} has the wrong shape`, {
            where: `${wfile}: ${tname}`,
            expected: `[${w.join(', ')}] (r = ${r}, layer ${lin.outFeatures}×${lin.inFeatures})`,
            found: `[${info.shape.join(', ')}]`,
            hint: 'the adapter belongs to another model size, or r / rank_pattern is wrong',
          });
        }
        data[which] = file.readF32(info);
      }
      // The rng only draws A's initial values, overwritten at once.
      const a = lin.addLora({ r, alpha: effAlpha, dropout: 0, rng: new Rng(0) });
      a.a.data.set(data.A);
      a.b.data.set(data.B);
      a.a.name = `${name}.lora_A.weight`;
      a.b.name = `${name}.lora_B.weight`;
      modules.push({ name, r, scaling: a.scaling });
    }
    return { dir, config, sha256: peftAdapterSha256(dir), modules };
  } finally {
    file.close();
  }
}

/** sha256 (hex) of adapter_config.json + adapter_model.safetensors: the adapter's cache identity. */
export function peftAdapterSha256(dir: string): string {
  const cfg = path.join(dir, PEFT_CONFIG_FILE);
  const w = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(cfg) || !existsSync(w)) readPeftConfig(dir); // the typed NotFoundError
  if (!existsSync(w))
    throw new NotFoundError(`${PEFT_WEIGHTS_FILE} not found`, {
      where: dir,
      hint: existsSync(path.join(dir, 'adapter_model.bin'))
        ? 'rl4qe reads safetensors only: re-save with save_pretrained(dir, safe_serialization=True)'
        : 'the adapter directory is incomplete',
    });
  const h = createHash('sha256');
  h.update(readFileSync(cfg));
  h.update(readFileSync(w));
  return h.digest('hex');
}

// ---- plain-data reading and GGUF LoRA adapters -------------------------------------------------

/** A PEFT adapter's LoRA as plain data: what export and merging need (no model involved). */
export interface PeftLoraWeights {
  dir: string;
  config: PeftLoraConfig;
  /** By Hugging Face module name (model.layers.0.self_attn.q_proj), sorted. */
  modules: Map<string, LoraMatrices>;
}

/**
 * Reads a PEFT LoRA adapter (config validated as attachPeftAdapter does) into A/B matrices per
 * module with each module's rank and scaling (rank_pattern, alpha_pattern, rsLoRA applied).
 */
export function readPeftLoraWeights(dir: string): PeftLoraWeights {
  const config = readPeftConfig(dir);
  const wfile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(wfile)) peftAdapterSha256(dir); // the typed NotFoundError with its hint
  const file = SafetensorsFile.open(wfile);
  try {
    const byModule = new Map<
      string,
      { A?: Float32Array; B?: Float32Array; sa?: number[]; sb?: number[] }
    >();
    for (const t of file.tensors) {
      const p = parseTensorName(t.name);
      if (p === undefined || 'other' in p) {
        throw new UnsupportedError('the adapter holds tensors rl4qe does not apply', {
          where: `${wfile}: ${t.name}`,
          expected: 'base_model.model.<module>.lora_A.weight / lora_B.weight',
          found: t.name,
          hint: 'LoRA on embeddings, DoRA magnitudes and LoRA biases are not supported',
        });
      }
      const e = byModule.get(p.module) ?? {};
      e[p.which] = file.readF32(t);
      if (p.which === 'A') e.sa = [...t.shape];
      else e.sb = [...t.shape];
      byModule.set(p.module, e);
    }
    const modules = new Map<string, LoraMatrices>();
    for (const name of [...byModule.keys()].sort()) {
      const e = byModule.get(name)!;
      if (!e.A || !e.B || !e.sa || !e.sb) {
        throw new NotFoundError(`adapter weights for ${name} are incomplete`, {
          where: wfile,
          expected: `base_model.model.${name}.lora_A.weight and .lora_B.weight`,
          found: e.A ? 'only lora_A' : 'only lora_B',
        });
      }
      const r = patternValue(config.rank_pattern, name) ?? config.r;
      const alpha = patternValue(config.alpha_pattern, name) ?? config.lora_alpha;
      if (e.sa.length !== 2 || e.sb.length !== 2 || e.sa[0] !== r || e.sb[1] !== r) {
        throw new ShapeError(`adapter tensors of ${name} do not have rank ${r}`, {
          where: `${wfile}: ${name}`,
          expected: `lora_A [${r}, in], lora_B [out, ${r}]`,
          found: `lora_A [${e.sa.join(', ')}], lora_B [${e.sb.join(', ')}]`,
          hint: 'r / rank_pattern in adapter_config.json do not match the weights',
        });
      }
      const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
      modules.set(name, { a: e.A, b: e.B, r, nIn: e.sa[1]!, nOut: e.sb[0]!, scaling });
    }
    if (modules.size === 0)
      throw new FormatError('the PEFT adapter holds no LoRA weights', { where: wfile });
    return { dir, config, modules };
  } finally {
    file.close();
  }
}

export interface GgufLoraAdapterInfo {
  file: string;
  architecture: string;
  alpha: number;
  /** sha256 (hex) of the adapter file: what the cache keys on. */
  sha256: string;
  modules: { name: string; r: number; scaling: number }[];
}

/**
 * Attaches a llama.cpp LoRA adapter GGUF (rl4qe export --format gguf-lora, or llama.cpp's
 * convert_lora_to_gguf.py) to `model`: GGUF tensor names back to module names, the Llama q/k
 * lora_b rows back to Hugging Face order, scaling alpha/r as llama.cpp applies it. As with
 * attachPeftAdapter, a failure may leave adapters partly attached: load into a fresh model.
 */
export function attachGgufLoraAdapter(model: CausalLM, file: string): GgufLoraAdapterInfo {
  if (!existsSync(file)) {
    throw new NotFoundError('GGUF LoRA adapter not found', {
      where: file,
      hint: 'pass the .gguf file `rl4qe export RUN_DIR --format gguf-lora` wrote',
    });
  }
  const ad = readGgufLoraAdapter(file);
  if (ad.architecture !== model.config.architecture) {
    throw new FormatError('the LoRA adapter was made for another architecture', {
      where: `${file}: general.architecture`,
      expected: model.config.architecture,
      found: ad.architecture,
    });
  }
  const modules = hfLoraOfGgufPairs(model.config, ad, file);
  const linears = model.linears();
  const attached: GgufLoraAdapterInfo['modules'] = [];
  for (const [name, m] of modules) {
    const lin = linears.get(name) as Linear | undefined;
    if (!lin || name === 'lm_head') {
      throw new NotFoundError('adapter tensor for a layer the model does not adapt', {
        where: `${file}: ${name}`,
        expected: 'a decoder-layer projection of this model',
        found: name,
        hint: 'the adapter belongs to another model size, or targets the LM head',
      });
    }
    if (m.nIn !== lin.inFeatures || m.nOut !== lin.outFeatures) {
      throw new ShapeError(`adapter for ${name} has the wrong shape`, {
        where: `${file}: ${name}`,
        expected: `${lin.outFeatures}×${lin.inFeatures}`,
        found: `${m.nOut}×${m.nIn} (r = ${m.r})`,
        hint: 'the adapter belongs to another model size',
      });
    }
    const a = lin.addLora({ r: m.r, alpha: m.scaling * m.r, dropout: 0, rng: new Rng(0) });
    a.a.data.set(m.a);
    a.b.data.set(m.b);
    a.a.name = `${name}.lora_A.weight`;
    a.b.name = `${name}.lora_B.weight`;
    attached.push({ name, r: m.r, scaling: a.scaling });
  }
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  return { file, architecture: ad.architecture, alpha: ad.alpha, sha256, modules: attached };
}

/** Whether `p` names a GGUF LoRA adapter file (by its magic) rather than a PEFT directory. */
export function isGgufAdapterPath(p: string): boolean {
  if (!existsSync(p) || statSync(p).isDirectory()) return false;
  const fd = openSync(p, 'r');
  try {
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, 0);
    return b.toString('latin1') === 'GGUF';
  } finally {
    closeSync(fd);
  }
}

/** Attaches either adapter format: a GGUF LoRA file or a PEFT directory. */
export function attachAdapter(
  model: CausalLM,
  p: string,
): { kind: 'peft'; info: PeftAdapterInfo } | { kind: 'gguf-lora'; info: GgufLoraAdapterInfo } {
  return isGgufAdapterPath(p)
    ? { kind: 'gguf-lora', info: attachGgufLoraAdapter(model, p) }
    : { kind: 'peft', info: attachPeftAdapter(model, p) };
}

/** The adapter's content identity for caches: sha256 of the GGUF file or of the PEFT files. */
export function adapterSha256(p: string): string {
  return isGgufAdapterPath(p)
    ? createHash('sha256').update(readFileSync(p)).digest('hex')
    : peftAdapterSha256(p);
}
