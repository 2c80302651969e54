// Elementwise kernels and reductions of the reference backend: the definitions of each op.
import type { BinaryOp, Buf, ReduceOp, UnaryOp } from '../backend.js';

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add':
      return (a, b) => a + b;
    case 'sub':
      return (a, b) => a - b;
    case 'mul':
      return (a, b) => a * b;
    case 'div':
      return (a, b) => a / b;
    case 'max':
      return (a, b) => (a >= b ? a : b);
    case 'min':
      return (a, b) => (a <= b ? a : b);
    case 'eq':
      return (a, b) => (a === b ? 1 : 0);
    case 'gt':
      return (a, b) => (a > b ? 1 : 0);
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
  const f = binaryFn(op);
  const rank = outShape.length;
  if (rank === 0) {
    out[0] = f(a[0], b[0]);
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
    for (let i = 0; i < n; i++) out[o + i] = f(a[ao + i * as], b[bo + i * bs]);
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

function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg':
      return (x) => -x;
    case 'exp':
      return Math.exp;
    case 'log':
      return Math.log;
    case 'sqrt':
      return Math.sqrt;
    case 'rsqrt':
      return (x) => 1 / Math.sqrt(x);
    case 'sigmoid':
      return sigmoid;
    case 'silu':
      return (x) => x * sigmoid(x);
    case 'tanh':
      return Math.tanh;
    case 'relu':
      return (x) => (x > 0 ? x : 0);
    case 'abs':
      return Math.abs;
    case 'square':
      return (x) => x * x;
    case 'recip':
      return (x) => 1 / x;
  }
}

export function unary(op: UnaryOp, x: Buf, out: Buf): void {
  const f = unaryFn(op);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
}

/** d op(x)/dx written in terms of x and y = op(x). */
function derivFn(op: UnaryOp): (x: number, y: number) => number {
  switch (op) {
    case 'neg':
      return () => -1;
    case 'exp':
      return (_x, y) => y;
    case 'log':
      return (x) => 1 / x;
    case 'sqrt':
      return (_x, y) => 0.5 / y;
    case 'rsqrt':
      return (_x, y) => -0.5 * y * y * y;
    case 'sigmoid':
      return (_x, y) => y * (1 - y);
    case 'silu':
      return (x) => {
        const s = sigmoid(x);
        return s * (1 + x * (1 - s));
      };
    case 'tanh':
      return (_x, y) => 1 - y * y;
    case 'relu':
      return (x) => (x > 0 ? 1 : 0);
    case 'abs':
      return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case 'square':
      return (x) => 2 * x;
    case 'recip':
      return (_x, y) => -y * y;
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
  const d = derivFn(op);
  for (let i = 0; i < gy.length; i++) {
    const g = gy[i] * d(x[i], y[i]);
    gx[i] = accumulate ? gx[i] + g : g;
  }
}

export function affine(x: Buf, s: number, t: number, out: Buf): void {
  for (let i = 0; i < x.length; i++) out[i] = x[i] * s + t;
}

/** Reduce the middle axis of [outer, axis, inner] into out [outer, inner]. */
export function reduce(
  op: ReduceOp,
  x: Buf,
  outer: number,
  axis: number,
  inner: number,
  out: Buf,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * axis * inner + i;
      let acc = op === 'sum' ? 0 : -Infinity;
      for (let a = 0; a < axis; a++) {
        const v = x[base + a * inner];
        if (op === 'sum') acc += v;
        else if (v > acc || Number.isNaN(v)) acc = v;
      }
      out[o * inner + i] = acc;
    }
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
