// Linear layers with optional LoRA, through ONE helper (`linear`) that every projection of every
// model calls (llama.cpp's build_lora_mm): a model file never contains LoRA-specific code, and
// adding an adapter to any projection is `layer.addLora(...)`.
//
//   y = x·Wᵀ + b + (α/r) · (dropout(x)·Aᵀ)·Bᵀ        W [out, in], A [r, in], B [out, r]
//
// Initialisation follows PEFT (peft/tuners/lora/layer.py, init_lora_weights=True): B = 0, so the
// adapted model starts equal to the base model, and A ~ kaiming_uniform_(a=√5), i.e.
// U(−1/√in, 1/√in) (gain √(2/(1+5)), bound = √3·gain/√fan_in).
import {
  add,
  blinear,
  BTensor,
  dropout,
  matmul,
  qlinear,
  QTensor,
  scale,
  uniform,
  zeros,
  type Tensor,
} from '../tensor/index.js';
import type { Rng } from '../util/rng.js';
import { ShapeError } from '../util/errors.js';

export interface LoraOptions {
  /** Rank r. */
  r: number;
  /** Scaling numerator α: the adapter output is multiplied by α/r. */
  alpha: number;
  /** Dropout on the adapter input (PEFT lora_dropout); 0 disables it. */
  dropout?: number;
  /** Draws A's initial values. */
  rng: Rng;
}

/** A LoRA adapter for one projection. */
export class LoraAdapter {
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  /** [r, in]: Kaiming-uniform like PEFT. */
  readonly a: Tensor;
  /** [out, r]: zero, so the adapter starts as a no-op. */
  readonly b: Tensor;

  constructor(inFeatures: number, outFeatures: number, opts: LoraOptions) {
    if (!Number.isInteger(opts.r) || opts.r <= 0) {
      throw new ShapeError('LoRA rank must be a positive integer', {
        where: 'LoraAdapter',
        expected: 'r ≥ 1',
        found: String(opts.r),
      });
    }
    this.r = opts.r;
    this.alpha = opts.alpha;
    this.dropout = opts.dropout ?? 0;
    const bound = 1 / Math.sqrt(inFeatures);
    this.a = uniform([opts.r, inFeatures], -bound, bound, opts.rng, { requiresGrad: true });
    this.b = zeros([outFeatures, opts.r], { requiresGrad: true });
  }

  get scaling(): number {
    return this.alpha / this.r;
  }

  parameters(): Tensor[] {
    return [this.a, this.b];
  }

  release(): void {
    this.a.release();
    this.b.release();
  }
}

/** Per-call context: whether dropout is active and where its randomness comes from. */
export interface ForwardContext {
  training?: boolean;
  rng?: Rng;
}

export interface LinearParts {
  /**
   * [out, in] (the nn.Linear / safetensors layout); a QTensor when the model keeps GGUF blocks,
   * a BTensor in the bf16 compute mode (models/compute.ts).
   */
  weight: Tensor | QTensor | BTensor;
  /** [out] or null. */
  bias: Tensor | null;
  lora: LoraAdapter | null;
}

/**
 * THE projection helper: x [..., in] → [..., out] = x·Wᵀ + b + (α/r)·(drop(x)·Aᵀ)·Bᵀ.
 * Every model projection goes through here.
 */
export function linear(x: Tensor, p: LinearParts, ctx: ForwardContext = {}): Tensor {
  const w = p.weight;
  let y =
    w instanceof QTensor
      ? qlinear(x, w)
      : w instanceof BTensor
        ? blinear(x, w)
        : matmul(x, w, { transB: true }); // [..., out]
  if (p.bias) y = add(y, p.bias); // [..., out]
  const l = p.lora;
  if (l) {
    const training = ctx.training === true && l.dropout > 0;
    if (training && !ctx.rng) {
      throw new ShapeError('LoRA dropout in training needs an rng', {
        where: 'linear',
        expected: 'ctx.rng',
        found: 'undefined',
      });
    }
    const xin = training ? dropout(x, l.dropout, ctx.rng as Rng, true) : x; // [..., in]
    const down = matmul(xin, l.a, { transB: true }); // [..., r]
    // α/r scales the rank-r activation rather than the [..., out] one: r/out of the work.
    const up = matmul(scale(down, l.scaling), l.b, { transB: true }); // [..., out]
    y = add(y, up); // [..., out]
  }
  return y;
}

/** nn.Linear with an optional LoRA adapter. Frozen base weights by default. */
export class Linear implements LinearParts {
  weight: Tensor | QTensor | BTensor;
  bias: Tensor | null;
  lora: LoraAdapter | null = null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(opts: { inFeatures: number; outFeatures: number; bias?: boolean }) {
    this.inFeatures = opts.inFeatures;
    this.outFeatures = opts.outFeatures;
    this.weight = zeros([opts.outFeatures, opts.inFeatures]);
    this.bias = opts.bias ? zeros([opts.outFeatures]) : null;
  }

  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return linear(x, this, ctx);
  }

  addLora(opts: LoraOptions): LoraAdapter {
    this.lora?.release();
    this.lora = new LoraAdapter(this.inFeatures, this.outFeatures, opts);
    return this.lora;
  }

  release(): void {
    this.weight.release();
    this.bias?.release();
    this.lora?.release();
  }
}
