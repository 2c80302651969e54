// AdamW (decoupled weight decay, torch.optim.AdamW semantics) on the backend's fused `adamw`
// kernel, with state that saves and restores exactly; and global-norm gradient clipping
// (torch.nn.utils.clip_grad_norm_).
import type { Tensor } from '../tensor/index.js';
import { getBackend } from '../backend/index.js';
import { ConfigError, ShapeError } from '../util/errors.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Everything needed to resume: copies, never views of live buffers. */
export interface AdamWState {
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** First and second moments, one array per parameter (same order as the constructor's). */
  m: Float32Array[];
  v: Float32Array[];
}

/** torch.optim.AdamW defaults, except that lr has none. */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

export class AdamW {
  readonly params: Tensor[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private t = 0;
  private m: Float32Array[];
  private v: Float32Array[];

  constructor(params: Tensor[], opts: AdamWOptions) {
    if (!(opts.lr >= 0)) {
      throw new ConfigError('AdamW learning rate must be ≥ 0', {
        where: 'AdamW',
        expected: 'lr ≥ 0',
        found: String(opts.lr),
      });
    }
    this.params = params;
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? ADAMW_DEFAULTS.beta1;
    this.beta2 = opts.beta2 ?? ADAMW_DEFAULTS.beta2;
    this.eps = opts.eps ?? ADAMW_DEFAULTS.eps;
    this.weightDecay = opts.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
    for (const p of params) {
      if (p.dtype !== 'f32') {
        throw new ShapeError('AdamW updates float32 parameters', {
          where: `AdamW (${p.name ?? 'parameter'})`,
          expected: 'f32',
          found: p.dtype,
        });
      }
    }
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  get step(): number {
    return this.t;
  }

  /** One update from the current .grad of every parameter (parameters without a grad are skipped). */
  update(): void {
    this.t += 1;
    const be = getBackend();
    const p = {
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      step: this.t,
    };
    this.params.forEach((param, i) => {
      if (!param.grad) return;
      be.adamw(
        param.data as Float32Array,
        param.grad.data,
        this.m[i] as Float32Array,
        this.v[i] as Float32Array,
        p,
      );
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  state(): AdamWState {
    return {
      step: this.t,
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      m: this.m.map((a) => a.slice()),
      v: this.v.map((a) => a.slice()),
    };
  }

  /** Restores a state() snapshot; the parameter list must match in count and sizes. */
  loadState(s: AdamWState): void {
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new ShapeError('AdamW state does not match the parameters', {
        where: 'AdamW.loadState',
        expected: `${this.params.length} moment arrays`,
        found: `${s.m.length} and ${s.v.length}`,
      });
    }
    this.params.forEach((p, i) => {
      const m = s.m[i] as Float32Array;
      const v = s.v[i] as Float32Array;
      if (m.length !== p.size || v.length !== p.size) {
        throw new ShapeError('AdamW state size mismatch', {
          where: `AdamW.loadState (parameter ${i}${p.name ? ` ${p.name}` : ''})`,
          expected: String(p.size),
          found: `${m.length}/${v.length}`,
        });
      }
    });
    this.t = s.step;
    this.lr = s.lr;
    this.m = s.m.map((a) => Float32Array.from(a));
    this.v = s.v.map((a) => Float32Array.from(a));
  }
}

/**
 * Scales all gradients in place so their global L2 norm is at most maxNorm; returns the norm
 * before clipping. Same rule as torch.nn.utils.clip_grad_norm_: coef = maxNorm/(norm + 1e-6),
 * applied only when below 1.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.data;
    for (let i = 0; i < g.length; i++) sq += (g[i] as number) * (g[i] as number);
  }
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    const c = Math.fround(coef);
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.data;
      for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) * c;
    }
  }
  return norm;
}
