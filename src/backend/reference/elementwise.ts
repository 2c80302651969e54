// Elementwise kernels and reductions of the reference backend: the definitions of each op.
import type { BinaryOp, Buf, ReduceOp, UnaryOp } from '../backend.js';

// Each op has its own loop (a switch outside the loop): calling a per-op closure inside the loop
// makes the call site megamorphic in V8 and costs over 10× on large tensors.

/** out[o + i] = op(a[ao + i·as], b[bo + i·bs]) for i < n. */
function binaryRow(
  op: BinaryOp,
  a: Buf,
  ao: number,
  as: number,
  b: Buf,
  bo: number,
  bs: number,
  out: Buf,
  o: number,
  n: number,
): void {
  switch (op) {
    case 'add':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] + b[bo + i * bs];
      return;
    case 'sub':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] - b[bo + i * bs];
      return;
    case 'mul':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] * b[bo + i * bs];
      return;
    case 'div':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] / b[bo + i * bs];
      return;
    case 'max':
      for (let i = 0; i < n; i++) {
        const x = a[ao + i * as];
        const y = b[bo + i * bs];
        out[o + i] = x >= y ? x : y;
      }
      return;
    case 'min':
      for (let i = 0; i < n; i++) {
        const x = a[ao + i * as];
        const y = b[bo + i * bs];
        out[o + i] = x <= y ? x : y;
      }
      return;
    case 'eq':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] === b[bo + i * bs] ? 1 : 0;
      return;
    case 'gt':
      for (let i = 0; i < n; i++) out[o + i] = a[ao + i * as] > b[bo + i * bs] ? 1 : 0;
      return;
  }
}

/** out[i] = op(a[ia], b[ib]) over outShape; aStrides/bStrides are element strides (0 = broadcast). */
export function binary(
  op: BinaryOp,
  a: Buf,
  aStrides: readonly number[],
  b: Buf,
  bStrides: readonly number[],
  out: Buf,
  outShape: readonly number[],
): void {
  const rank = outShape.length;
  if (rank === 0) {
    binaryRow(op, a, 0, 0, b, 0, 0, out, 0, 1);
    return;
  }
  for (const d of outShape) if (d === 0) return;
  const last = rank - 1;
  const n = outShape[last];
  const as = aStrides[last];
  const bs = bStrides[last];
  const idx = new Array<number>(rank).fill(0);
  let ao = 0;
  let bo = 0;
  let o = 0;
  for (;;) {
    binaryRow(op, a, ao, as, b, bo, bs, out, o, n);
    o += n;
    let ax = last - 1;
    while (ax >= 0) {
      idx[ax]++;
      ao += aStrides[ax];
      bo += bStrides[ax];
      if (idx[ax] < outShape[ax]) break;
      ao -= aStrides[ax] * outShape[ax];
      bo -= bStrides[ax] * outShape[ax];
      idx[ax] = 0;
      ax--;
    }
    if (ax < 0) return;
  }
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function unary(op: UnaryOp, x: Buf, out: Buf): void {
  const n = x.length;
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) out[i] = -x[i];
      return;
    case 'exp':
      for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]);
      return;
    case 'log':
      for (let i = 0; i < n; i++) out[i] = Math.log(x[i]);
      return;
    case 'sqrt':
      for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]);
      return;
    case 'rsqrt':
      for (let i = 0; i < n; i++) out[i] = 1 / Math.sqrt(x[i]);
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]);
      return;
    case 'silu':
      for (let i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]);
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]);
      return;
    case 'relu':
      for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : 0;
      return;
    case 'abs':
      for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]);
      return;
    case 'square':
      for (let i = 0; i < n; i++) out[i] = x[i] * x[i];
      return;
    case 'recip':
      for (let i = 0; i < n; i++) out[i] = 1 / x[i];
      return;
  }
}

/** d op(x)/dx at element i, written in terms of x and y = op(x). */
function deriv(op: UnaryOp, x: Buf, y: Buf, i: number): number {
  switch (op) {
    case 'neg':
      return -1;
    case 'exp':
      return y[i];
    case 'log':
      return 1 / x[i];
    case 'sqrt':
      return 0.5 / y[i];
    case 'rsqrt':
      return -0.5 * y[i] * y[i] * y[i];
    case 'sigmoid':
      return y[i] * (1 - y[i]);
    case 'silu': {
      const s = sigmoid(x[i]);
      return s * (1 + x[i] * (1 - s));
    }
    case 'tanh':
      return 1 - y[i] * y[i];
    case 'relu':
      return x[i] > 0 ? 1 : 0;
    case 'abs':
      return x[i] > 0 ? 1 : x[i] < 0 ? -1 : 0;
    case 'square':
      return 2 * x[i];
    case 'recip':
      return -y[i] * y[i];
  }
}

export function unaryBackward(
  op: UnaryOp,
  x: Buf,
  y: Buf,
  gy: Buf,
  gx: Buf,
  accumulate: boolean,
): void {
  // deriv() is a small switch V8 inlines; the op is the same on every iteration.
  if (accumulate) for (let i = 0; i < gy.length; i++) gx[i] += gy[i] * deriv(op, x, y, i);
  else for (let i = 0; i < gy.length; i++) gx[i] = gy[i] * deriv(op, x, y, i);
}

export function affine(x: Buf, s: number, t: number, out: Buf): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i] * s + t;
}

/**
 * Reduce the middle axis of [outer, axis, inner] into out [outer, inner]. The axis loop is outside
 * the inner loop so memory is read in order (a float64 row holds the running results).
 */
export function reduce(
  op: ReduceOp,
  x: Buf,
  outer: number,
  axis: number,
  inner: number,
  out: Buf,
): void {
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(op === 'sum' ? 0 : -Infinity);
    for (let a = 0; a < axis; a++) {
      const row = (o * axis + a) * inner;
      if (op === 'sum') {
        for (let i = 0; i < inner; i++) acc[i] += x[row + i];
      } else {
        for (let i = 0; i < inner; i++) {
          const v = x[row + i];
          // NaN propagates: once acc is NaN, no comparison replaces it.
          if (v > acc[i] || Number.isNaN(v)) acc[i] = v;
        }
      }
    }
    for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i];
  }
}

/** Index of the first maximum over the middle axis of [outer, axis, inner]. */
export function argmax(x: Buf, outer: number, axis: number, inner: number, out: Int32Array): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * axis * inner + i;
      let best = 0;
      let bv = -Infinity;
      for (let a = 0; a < axis; a++) {
        const v = x[base + a * inner];
        if (v > bv) {
          bv = v;
          best = a;
        }
      }
      out[o * inner + i] = best;
    }
  }
}
