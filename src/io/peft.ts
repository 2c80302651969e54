// PEFT LoRA adapters on disk: the one writer (the trainer's checkpoints and `rl4qe export` both
// call writePeftAdapter) and a plain-data reader of the tensors. The directory is exactly what
// `PeftModel.save_pretrained` (peft 0.21.2) writes for a LoRA on a causal LM:
//
//   adapter_config.json        every LoraConfig field of peft 0.21.2, keys sorted, indent 2
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in]
//                              base_model.model.<module>.lora_B.weight [out, r]
//                              (no adapter name), metadata {"format": "pt"}
//   README.md                  a short model card (PEFT writes its template card)
//
// so Python loads it with PeftModel.from_pretrained and rl4qe with attachPeftAdapter
// (src/generators/peft-adapter.ts). The layer arrows keep io/ below models/: this file takes and
// returns plain Float32Arrays keyed by module name, never a model.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, FormatError, NotFoundError, ShapeError } from '../util/errors.js';
import { writeDirAtomic } from './atomic.js';
import { SafetensorsFile, writeSafetensors, type SafetensorsDtype } from './safetensors/index.js';

export const PEFT_ADAPTER_CONFIG = 'adapter_config.json';
export const PEFT_ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** The peft release whose save_pretrained output this writer reproduces field for field. */
export const PEFT_FORMAT_VERSION = '0.21.2';
/** What save_pretrained puts before every tensor name. */
export const PEFT_PREFIX = 'base_model.model.';

/** A float32 tensor, row-major over `shape`. */
export interface LoraTensor {
  data: Float32Array;
  shape: readonly number[];
}

export interface PeftAdapterSpec {
  /**
   * LoRA A and B by rl4qe module name, as models/model.ts addLora / loraParameters name them:
   * `model.layers.0.self_attn.q_proj.lora_A.weight` [r, in] and `….lora_B.weight` [out, r].
   */
  params: ReadonlyMap<string, LoraTensor>;
  r: number;
  alpha: number;
  dropout: number;
  /** PEFT target_modules: leaf names (q_proj, v_proj, …). */
  targets: readonly string[];
  /** base_model_name_or_path: the base model's path or Hub id (null when unknown). */
  baseModel: string | null;
  /** Tensor dtype in the file (default F32: what training holds, bit-exact). */
  dtype?: Extract<SafetensorsDtype, 'F32' | 'F16' | 'BF16'>;
  /** Replace an existing directory at `dir` (default: refuse). */
  overwrite?: boolean;
}

export interface PeftWriteResult {
  dir: string;
  /** Modules with LoRA, sorted. */
  modules: string[];
  files: string[];
}

const NAME_RE = /^(.+)\.lora_([AB])\.weight$/;

/** The adapter_config.json object `PeftModel.save_pretrained` writes for this LoRA. */
export function peftAdapterConfig(
  spec: Pick<PeftAdapterSpec, 'r' | 'alpha' | 'dropout' | 'targets' | 'baseModel'>,
): Record<string, unknown> {
  // Every field of peft 0.21.2's LoraConfig.to_dict() after save_pretrained (inference_mode is
  // set to true on save), with its default value; keys sorted as PEFT's json.dumps(sort_keys).
  const c: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: spec.baseModel,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: spec.alpha,
    lora_bias: false,
    lora_dropout: spec.dropout,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: PEFT_FORMAT_VERSION,
    qalora_group_size: 16,
    r: spec.r,
    rank_pattern: {},
    revision: null,
    // PEFT holds target_modules as a set; sorted here so the file is deterministic.
    target_modules: [...new Set(spec.targets)].sort(),
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    velora_config: null,
  };
  return c;
}

function modelCard(baseModel: string | null): string {
  return [
    '---',
    ...(baseModel !== null ? [`base_model: ${JSON.stringify(baseModel)}`] : []),
    'library_name: peft',
    'pipeline_tag: text-generation',
    'tags:',
    '- lora',
    '- rl4qe',
    '---',
    '',
    '# LoRA adapter (rl4qe)',
    '',
    'A query-refiner LoRA adapter trained with rl4qe, in the format of PEFT `save_pretrained`.',
    '',
    '```python',
    'from peft import PeftModel',
    'model = PeftModel.from_pretrained(base_model, "<this directory>")',
    '```',
    '',
  ].join('\n');
}

/** Checks names, pairs and shapes; returns the modules sorted and the tensors in file order. */
function validateParams(spec: PeftAdapterSpec): { modules: string[]; names: string[] } {
  const where = 'writePeftAdapter';
  if (!Number.isInteger(spec.r) || spec.r <= 0)
    throw new ConfigError('LoRA rank must be a positive integer', {
      where: `${where}: r`,
      found: String(spec.r),
    });
  if (!Number.isFinite(spec.alpha))
    throw new ConfigError('lora_alpha must be a finite number', {
      where: `${where}: alpha`,
      found: String(spec.alpha),
    });
  if (!(spec.dropout >= 0 && spec.dropout < 1))
    throw new ConfigError('lora_dropout must be in [0, 1)', {
      where: `${where}: dropout`,
      found: String(spec.dropout),
    });
  if (spec.targets.length === 0)
    throw new ConfigError('a LoRA adapter needs target modules', {
      where: `${where}: targets`,
      expected: 'e.g. ["q_proj", "v_proj"]',
      found: '[]',
    });
  const pairs = new Map<string, { A?: LoraTensor; B?: LoraTensor }>();
  for (const [name, t] of spec.params) {
    const m = NAME_RE.exec(name);
    if (!m || name.startsWith(PEFT_PREFIX)) {
      throw new FormatError('LoRA parameter name is not a module name', {
        where: `${where}: ${name}`,
        expected: '<module>.lora_A.weight or <module>.lora_B.weight, without base_model.model.',
        found: name,
      });
    }
    const module = m[1] as string;
    const leaf = module.slice(module.lastIndexOf('.') + 1);
    if (!spec.targets.includes(leaf) && !spec.targets.includes(module)) {
      throw new ConfigError('LoRA parameter for a module outside the targets', {
        where: `${where}: ${name}`,
        expected: `a module ending in ${spec.targets.join(', ')}`,
        found: module,
        hint: 'pass the targets the adapter was built with',
      });
    }
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.length !== 2 || n !== t.data.length) {
      throw new ShapeError('LoRA parameter data does not match its shape', {
        where: `${where}: ${name}`,
        expected: `a 2-d shape with ${t.data.length} elements`,
        found: `[${t.shape.join(', ')}]`,
      });
    }
    const e = pairs.get(module) ?? {};
    e[m[2] as 'A' | 'B'] = t;
    pairs.set(module, e);
  }
  if (pairs.size === 0)
    throw new ConfigError('no LoRA parameters to write', { where: `${where}: params` });
  for (const [module, e] of pairs) {
    if (!e.A || !e.B) {
      throw new NotFoundError(`LoRA ${e.A ? 'B' : 'A'} of ${module} is missing`, {
        where: `${where}: ${module}`,
        expected: `${module}.lora_A.weight and ${module}.lora_B.weight`,
      });
    }
    const [ra, nIn] = e.A.shape as [number, number];
    const [nOut, rb] = e.B.shape as [number, number];
    if (ra !== spec.r || rb !== spec.r) {
      throw new ShapeError(`LoRA rank of ${module} differs from r`, {
        where: `${where}: ${module}`,
        expected: `A [${spec.r}, in], B [out, ${spec.r}]`,
        found: `A [${ra}, ${nIn}], B [${nOut}, ${rb}]`,
      });
    }
  }
  const modules = [...pairs.keys()].sort();
  const names = modules.flatMap((m) => [`${m}.lora_A.weight`, `${m}.lora_B.weight`]);
  return { modules, names };
}

/**
 * Writes a PEFT LoRA adapter directory (see the file header) atomically: a temporary sibling
 * directory, fsync, rename. Names, A/B pairs, ranks and shapes are checked first.
 */
export function writePeftAdapter(dir: string, spec: PeftAdapterSpec): PeftWriteResult {
  const { modules, names } = validateParams(spec);
  const dtype = spec.dtype ?? 'F32';
  const config = peftAdapterConfig(spec);
  const files = writeDirAtomic(
    dir,
    (tmp) => {
      fs.writeFileSync(path.join(tmp, PEFT_ADAPTER_CONFIG), JSON.stringify(config, null, 2) + '\n');
      writeSafetensors(path.join(tmp, PEFT_ADAPTER_WEIGHTS), {
        metadata: { format: 'pt' },
        tensors: names.map((n) => {
          const t = spec.params.get(n) as LoraTensor;
          return { name: PEFT_PREFIX + n, shape: [...t.shape], dtype, data: t.data };
        }),
      });
      fs.writeFileSync(path.join(tmp, 'README.md'), modelCard(spec.baseModel));
    },
    { overwrite: spec.overwrite, where: `writePeftAdapter: ${dir}` },
  );
  return { dir: path.resolve(dir), modules, files };
}

/**
 * The LoRA tensors of a PEFT adapter file as float32, keyed by module name
 * (`model.layers.0.self_attn.q_proj.lora_A.weight`: the `base_model.model.` prefix and a
 * `.default` adapter name removed). Tensors that are not lora_A / lora_B weights are a
 * FormatError naming them; the config is not read here (generators/peft-adapter.ts validates it).
 */
export function readPeftAdapterTensors(dir: string): Map<string, LoraTensor> {
  const file = path.join(dir, PEFT_ADAPTER_WEIGHTS);
  if (!fs.existsSync(file)) {
    throw new NotFoundError(`${PEFT_ADAPTER_WEIGHTS} not found`, {
      where: dir,
      expected: `a PEFT adapter directory with ${PEFT_ADAPTER_CONFIG} and ${PEFT_ADAPTER_WEIGHTS}`,
      found: fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') || 'empty' : 'no such directory',
    });
  }
  const f = SafetensorsFile.open(file);
  try {
    const out = new Map<string, LoraTensor>();
    for (const t of f.tensors) {
      let n = t.name.startsWith(PEFT_PREFIX) ? t.name.slice(PEFT_PREFIX.length) : t.name;
      n = n.replace(/\.lora_([AB])\.default\.weight$/, '.lora_$1.weight');
      if (!NAME_RE.test(n) || t.shape.length !== 2) {
        throw new FormatError('unexpected tensor in a PEFT LoRA adapter', {
          where: `${file}: ${t.name}`,
          expected: 'base_model.model.<module>.lora_A.weight / lora_B.weight (2-d)',
          found: `${t.name} [${t.shape.join(', ')}]`,
          hint: 'LoRA on embeddings, DoRA magnitudes and LoRA biases are not supported',
        });
      }
      out.set(n, { data: f.readF32(t), shape: [...t.shape] });
    }
    return out;
  } finally {
    f.close();
  }
}
