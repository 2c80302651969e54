// GGUF (llama.cpp) tensor names → Hugging Face names, and undoing the Q/K row permutation that
// llama.cpp's converter applies to Llama models.
//
// Why the permutation: HF Llama applies RoPE in the rotate-half layout (pairs i and i + Dh/2 of a
// head rotate together); llama.cpp's LLAMA_ROPE_TYPE_NORM rotates adjacent pairs (2i, 2i + 1).
// convert_hf_to_gguf.py therefore permutes the output rows of q_proj and k_proj, per head:
//   gguf row h·Dh + 2i + j  =  hf row h·Dh + j·Dh/2 + i      (i < Dh/2, j ∈ {0, 1})
// rl4qe's rope() uses the HF layout, so a Llama GGUF's attn_q/attn_k rows are permuted back here.
// Qwen2 uses LLAMA_ROPE_TYPE_NEOX (rotate-half) in llama.cpp and is stored unpermuted.
import type { ModelConfig } from './config.js';
import type { WeightData, WeightSource } from './weight-source.js';

const LAYER_MAP: Record<string, string> = {
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};
const TOP_MAP: Record<string, string> = {
  token_embd: 'model.embed_tokens',
  output_norm: 'model.norm',
  output: 'lm_head',
};

/** The HF name of a GGUF tensor name, or null if rl4qe does not use it. */
export function hfNameOfGguf(name: string): string | null {
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m) {
    const inner = LAYER_MAP[m[2] as string];
    return inner ? `model.layers.${m[1]}.${inner}.${m[3]}` : null;
  }
  const t = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  if (t) {
    const top = TOP_MAP[t[1] as string];
    return top ? `${top}.${t[2]}` : null;
  }
  return null;
}

/** The GGUF name of an HF tensor name (inverse of hfNameOfGguf). */
export function ggufNameOfHf(name: string): string | null {
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m) {
    const entry = Object.entries(LAYER_MAP).find(([, v]) => v === m[2]);
    return entry ? `blk.${m[1]}.${entry[0]}.${m[3]}` : null;
  }
  const t = /^(.+)\.(weight|bias)$/.exec(name);
  if (t) {
    const entry = Object.entries(TOP_MAP).find(([, v]) => v === t[1]);
    return entry ? `${entry[0]}.${t[2]}` : null;
  }
  return null;
}

/**
 * Moves the rows of each head between llama.cpp's adjacent-pair order (row 2i + j) and HF's
 * rotate-half order (row j·Dh/2 + i) of a [heads·Dh, cols] matrix (or a [heads·Dh] bias, cols = 1).
 */
function movePairRows<T extends Float32Array | Uint8Array>(
  data: T,
  heads: number,
  cols: number,
  to: 'rotate-half' | 'adjacent-pairs',
): T {
  const dh = data.length / cols / heads;
  const half = dh / 2;
  // In place, one head at a time through a copy of that head's rows: a whole second matrix per
  // Q/K weight was garbage that raised a model load's peak memory.
  const head = data.slice(0, dh * cols) as T;
  for (let h = 0; h < heads; h++) {
    const base = h * dh * cols;
    head.set(data.subarray(base, base + dh * cols));
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const pair = 2 * i + j;
        const rot = j * half + i;
        const [src, dst] = to === 'rotate-half' ? [pair, rot] : [rot, pair];
        data.set(head.subarray(src * cols, (src + 1) * cols), base + dst * cols);
      }
    }
  }
  return data;
}

/** Q/K rows from llama.cpp's adjacent-pair order back to HF's rotate-half order (a copy). */
export function unpermuteQK(data: Float32Array, heads: number, cols: number): Float32Array {
  return movePairRows(data.slice(), heads, cols, 'rotate-half');
}

/** HF-order permutation llama.cpp applies (a copy; for tests and for writing GGUF). */
export function permuteQK(data: Float32Array, heads: number, cols: number): Float32Array {
  return movePairRows(data.slice(), heads, cols, 'adjacent-pairs');
}

/**
 * A WeightSource in HF names over GGUF tensors. `get(ggufName)` returns float32 data with the
 * shape in PyTorch order ([out, in]; GGUF lists dims innermost first, so reverse them).
 */
export function ggufWeightSource(
  config: ModelConfig,
  get: (ggufName: string) => WeightData | undefined,
): WeightSource {
  return (hfName) => {
    const g = ggufNameOfHf(hfName);
    if (!g) return undefined;
    const t = get(g);
    if (!t || config.architecture !== 'llama') return t;
    const isQ = /\.attn_q\./.test(g);
    const isK = /\.attn_k\./.test(g);
    if (!isQ && !isK) return t;
    const heads = isQ ? config.numHeads : config.numKvHeads;
    if ('quant' in t) {
      const q = t.quant;
      // Quantised rows move as bytes (blocks run along a row), in place in the fresh read.
      movePairRows(q.data, heads, q.data.length / q.rows, 'rotate-half');
      return t;
    }
    const cols = t.shape.length === 2 ? (t.shape[1] as number) : 1;
    movePairRows(t.data, heads, cols, 'rotate-half'); // in place: the data is a fresh read
    return t;
  };
}
