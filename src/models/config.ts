// One typed ModelConfig for every architecture rl4qe runs, normalised from a Hugging Face
// config.json or from GGUF metadata. Every default lives in MODEL_DEFAULTS below (with why), so a
// model file never has to guess: it reads a complete, validated config.
import { z } from 'zod';
import { ConfigError, FormatError, UnsupportedError } from '../util/errors.js';

export type Architecture = 'llama' | 'qwen2';

/** RoPE frequency scaling (the type lives in nn/, beside the RoPE module that applies it). */
export type { RopeScaling } from '../nn/rope-scaling.js';
import type { RopeScaling } from '../nn/rope-scaling.js';

export interface ModelConfig {
  architecture: Architecture;
  /** Free-form model name when the source gives one (GGUF general.name, HF _name_or_path). */
  name: string;
  vocabSize: number;
  hiddenSize: number;
  /** SwiGLU inner width. */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Grouped-query attention: numHeads % numKvHeads === 0 (numKvHeads === numHeads is plain MHA). */
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** LM head shares the token-embedding matrix. */
  tieEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2 family). */
  qkvBias: boolean;
  /** Bias on the attention output projection and on the MLP (some Llama variants). */
  outBias: boolean;
  mlpBias: boolean;
  /** Longest context the model was trained for (the RoPE table is built this long by default). */
  contextLength: number;
  bosTokenId: number | null;
  /** Tokens that end generation by default (config eos_token_id may be a list). */
  eosTokenIds: number[];
}

/**
 * Defaults applied when a source leaves a field out. These are the values transformers uses for
 * the same field of LlamaConfig/Qwen2Config (and llama.cpp for GGUF), so a missing field means
 * the same model in rl4qe as in the reference implementations.
 */
export const MODEL_DEFAULTS = {
  llama: {
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieEmbeddings: false,
    qkvBias: false,
    contextLength: 2048,
  },
  qwen2: {
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    // Qwen2Config defaults tie_word_embeddings to false; the small Qwen2/2.5 checkpoints set true.
    tieEmbeddings: false,
    // Qwen2 always has q/k/v biases (there is no config switch in transformers).
    qkvBias: true,
    contextLength: 32768,
  },
  /** HF ROPE_INIT_FUNCTIONS defaults for the scaled variants. */
  yarn: { betaFast: 32, betaSlow: 1 },
  llama3: { lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
} as const;

const HF_ARCH: Record<string, Architecture> = {
  llama: 'llama',
  qwen2: 'qwen2',
};

const posInt = z.number().int().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]);

const ropeDict = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    rope_theta: z.number().positive().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: posInt.optional(),
    beta_fast: z.number().optional(),
    beta_slow: z.number().optional(),
    attention_factor: z.number().optional(),
  })
  .passthrough();

const hfSchema = z
  .object({
    model_type: z.string(),
    _name_or_path: z.string().optional(),
    vocab_size: posInt,
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.nullable().optional(),
    head_dim: posInt.nullable().optional(),
    rms_norm_eps: z.number().positive().optional(),
    rope_theta: z.number().positive().optional(),
    rope_scaling: ropeDict.nullable().optional(),
    /** transformers ≥ 5 writes theta and scaling here instead. */
    rope_parameters: ropeDict.nullable().optional(),
    tie_word_embeddings: z.boolean().optional(),
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().optional(),
    max_position_embeddings: posInt.optional(),
    hidden_act: z.string().optional(),
    bos_token_id: tokenIds.nullable().optional(),
    eos_token_id: tokenIds.nullable().optional(),
    use_sliding_window: z.boolean().optional(),
  })
  .passthrough();

/** Normalises a parsed Hugging Face config.json. `where` names the file in errors. */
export function configFromHf(json: unknown, where = 'config.json'): ModelConfig {
  const parsed = hfSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FormatError('invalid Hugging Face model config', {
      where: `${where}${issue ? ` (field ${issue.path.join('.') || '<root>'})` : ''}`,
      expected: 'a config.json of a Llama or Qwen2 model',
      found: issue?.message ?? 'unparseable',
      hint: 'check that the file is the model config.json (not tokenizer_config.json)',
    });
  }
  const c = parsed.data;
  const architecture = HF_ARCH[c.model_type];
  if (!architecture) {
    throw new UnsupportedError(`unsupported model_type '${c.model_type}'`, {
      where,
      expected: Object.keys(HF_ARCH).join(', '),
      found: c.model_type,
      hint:
        c.model_type === 'qwen'
          ? 'the original Qwen (Qwen-1.8B) is a different architecture; use a Qwen1.5/2/2.5 checkpoint'
          : 'Llama-family (SmolLM2, DeepSeek-Coder) and Qwen2-family (Qwen1.5/2/2.5) models are supported',
    });
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') {
    throw new UnsupportedError(`unsupported hidden_act '${c.hidden_act}'`, {
      where: `${where} (hidden_act)`,
      expected: 'silu',
      found: c.hidden_act,
    });
  }
  if (c.use_sliding_window === true) {
    throw new UnsupportedError('sliding-window attention is not implemented', {
      where: `${where} (use_sliding_window)`,
      expected: 'false',
      found: 'true',
    });
  }
  const d = MODEL_DEFAULTS[architecture];
  const rp = c.rope_parameters ?? null;
  const ropeTheta = rp?.rope_theta ?? c.rope_theta ?? d.ropeTheta;
  const scalingDict = c.rope_scaling ?? rp;
  const ropeScaling = normaliseRopeScaling(scalingDict, `${where} (rope_scaling)`);
  const numHeads = c.num_attention_heads;
  const cfg: ModelConfig = {
    architecture,
    name: c._name_or_path ?? '',
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads: c.num_key_value_heads ?? numHeads,
    headDim: c.head_dim ?? c.hidden_size / numHeads,
    rmsNormEps: c.rms_norm_eps ?? d.rmsNormEps,
    ropeTheta,
    ropeScaling,
    tieEmbeddings: c.tie_word_embeddings ?? d.tieEmbeddings,
    qkvBias: architecture === 'qwen2' ? true : (c.attention_bias ?? false),
    outBias: architecture === 'llama' ? (c.attention_bias ?? false) : false,
    mlpBias: c.mlp_bias ?? false,
    contextLength: c.max_position_embeddings ?? d.contextLength,
    bosTokenId: firstId(c.bos_token_id),
    eosTokenIds: idList(c.eos_token_id),
  };
  return validateConfig(cfg, where);
}

function firstId(x: number | number[] | null | undefined): number | null {
  if (x === null || x === undefined) return null;
  return Array.isArray(x) ? (x[0] ?? null) : x;
}
function idList(x: number | number[] | null | undefined): number[] {
  if (x === null || x === undefined) return [];
  return Array.isArray(x) ? [...x] : [x];
}

function normaliseRopeScaling(
  r: z.infer<typeof ropeDict> | null | undefined,
  where: string,
): RopeScaling {
  if (!r) return { type: 'none' };
  const type = r.rope_type ?? r.type ?? 'default';
  const factor = r.factor ?? 1;
  switch (type) {
    case 'default':
      return { type: 'none' };
    case 'linear':
      return factor === 1 ? { type: 'none' } : { type: 'linear', factor };
    case 'llama3':
      return {
        type: 'llama3',
        factor,
        lowFreqFactor: r.low_freq_factor ?? MODEL_DEFAULTS.llama3.lowFreqFactor,
        highFreqFactor: r.high_freq_factor ?? MODEL_DEFAULTS.llama3.highFreqFactor,
        originalMaxPositions:
          r.original_max_position_embeddings ?? MODEL_DEFAULTS.llama3.originalMaxPositions,
      };
    case 'yarn': {
      if (r.original_max_position_embeddings === undefined) {
        throw new FormatError('yarn rope scaling needs original_max_position_embeddings', {
          where,
          expected: 'original_max_position_embeddings',
          found: 'missing',
        });
      }
      return {
        type: 'yarn',
        factor,
        originalMaxPositions: r.original_max_position_embeddings,
        betaFast: r.beta_fast ?? MODEL_DEFAULTS.yarn.betaFast,
        betaSlow: r.beta_slow ?? MODEL_DEFAULTS.yarn.betaSlow,
        attentionFactor: r.attention_factor ?? 0.1 * Math.log(factor) + 1,
      };
    }
    default:
      throw new UnsupportedError(`unsupported rope scaling type '${type}'`, {
        where,
        expected: 'default, linear, llama3 or yarn',
        found: type,
      });
  }
}

/** GGUF metadata values as a reader returns them (uint64 may come as bigint). */
export type GgufMetadata = Readonly<Record<string, unknown>>;

export interface GgufConfigOptions {
  /** Tensor names in the file: decide tied embeddings (no output.weight) and biases. */
  tensorNames?: readonly string[];
  /** File name for error messages. */
  where?: string;
}

/** Normalises GGUF metadata (llama.cpp key names) into a ModelConfig. */
export function configFromGguf(meta: GgufMetadata, opts: GgufConfigOptions = {}): ModelConfig {
  const where = opts.where ?? 'GGUF metadata';
  const archName = meta['general.architecture'];
  if (typeof archName !== 'string') {
    throw new FormatError('GGUF has no general.architecture', {
      where,
      expected: 'a string key general.architecture',
      found: String(archName),
    });
  }
  const architecture = HF_ARCH[archName];
  if (!architecture) {
    throw new UnsupportedError(`unsupported GGUF architecture '${archName}'`, {
      where: `${where} (general.architecture)`,
      expected: Object.keys(HF_ARCH).join(', '),
      found: archName,
    });
  }
  const d = MODEL_DEFAULTS[architecture];
  const key = (k: string): string => `${archName}.${k}`;
  const num = (k: string, required: boolean): number | undefined => {
    const v = meta[k];
    if (v === undefined) {
      if (required) {
        throw new FormatError(`GGUF metadata key ${k} is missing`, {
          where,
          expected: `a number at ${k}`,
          found: 'missing',
        });
      }
      return undefined;
    }
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      throw new FormatError(`GGUF metadata key ${k} is not a number`, {
        where,
        expected: 'a finite number',
        found: typeof v,
      });
    }
    return n;
  };
  const names = opts.tensorNames ? new Set(opts.tensorNames) : null;
  if (names?.has('rope_freqs.weight')) {
    throw new UnsupportedError('GGUF rope_freqs (Llama 3.1 frequency factors) is not supported', {
      where: `${where} (tensor rope_freqs.weight)`,
      expected: 'a model without rope_freqs',
      found: 'rope_freqs.weight',
    });
  }
  const tokens = meta['tokenizer.ggml.tokens'];
  const vocabSize =
    num(key('vocab_size'), false) ??
    (Array.isArray(tokens) ? tokens.length : undefined) ??
    num(key('vocab_size'), true);
  const hiddenSize = num(key('embedding_length'), true) as number;
  const numHeads = num(key('attention.head_count'), true) as number;
  const headDim = num(key('attention.key_length'), false) ?? hiddenSize / numHeads;
  const ropeDim = num(key('rope.dimension_count'), false);
  if (ropeDim !== undefined && ropeDim !== headDim) {
    throw new UnsupportedError('partial rotary embeddings are not supported', {
      where: `${where} (${key('rope.dimension_count')})`,
      expected: `${headDim} (the head dimension)`,
      found: String(ropeDim),
    });
  }
  const scalingType = meta[key('rope.scaling.type')];
  const factor = num(key('rope.scaling.factor'), false) ?? 1;
  let ropeScaling: RopeScaling = { type: 'none' };
  if (scalingType === 'linear' && factor !== 1) ropeScaling = { type: 'linear', factor };
  else if (scalingType === 'yarn') {
    const orig = num(key('rope.scaling.original_context_length'), true) as number;
    ropeScaling = {
      type: 'yarn',
      factor,
      originalMaxPositions: orig,
      betaFast: num(key('rope.scaling.yarn_beta_fast'), false) ?? MODEL_DEFAULTS.yarn.betaFast,
      betaSlow: num(key('rope.scaling.yarn_beta_slow'), false) ?? MODEL_DEFAULTS.yarn.betaSlow,
      attentionFactor: 0.1 * Math.log(factor) + 1,
    };
  } else if (scalingType !== undefined && scalingType !== 'none' && scalingType !== 'linear') {
    throw new UnsupportedError(`unsupported GGUF rope scaling '${String(scalingType)}'`, {
      where: `${where} (${key('rope.scaling.type')})`,
      expected: 'none, linear or yarn',
      found: String(scalingType),
    });
  }
  const eos = num('tokenizer.ggml.eos_token_id', false);
  const eot = num('tokenizer.ggml.eot_token_id', false);
  const eosTokenIds = [...new Set([eos, eot].filter((x): x is number => x !== undefined))];
  const cfg: ModelConfig = {
    architecture,
    name: typeof meta['general.name'] === 'string' ? (meta['general.name'] as string) : '',
    vocabSize: vocabSize as number,
    hiddenSize,
    intermediateSize: num(key('feed_forward_length'), true) as number,
    numLayers: num(key('block_count'), true) as number,
    numHeads,
    numKvHeads: num(key('attention.head_count_kv'), false) ?? numHeads,
    headDim,
    rmsNormEps: num(key('attention.layer_norm_rms_epsilon'), false) ?? d.rmsNormEps,
    ropeTheta: num(key('rope.freq_base'), false) ?? d.ropeTheta,
    ropeScaling,
    // GGUF has no flag: llama.cpp ties when the file has no separate output.weight.
    tieEmbeddings: names ? !names.has('output.weight') : d.tieEmbeddings,
    qkvBias: names ? names.has('blk.0.attn_q.bias') : d.qkvBias,
    outBias: names ? names.has('blk.0.attn_output.bias') : false,
    mlpBias: names ? names.has('blk.0.ffn_up.bias') : false,
    contextLength: num(key('context_length'), false) ?? d.contextLength,
    bosTokenId: num('tokenizer.ggml.bos_token_id', false) ?? null,
    eosTokenIds,
  };
  return validateConfig(cfg, where);
}

/** Checks the invariants every model file relies on. */
export function validateConfig(cfg: ModelConfig, where = 'ModelConfig'): ModelConfig {
  const bad = (field: string, expected: string, found: unknown): never => {
    throw new ConfigError(`invalid model config: ${field}`, {
      where: `${where} (${field})`,
      expected,
      found: String(found),
    });
  };
  for (const f of [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'contextLength',
  ] as const) {
    if (!Number.isInteger(cfg[f]) || cfg[f] <= 0) bad(f, 'a positive integer', cfg[f]);
  }
  if (cfg.numHeads % cfg.numKvHeads !== 0) {
    bad('numKvHeads', `a divisor of numHeads (${cfg.numHeads})`, cfg.numKvHeads);
  }
  if (cfg.headDim % 2 !== 0) bad('headDim', 'an even number (RoPE rotates pairs)', cfg.headDim);
  if (!(cfg.rmsNormEps > 0)) bad('rmsNormEps', 'a positive number', cfg.rmsNormEps);
  if (!(cfg.ropeTheta > 0)) bad('ropeTheta', 'a positive number', cfg.ropeTheta);
  return cfg;
}
