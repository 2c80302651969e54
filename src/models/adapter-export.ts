// The model-side pieces of adapter export (train/export.ts drives them; io/ writes the files):
//  - a Hugging Face config.json from a ModelConfig (a merged model from a GGUF base needs one);
//  - LoRA pairs between Hugging Face module names and llama.cpp's GGUF tensor names, with the
//    Llama Q/K row order (gguf-names.ts) applied to lora_b;
//  - merging, W' = W + s·B·A.
//
// Why only lora_b moves: llama.cpp computes y += s·B·(A·x) against the GGUF weight, whose q/k
// output rows convert_hf_to_gguf.py permuted per head. A acts on the input side (columns of W),
// which the permutation leaves alone; B's rows are W's output rows and must move with them
// (llama.cpp's convert_lora_to_gguf.py permutes lora_B the same way, and only lora_B).
import type { GgufLoraPair } from '../io/gguf/lora.js';
import { ShapeError, UnsupportedError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import { ggufNameOfHf, hfNameOfGguf, permuteQK, unpermuteQK } from './gguf-names.js';

/** One module's LoRA: A [r, nIn], B [nOut, r] row-major; the update is scaling·B·A. */
export interface LoraMatrices {
  a: Float32Array;
  b: Float32Array;
  r: number;
  nIn: number;
  nOut: number;
  /** α/r for LoRA, α/√r for rsLoRA. */
  scaling: number;
}

const HF_CLASS: Record<ModelConfig['architecture'], string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/**
 * The config.json transformers needs to load this model (LlamaConfig / Qwen2Config fields;
 * configFromHf reads it back to the same ModelConfig). Combinations transformers cannot express
 * (a Llama with q/k/v biases but none on o_proj, a Qwen2 without q/k/v biases) are refused.
 */
export function hfConfigJson(
  c: ModelConfig,
  opts: { dtype?: 'float32' | 'float16' | 'bfloat16' } = {},
): Record<string, unknown> {
  const where = `config.json for ${c.name || c.architecture}`;
  if (c.architecture === 'llama' && c.qkvBias !== c.outBias) {
    throw new UnsupportedError('transformers Llama has one attention_bias for q, k, v and o', {
      where,
      expected: 'biases on all four attention projections or on none',
      found: `q/k/v bias ${c.qkvBias}, o bias ${c.outBias}`,
    });
  }
  if (c.architecture === 'qwen2' && (!c.qkvBias || c.outBias || c.mlpBias)) {
    throw new UnsupportedError('transformers Qwen2 has q/k/v biases and no others', {
      where,
      found: `q/k/v bias ${c.qkvBias}, o bias ${c.outBias}, MLP bias ${c.mlpBias}`,
    });
  }
  const rs = c.ropeScaling;
  let ropeScaling: Record<string, unknown> | null = null;
  if (rs.type === 'linear') ropeScaling = { rope_type: 'linear', factor: rs.factor };
  else if (rs.type === 'llama3')
    ropeScaling = {
      rope_type: 'llama3',
      factor: rs.factor,
      low_freq_factor: rs.lowFreqFactor,
      high_freq_factor: rs.highFreqFactor,
      original_max_position_embeddings: rs.originalMaxPositions,
    };
  else if (rs.type === 'yarn')
    ropeScaling = {
      rope_type: 'yarn',
      factor: rs.factor,
      original_max_position_embeddings: rs.originalMaxPositions,
      beta_fast: rs.betaFast,
      beta_slow: rs.betaSlow,
      attention_factor: rs.attentionFactor,
    };
  const eos =
    c.eosTokenIds.length === 0
      ? null
      : c.eosTokenIds.length === 1
        ? c.eosTokenIds[0]
        : c.eosTokenIds;
  const json: Record<string, unknown> = {
    architectures: [HF_CLASS[c.architecture]],
    model_type: c.architecture,
    _name_or_path: c.name,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScaling,
    max_position_embeddings: c.contextLength,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: eos,
    attention_dropout: 0,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: opts.dtype ?? 'float32',
  };
  if (c.architecture === 'llama') {
    json.attention_bias = c.qkvBias;
    json.mlp_bias = c.mlpBias;
    json.pretraining_tp = 1;
  } else {
    json.use_sliding_window = false;
    json.sliding_window = null;
    json.max_window_layers = c.numLayers;
  }
  return json;
}

function checkPair(
  where: string,
  m: { a: Float32Array; b: Float32Array; r: number; nIn: number; nOut: number },
): void {
  if (m.a.length !== m.r * m.nIn || m.b.length !== m.nOut * m.r) {
    throw new ShapeError('LoRA sizes do not match r, nIn, nOut', {
      where,
      expected: `A ${m.r}×${m.nIn}, B ${m.nOut}×${m.r}`,
      found: `A ${m.a.length}, B ${m.b.length} elements`,
    });
  }
}

/** Heads whose rows a Llama GGUF stores in llama.cpp's order: q → numHeads, k → numKvHeads. */
function qkHeads(config: ModelConfig, hfModule: string): number | undefined {
  if (config.architecture !== 'llama') return undefined;
  if (hfModule.endsWith('.self_attn.q_proj')) return config.numHeads;
  if (hfModule.endsWith('.self_attn.k_proj')) return config.numKvHeads;
  return undefined;
}

/**
 * LoRA by Hugging Face module name → llama.cpp's pairs (GGUF weight names, lora_b rows of Llama
 * q/k permuted) and the one alpha the file stores. llama.cpp scales every pair by alpha/r; a
 * module whose scaling differs from that (rsLoRA, alpha/rank patterns) has the ratio folded into
 * its B, so every module keeps its exact update.
 */
export function ggufLoraPairsOfHf(
  config: ModelConfig,
  modules: ReadonlyMap<string, LoraMatrices>,
): { alpha: number; pairs: GgufLoraPair[] } {
  const first = modules.values().next().value as LoraMatrices | undefined;
  if (!first) throw new ShapeError('no LoRA modules to convert', { where: 'ggufLoraPairsOfHf' });
  const alpha = first.scaling * first.r;
  const pairs: GgufLoraPair[] = [];
  for (const [name, m] of modules) {
    checkPair(name, m);
    const base = ggufNameOfHf(`${name}.weight`);
    if (base === null || name === 'lm_head' || name === 'model.embed_tokens') {
      throw new UnsupportedError('no llama.cpp tensor for this LoRA module', {
        where: name,
        expected: 'a projection of a decoder layer (q/k/v/o_proj, gate/up/down_proj)',
        found: name,
      });
    }
    let b = m.b;
    const fold = m.scaling / (alpha / m.r);
    if (fold !== 1) b = b.map((x) => x * fold);
    const heads = qkHeads(config, name);
    if (heads !== undefined) b = permuteQK(b, heads, m.r);
    pairs.push({ base, a: m.a, b, r: m.r, nIn: m.nIn, nOut: m.nOut });
  }
  return { alpha, pairs };
}

/** The inverse of ggufLoraPairsOfHf: llama.cpp pairs → LoRA by Hugging Face module name. */
export function hfLoraOfGgufPairs(
  config: ModelConfig,
  adapter: { alpha: number; pairs: readonly GgufLoraPair[] },
  where = 'GGUF LoRA adapter',
): Map<string, LoraMatrices> {
  const out = new Map<string, LoraMatrices>();
  for (const p of adapter.pairs) {
    checkPair(`${where}: ${p.base}`, p);
    const hf = hfNameOfGguf(p.base);
    if (hf === null || !hf.endsWith('.weight')) {
      throw new UnsupportedError('LoRA on a tensor rl4qe does not map', {
        where: `${where}: ${p.base}`,
        expected: 'blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight',
        found: p.base,
      });
    }
    const name = hf.slice(0, -'.weight'.length);
    const heads = qkHeads(config, name);
    const b = heads !== undefined ? unpermuteQK(p.b, heads, p.r) : p.b;
    // llama-adapter.cpp: scale = alpha ? alpha / rank : 1.
    const scaling = adapter.alpha !== 0 ? adapter.alpha / p.r : 1;
    out.set(name, { a: p.a, b, r: p.r, nIn: p.nIn, nOut: p.nOut, scaling });
  }
  return out;
}

/**
 * W' = W + scaling·B·A in place (W [nOut, nIn] row-major). Each element's update is summed over
 * the rank in float64 and added once, so the result is W + δ rounded once to float32.
 */
export function mergeLoraInto(w: Float32Array, m: LoraMatrices, where = 'mergeLoraInto'): void {
  checkPair(where, m);
  if (w.length !== m.nOut * m.nIn) {
    throw new ShapeError('base weight does not match the LoRA shape', {
      where,
      expected: `${m.nOut}×${m.nIn} = ${m.nOut * m.nIn} elements`,
      found: String(w.length),
    });
  }
  const { a, b, r, nIn, nOut, scaling } = m;
  const bRow = new Float64Array(r);
  for (let o = 0; o < nOut; o++) {
    for (let k = 0; k < r; k++) bRow[k] = (b[o * r + k] as number) * scaling;
    const off = o * nIn;
    for (let i = 0; i < nIn; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += (bRow[k] as number) * (a[k * nIn + i] as number);
      w[off + i] = (w[off + i] as number) + d;
    }
  }
}
