// Grouped-query causal self-attention and the SwiGLU MLP: the two halves of a Llama/Qwen2 block.
// Every projection goes through nn/linear.ts, so LoRA can sit on any of them.
import { attention, mul, reshape, silu, type Tensor } from '../tensor/index.js';
import { Linear, type ForwardContext, type LoraOptions } from './linear.js';
import type { Rope } from './layers.js';

/**
 * Where a layer's past keys and values live during incremental decoding (implemented by
 * src/sampling/kv-cache.ts). `append` stores this step's k, v [B, T, KVH, D] for `layer` and
 * returns every key/value so far: [B, Tpast + T, KVH, D], or, with keyLen = Tpast + T, the
 * cache's own storage [B, capacity, KVH, D] (or, with headMajor, [B, KVH, capacity, D]) for
 * attention to read in place.
 */
export interface KvCacheLike {
  append(
    layer: number,
    k: Tensor,
    v: Tensor,
  ): { k: Tensor; v: Tensor; keyLen?: number; headMajor?: boolean };
}

export interface AttentionCall extends ForwardContext {
  /** Absolute position of every (batch, time) row, B·T entries. */
  positions: Int32Array;
  /** Layer index (for the KV cache). */
  layer: number;
  cache?: KvCacheLike;
  /** Per-sequence first valid key (left padding in batched decoding). */
  keyStart?: Int32Array;
}

export type AttentionProjection = 'q' | 'k' | 'v' | 'o';

export class CausalSelfAttention {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;

  constructor(opts: {
    hidden: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    qkvBias: boolean;
    outBias: boolean;
  }) {
    const { hidden, heads, kvHeads, headDim } = opts;
    this.heads = heads;
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.q = new Linear({ inFeatures: hidden, outFeatures: heads * headDim, bias: opts.qkvBias });
    this.k = new Linear({ inFeatures: hidden, outFeatures: kvHeads * headDim, bias: opts.qkvBias });
    this.v = new Linear({ inFeatures: hidden, outFeatures: kvHeads * headDim, bias: opts.qkvBias });
    this.o = new Linear({ inFeatures: heads * headDim, outFeatures: hidden, bias: opts.outBias });
  }

  /** x [B, T, hidden] → [B, T, hidden]. */
  forward(x: Tensor, rope: Rope, call: AttentionCall): Tensor {
    const [B, T] = x.shape as [number, number, number];
    const H = this.heads;
    const KVH = this.kvHeads;
    const D = this.headDim;
    let q = reshape(this.q.forward(x, call), [B, T, H, D]); // [B, T, H, D]
    let k = reshape(this.k.forward(x, call), [B, T, KVH, D]); // [B, T, KVH, D]
    let v = reshape(this.v.forward(x, call), [B, T, KVH, D]); // [B, T, KVH, D]
    q = rope.forward(q, call.positions); // [B, T, H, D]
    k = rope.forward(k, call.positions); // [B, T, KVH, D]
    let keyLen: number | undefined;
    let headMajor: boolean | undefined;
    // With a cache: its storage, [B, Tk, KVH, D] or head-major [B, KVH, Tk, D].
    if (call.cache) ({ k, v, keyLen, headMajor } = call.cache.append(call.layer, k, v));
    const y = attention(q, k, v, {
      causal: true,
      scale: 1 / Math.sqrt(D),
      ...(call.keyStart ? { keyStart: call.keyStart } : {}),
      ...(keyLen !== undefined ? { keyLen } : {}),
      ...(headMajor ? { kvHeadMajor: true } : {}),
    }); // [B, T, H, D]
    return this.o.forward(reshape(y, [B, T, H * D]), call); // [B, T, hidden]
  }

  projections(): Record<AttentionProjection, Linear> {
    return { q: this.q, k: this.k, v: this.v, o: this.o };
  }

  release(): void {
    for (const l of [this.q, this.k, this.v, this.o]) l.release();
  }
}

export type MlpProjection = 'gate' | 'up' | 'down';

/** SwiGLU: down(silu(gate(x)) ⊙ up(x)). */
export class SwiGluMlp {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;
  constructor(opts: { hidden: number; inner: number; bias: boolean }) {
    this.gate = new Linear({ inFeatures: opts.hidden, outFeatures: opts.inner, bias: opts.bias });
    this.up = new Linear({ inFeatures: opts.hidden, outFeatures: opts.inner, bias: opts.bias });
    this.down = new Linear({ inFeatures: opts.inner, outFeatures: opts.hidden, bias: opts.bias });
  }
  /** x [B, T, hidden] → [B, T, hidden]. */
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    const g = silu(this.gate.forward(x, ctx)); // [B, T, inner]
    const u = this.up.forward(x, ctx); // [B, T, inner]
    return this.down.forward(mul(g, u), ctx); // [B, T, hidden]
  }
  projections(): Record<MlpProjection, Linear> {
    return { gate: this.gate, up: this.up, down: this.down };
  }
  release(): void {
    for (const l of [this.gate, this.up, this.down]) l.release();
  }
}

export type { LoraOptions };
