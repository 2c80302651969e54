// Gradient check: analytic gradients (backward) against central finite differences, in float64
// on the reference backend. The scalar checked is L = Σ f(x) ⊙ R for a fixed random R, so every
// output element contributes with its own weight.
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.js';
import { noGrad, tensor, type Tensor } from '../../src/tensor/index.js';

export interface InputSpec {
  shape: number[];
  /** Values drawn from [lo, hi) (default [−1, 1)). */
  lo?: number;
  hi?: number;
  /** Explicit values instead of random ones. */
  values?: number[];
  /** Not differentiated (default true). */
  grad?: boolean;
}

export interface GradcheckOptions {
  seed?: number;
  eps?: number;
  /** |analytic − numeric| ≤ atol + rtol · |numeric|. */
  atol?: number;
  rtol?: number;
  /** At most this many probed elements per input (random subset). */
  maxProbe?: number;
}

function makeInputs(specs: InputSpec[], rng: Rng): Tensor[] {
  return specs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const vals = s.values ?? Array.from({ length: n }, () => rng.uniform(s.lo ?? -1, s.hi ?? 1));
    return tensor(vals, s.shape, { dtype: 'f64', requiresGrad: s.grad ?? true });
  });
}

export function gradcheck(
  name: string,
  f: (xs: Tensor[]) => Tensor,
  specs: InputSpec[],
  opts: GradcheckOptions = {},
): void {
  const rng = new Rng(opts.seed ?? 1234);
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const maxProbe = opts.maxProbe ?? 48;
  const xs = makeInputs(specs, rng);
  const out = f(xs);
  assert.equal(out.dtype, 'f64', `${name}: output dtype`);
  const R = Array.from({ length: out.size }, () => rng.uniform(-1, 1));
  const loss = (): number =>
    noGrad(() => {
      const y = f(xs);
      let s = 0;
      const d = y.data;
      for (let i = 0; i < d.length; i++) s += d[i] * R[i];
      y.release();
      return s;
    });
  out.backward(tensor(R, out.shape, { dtype: 'f64' }));
  xs.forEach((x, xi) => {
    if (!(specs[xi].grad ?? true)) return;
    assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
    const g = x.grad.data;
    const n = x.size;
    const probe =
      n <= maxProbe ? [...Array(n).keys()] : Array.from({ length: maxProbe }, () => rng.int(n));
    for (const i of probe) {
      const d = x.data;
      const orig = d[i];
      d[i] = orig + eps;
      const lp = loss();
      d[i] = orig - eps;
      const lm = loss();
      d[i] = orig;
      const num = (lp - lm) / (2 * eps);
      const err = Math.abs(g[i] - num);
      assert.ok(
        err <= atol + rtol * Math.abs(num),
        `${name}: d/dx${xi}[${i}] analytic ${g[i]} vs numeric ${num} (error ${err.toExponential(2)})`,
      );
    }
  });
  out.release();
  for (const x of xs) x.release();
}
