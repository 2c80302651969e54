// Embedding, RMSNorm and RoPE: thin modules over the fused tensor ops, holding their weights.
import {
  embedding,
  ones,
  qembedding,
  QTensor,
  rmsNorm,
  rope,
  ropeTable,
  zeros,
  type RopeTable,
  type Tensor,
} from '../tensor/index.js';
import type { RopeScaling } from './rope-scaling.js';
import { ropeScalingForTable } from './rope-scaling.js';

/** Token embedding: table [vocab, dim]; forward(ids) → [...idsShape, dim]. */
export class Embedding {
  /** [V, D]; a QTensor when the model keeps GGUF blocks (rows are then decoded on lookup). */
  weight: Tensor | QTensor;
  constructor(opts: { vocab: number; dim: number }) {
    this.weight = zeros([opts.vocab, opts.dim]); // [V, D]
  }
  forward(ids: Int32Array, shape: readonly number[]): Tensor {
    const w = this.weight;
    return w instanceof QTensor ? qembedding(w, ids, shape) : embedding(w, ids, shape); // [...shape, D]
  }
  release(): void {
    this.weight.release();
  }
}

/** RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · weight. */
export class RMSNorm {
  weight: Tensor;
  readonly eps: number;
  constructor(opts: { dim: number; eps: number }) {
    this.weight = ones([opts.dim]); // [D]
    this.eps = opts.eps;
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps); // same shape as x
  }
  release(): void {
    this.weight.release();
  }
}

/** Rotary position embedding (rotate-half layout of HF Llama/Qwen2) with its cos/sin table. */
export class Rope {
  readonly table: RopeTable;
  readonly maxPositions: number;
  constructor(opts: {
    headDim: number;
    theta: number;
    maxPositions: number;
    scaling?: RopeScaling;
  }) {
    this.maxPositions = opts.maxPositions;
    this.table = ropeTable({
      headDim: opts.headDim,
      theta: opts.theta,
      maxPositions: opts.maxPositions,
      ...ropeScalingForTable(opts.scaling),
    });
  }
  /** x [B, T, H, D], positions B·T absolute positions → same shape. */
  forward(x: Tensor, positions: Int32Array): Tensor {
    return rope(x, this.table, positions);
  }
}
