// Every kernel of the native backend against the reference backend (the definition), on seeded
// random shapes including odd sizes, within a stated per-kernel tolerance. Both run on the same
// float32 inputs; reference computes in float64 internally, so the tolerances bound the native
// kernels' float32 rounding (and their different summation order).
//
// FAILS without a built addon (build it with `node scripts/build-native.mjs`); set
// RL4QE_SKIP_NATIVE=1 to skip it visibly instead.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, Buf, BinaryOp, UnaryOp } from '../src/backend/backend.js';
import { loadNative } from '../src/backend/native/index.js';
import { referenceBackend as ref } from '../src/backend/reference/index.js';
import { Rng } from '../src/util/rng.js';

const skip = process.env.RL4QE_SKIP_NATIVE === '1' ? 'RL4QE_SKIP_NATIVE=1' : false;

function nat(): Backend & { argmax: NonNullable<Backend['argmax']> } {
  const r = loadNative();
  if (!r.backend) {
    assert.fail(
      `the native addon did not load: ${r.reason}\n` +
        'build it with `node scripts/build-native.mjs` (or set RL4QE_SKIP_NATIVE=1 to skip)',
    );
  }
  return r.backend as Backend & { argmax: NonNullable<Backend['argmax']> };
}

function rand(rng: Rng, n: number, lo = -2, hi = 2): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform(lo, hi);
  return x;
}

/** |got − want| ≤ atol + rtol·|want| everywhere (NaN must match NaN, ±∞ must match exactly). */
function close(got: Buf, want: Buf, rtol: number, atol: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) || !Number.isFinite(w)) {
      assert.ok(
        Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)),
        `${label}[${i}]: ${g} vs ${w}`,
      );
      continue;
    }
    const err = Math.abs(g - w);
    if (!(err <= atol + rtol * Math.abs(w)))
      assert.fail(`${label}[${i}]: native ${g} vs reference ${w} (|diff| ${err})`);
  }
}

/** Runs fn on both backends with copies of the same output buffers and compares them. */
function both(
  outs: Buf[],
  fn: (b: Backend, outs: Buf[]) => void,
  rtol: number,
  atol: number,
  label: string,
): void {
  const mine = outs.map((o) => Float32Array.from(o));
  const theirs = outs.map((o) => Float32Array.from(o));
  fn(nat(), mine);
  fn(ref, theirs);
  for (let i = 0; i < outs.length; i++) close(mine[i], theirs[i], rtol, atol, `${label} out${i}`);
}

const SHAPES: number[][] = [[1], [7], [3, 5], [2, 3, 4], [17, 33], [1, 1, 129], [64, 2, 3, 5]];

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

test('fill, affine, copyStrided (permute, slice, broadcast)', { skip }, () => {
  const rng = new Rng(1);
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = rand(rng, n);
    both([new Float32Array(n)], (b, [o]) => b.fill(o, 2.5), 0, 0, 'fill');
    both([new Float32Array(n)], (b, [o]) => b.affine(x, -1.5, 0.25, o), 1e-6, 1e-6, 'affine');
    // Reverse-permute the axes: dst contiguous in the permuted shape.
    const perm = shape.map((_, i) => shape.length - 1 - i);
    const pshape = perm.map((p) => shape[p]);
    const srcStrides = perm.map((p) => contiguousStrides(shape)[p]);
    both(
      [new Float32Array(n)],
      (b, [o]) => b.copyStrided(x, 0, srcStrides, o, 0, contiguousStrides(pshape), pshape),
      0,
      0,
      `permute ${shape}`,
    );
  }
  // Slice [1:4] of axis 1 of [3, 6, 5] into the middle of a bigger buffer; broadcast a row.
  const x = rand(rng, 3 * 6 * 5);
  both(
    [rand(rng, 3 * 3 * 5 + 7)],
    (b, [o]) => b.copyStrided(x, 5, [30, 5, 1], o, 7, [15, 5, 1], [3, 3, 5]),
    0,
    0,
    'slice',
  );
  both(
    [new Float32Array(4 * 5)],
    (b, [o]) => b.copyStrided(x, 0, [0, 1], o, 0, [5, 1], [4, 5]),
    0,
    0,
    'expand',
  );
  both([new Float32Array(1)], (b, [o]) => b.copyStrided(x, 3, [], o, 0, [], []), 0, 0, 'scalar');
});

test('binary ops with broadcasting', { skip }, () => {
  const rng = new Rng(2);
  const ops: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'eq', 'gt'];
  for (const op of ops) {
    for (const shape of SHAPES) {
      const n = shape.reduce((a, b) => a * b, 1);
      const full = contiguousStrides(shape);
      const a = rand(rng, n);
      const b = rand(rng, n);
      for (let i = 0; i < n; i += 3) b[i] = a[i]; // some ties for eq/max/min
      both(
        [new Float32Array(n)],
        (k, [o]) => k.binary(op, a, full, b, full, o, shape),
        1e-6,
        1e-7,
        `${op} ${shape}`,
      );
      // b broadcast along every axis but the last, then a broadcast along the last.
      const last = shape[shape.length - 1];
      const bRow = rand(rng, last);
      const rowStrides = shape.map((_, d) => (d === shape.length - 1 ? 1 : 0));
      both(
        [new Float32Array(n)],
        (k, [o]) => k.binary(op, a, full, bRow, rowStrides, o, shape),
        1e-6,
        1e-7,
        `${op} ${shape} row`,
      );
      const lead = n / last;
      const aCol = rand(rng, lead);
      const colStrides = full.map((s, d) => (d === shape.length - 1 ? 0 : s / last));
      both(
        [new Float32Array(n)],
        (k, [o]) => k.binary(op, aCol, colStrides, b, full, o, shape),
        1e-6,
        1e-7,
        `${op} ${shape} col`,
      );
    }
  }
});

const UNARY: UnaryOp[] = [
  'neg',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'sigmoid',
  'silu',
  'tanh',
  'relu',
  'abs',
  'square',
  'recip',
];
const POSITIVE = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt']);

test('unary ops and their backward (overwrite and accumulate)', { skip }, () => {
  const rng = new Rng(3);
  for (const op of UNARY) {
    for (const n of [1, 31, 1000, 70001]) {
      const x = POSITIVE.has(op) ? rand(rng, n, 0.05, 4) : rand(rng, n, -6, 6);
      if (!POSITIVE.has(op) && n > 2) x[1] = 0;
      const y = new Float32Array(n);
      ref.unary(op, x, y);
      both([new Float32Array(n)], (b, [o]) => b.unary(op, x, o), 2e-6, 1e-7, `${op} n=${n}`);
      const gy = rand(rng, n);
      for (const acc of [false, true]) {
        both(
          [rand(rng, n)],
          (b, [gx]) => b.unaryBackward(op, x, y, gy, gx, acc),
          2e-6,
          1e-6,
          `${op}' acc=${acc}`,
        );
      }
    }
  }
});

test('reduce (sum, max) over any axis, and argmax', { skip }, () => {
  const rng = new Rng(4);
  const cases: [number, number, number][] = [
    [1, 1, 1],
    [3, 7, 1],
    [1, 1000, 1],
    [5, 9, 13],
    [2, 1, 6],
    [40, 33, 70],
    [1, 5000, 3],
    [60, 90, 70], // large enough for the multi-threaded path
  ];
  for (const [outer, axis, inner] of cases) {
    const x = rand(rng, outer * axis * inner);
    for (const op of ['sum', 'max'] as const)
      both(
        [new Float32Array(outer * inner)],
        (b, [o]) => b.reduce(op, x, outer, axis, inner, o),
        1e-5,
        1e-5,
        `${op} ${outer}x${axis}x${inner}`,
      );
    const mine = new Int32Array(outer * inner);
    const theirs = new Int32Array(outer * inner);
    nat().argmax(x, outer, axis, inner, mine);
    ref.argmax!(x, outer, axis, inner, theirs);
    assert.deepEqual(mine, theirs, `argmax ${outer}x${axis}x${inner}`);
  }
});

test('softmax, log-softmax, their backward, logsumexp', { skip }, () => {
  const rng = new Rng(5);
  for (const [rows, cols] of [
    [1, 1],
    [3, 7],
    [17, 129],
    [4, 49157],
  ] as [number, number][]) {
    const x = rand(rng, rows * cols, -8, 8);
    if (rows > 1 && cols > 1) x[cols] = -Infinity; // a masked entry
    for (const log of [false, true]) {
      const y = new Float32Array(rows * cols);
      ref.softmax(x, rows, cols, y, log);
      both(
        [new Float32Array(rows * cols)],
        (b, [o]) => b.softmax(x, rows, cols, o, log),
        1e-5,
        1e-6,
        `softmax log=${log} ${rows}x${cols}`,
      );
      const gy = rand(rng, rows * cols);
      both(
        [new Float32Array(rows * cols)],
        (b, [gx]) => b.softmaxBackward(y, gy, rows, cols, gx, log),
        1e-4,
        1e-5,
        `softmax' log=${log} ${rows}x${cols}`,
      );
    }
    both(
      [new Float32Array(rows)],
      (b, [o]) => b.logsumexp(x, rows, cols, o),
      1e-6,
      1e-5,
      `logsumexp ${rows}x${cols}`,
    );
  }
  const allMasked = Float32Array.from([-Infinity, -Infinity, 1, 2]);
  both(
    [new Float32Array(2)],
    (b, [o]) => b.logsumexp(allMasked, 2, 2, o),
    1e-6,
    1e-6,
    'logsumexp all −inf row',
  );
});

test('rmsnorm and its backward (trainable and frozen weight)', { skip }, () => {
  const rng = new Rng(6);
  for (const [rows, cols] of [
    [1, 1],
    [5, 7],
    [33, 576],
    [300, 130],
    [1100, 300], // multi-threaded, per-thread weight-gradient partials
  ] as [number, number][]) {
    const x = rand(rng, rows * cols);
    const w = rand(rng, cols, 0.5, 1.5);
    const y = new Float32Array(rows * cols);
    const rstd = new Float32Array(rows);
    ref.rmsnorm(x, w, rows, cols, 1e-6, y, rstd);
    both(
      [new Float32Array(rows * cols), new Float32Array(rows)],
      (b, [o, r]) => b.rmsnorm(x, w, rows, cols, 1e-6, o, r),
      1e-5,
      1e-6,
      `rmsnorm ${rows}x${cols}`,
    );
    const gy = rand(rng, rows * cols);
    both(
      [new Float32Array(rows * cols), rand(rng, cols)],
      (b, [gx, gw]) => b.rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw),
      1e-4,
      1e-5,
      `rmsnorm' ${rows}x${cols}`,
    );
    both(
      [new Float32Array(rows * cols)],
      (b, [gx]) => b.rmsnormBackward(x, w, rstd, gy, rows, cols, gx, null),
      1e-4,
      1e-5,
      `rmsnorm' frozen ${rows}x${cols}`,
    );
  }
});

test('rope forward and inverse', { skip }, () => {
  const rng = new Rng(7);
  for (const [batch, seq, heads, headDim] of [
    [1, 1, 1, 2],
    [2, 5, 3, 8],
    [1, 37, 9, 64],
  ] as [number, number, number, number][]) {
    const maxPos = 50;
    const half = headDim / 2;
    const cos = new Float32Array(maxPos * half);
    const sin = new Float32Array(maxPos * half);
    for (let p = 0; p < maxPos; p++)
      for (let i = 0; i < half; i++) {
        const ang = p * Math.pow(10000, (-2 * i) / headDim);
        cos[p * half + i] = Math.cos(ang);
        sin[p * half + i] = Math.sin(ang);
      }
    const positions = new Int32Array(batch * seq);
    for (let i = 0; i < positions.length; i++) positions[i] = rng.int(maxPos);
    const x = rand(rng, batch * seq * heads * headDim);
    for (const inverse of [false, true])
      both(
        [new Float32Array(x.length)],
        (b, [o]) => b.rope(x, o, { batch, seq, heads, headDim, positions, cos, sin, inverse }),
        1e-6,
        1e-6,
        `rope ${batch}x${seq}x${heads}x${headDim} inverse=${inverse}`,
      );
  }
});

test('attention forward and backward: causal, GQA, KV-cache offset, keyStart', { skip }, () => {
  const rng = new Rng(8);
  const cases = [
    { batch: 1, seqQ: 1, seqK: 1, heads: 1, kvHeads: 1, headDim: 4, causal: true },
    { batch: 2, seqQ: 7, seqK: 7, heads: 4, kvHeads: 2, headDim: 8, causal: true },
    { batch: 2, seqQ: 3, seqK: 11, heads: 6, kvHeads: 2, headDim: 16, causal: true },
    { batch: 1, seqQ: 9, seqK: 13, heads: 3, kvHeads: 3, headDim: 5, causal: false },
    {
      batch: 3,
      seqQ: 6,
      seqK: 6,
      heads: 2,
      kvHeads: 1,
      headDim: 8,
      causal: true,
      keyStart: [0, 2, 4],
    },
    {
      batch: 2,
      seqQ: 5,
      seqK: 4,
      heads: 2,
      kvHeads: 1,
      headDim: 8,
      causal: true,
      keyStart: [1, 3],
    },
    { batch: 1, seqQ: 64, seqK: 64, heads: 9, kvHeads: 3, headDim: 64, causal: true },
    // Blocks of query rows through the GEMM (seqQ ≥ 16): several blocks, a KV offset, left
    // padding that leaves early rows with no key, odd head sizes, non-causal.
    {
      batch: 2,
      seqQ: 150,
      seqK: 170,
      heads: 4,
      kvHeads: 2,
      headDim: 24,
      causal: true,
      keyStart: [0, 37],
    },
    {
      batch: 2,
      seqQ: 20,
      seqK: 20,
      heads: 2,
      kvHeads: 1,
      headDim: 8,
      causal: true,
      keyStart: [0, 12],
    },
    { batch: 1, seqQ: 70, seqK: 70, heads: 3, kvHeads: 1, headDim: 7, causal: false },
    { batch: 1, seqQ: 16, seqK: 300, heads: 2, kvHeads: 2, headDim: 33, causal: true },
    // Decoding one token against a KV cache, with left padding.
    {
      batch: 2,
      seqQ: 1,
      seqK: 40,
      heads: 6,
      kvHeads: 2,
      headDim: 16,
      causal: true,
      keyStart: [0, 7],
    },
  ];
  for (const c of cases) {
    const p = {
      ...c,
      scale: 1 / Math.sqrt(c.headDim),
      keyStart: c.keyStart ? Int32Array.from(c.keyStart) : undefined,
    };
    const nq = c.batch * c.seqQ * c.heads * c.headDim;
    const nk = c.batch * c.seqK * c.kvHeads * c.headDim;
    const q = rand(rng, nq);
    const k = rand(rng, nk);
    const v = rand(rng, nk);
    const label = JSON.stringify(c);
    both(
      [new Float32Array(nq), new Float32Array(c.batch * c.heads * c.seqQ)],
      (b, [o, lse]) => b.attention(q, k, v, o, lse, p),
      1e-5,
      1e-5,
      `attention ${label}`,
    );
    const out = new Float32Array(nq);
    const lse = new Float32Array(c.batch * c.heads * c.seqQ);
    ref.attention(q, k, v, out, lse, p);
    const gOut = rand(rng, nq);
    both(
      [rand(rng, nq), rand(rng, nk), rand(rng, nk)],
      (b, [gq, gk, gv]) => b.attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, p),
      1e-4,
      1e-5,
      `attention' ${label}`,
    );
  }
});

test(
  'attention reads a KV cache in place (kvStride) exactly as a contiguous copy',
  { skip },
  () => {
    const rng = new Rng(18);
    for (const c of [
      {
        batch: 3,
        seqQ: 1,
        seqK: 9,
        cap: 14,
        heads: 4,
        kvHeads: 2,
        headDim: 16,
        keyStart: [0, 3, 5],
      },
      { batch: 2, seqQ: 5, seqK: 12, cap: 12, heads: 6, kvHeads: 3, headDim: 8, keyStart: [2, 0] },
      { batch: 2, seqQ: 4, seqK: 7, cap: 30, heads: 9, kvHeads: 3, headDim: 64 },
      // Decoding shapes (seqQ < 4: query heads of a KV group handled together), Qwen-like 14/2
      // and SmolLM2-like 9/3 heads, left padding up to a row that sees no key at all.
      {
        batch: 8,
        seqQ: 1,
        seqK: 40,
        cap: 48,
        heads: 14,
        kvHeads: 2,
        headDim: 64,
        keyStart: [0, 1, 2, 3, 4, 5, 6, 39],
      },
      {
        batch: 2,
        seqQ: 3,
        seqK: 20,
        cap: 24,
        heads: 9,
        kvHeads: 3,
        headDim: 64,
        keyStart: [0, 19],
      },
    ]) {
      const { cap, ...shape } = c;
      const row = c.kvHeads * c.headDim;
      const kc = rand(rng, c.batch * cap * row);
      const vc = rand(rng, c.batch * cap * row);
      // The first seqK keys of each sequence, copied out contiguously.
      const kd = new Float32Array(c.batch * c.seqK * row);
      const vd = new Float32Array(c.batch * c.seqK * row);
      for (let b = 0; b < c.batch; b++) {
        kd.set(kc.subarray(b * cap * row, (b * cap + c.seqK) * row), b * c.seqK * row);
        vd.set(vc.subarray(b * cap * row, (b * cap + c.seqK) * row), b * c.seqK * row);
      }
      const p = {
        ...shape,
        causal: true,
        scale: 1 / Math.sqrt(c.headDim),
        keyStart: c.keyStart ? Int32Array.from(c.keyStart) : undefined,
      };
      const nq = c.batch * c.seqQ * c.heads * c.headDim;
      const q = rand(rng, nq);
      const nl = c.batch * c.heads * c.seqQ;
      const label = `attention kvStride ${JSON.stringify(c)}`;
      const strided = { ...p, kvStride: cap * row };
      both(
        [new Float32Array(nq), new Float32Array(nl)],
        (b, [o, lse]) => b.attention(q, kc, vc, o, lse, strided),
        1e-5,
        1e-5,
        label,
      );
      // In place and copied agree exactly on the reference backend.
      const o1 = new Float32Array(nq);
      const o2 = new Float32Array(nq);
      ref.attention(q, kc, vc, o1, new Float32Array(nl), strided);
      ref.attention(q, kd, vd, o2, new Float32Array(nl), p);
      assert.deepEqual(o1, o2, label);
      // The same cache head-major, [batch, kvHeads, cap, headDim] (kvRowStride = headDim,
      // kvHeadStride = cap·headDim): native within tolerance, reference exactly equal.
      const D = c.headDim;
      const kh = new Float32Array(kc.length);
      const vh = new Float32Array(vc.length);
      for (let b = 0; b < c.batch; b++)
        for (let t = 0; t < cap; t++)
          for (let h = 0; h < c.kvHeads; h++) {
            const src = ((b * cap + t) * c.kvHeads + h) * D;
            const dst = ((b * c.kvHeads + h) * cap + t) * D;
            kh.set(kc.subarray(src, src + D), dst);
            vh.set(vc.subarray(src, src + D), dst);
          }
      const headMajor = { ...strided, kvRowStride: D, kvHeadStride: cap * D };
      both(
        [new Float32Array(nq), new Float32Array(nl)],
        (b, [o, lse]) => b.attention(q, kh, vh, o, lse, headMajor),
        1e-5,
        1e-5,
        `${label} head-major`,
      );
      const o3 = new Float32Array(nq);
      ref.attention(q, kh, vh, o3, new Float32Array(nl), headMajor);
      assert.deepEqual(o3, o1, `${label} head-major (reference)`);
      // Strides that would read past a batch entry are refused, not followed.
      assert.throws(
        () =>
          nat().attention(q, kh, vh, new Float32Array(nq), new Float32Array(nl), {
            ...headMajor,
            kvStride: (c.kvHeads - 1) * cap * D,
          }),
        /kvStride/,
      );
    }
  },
);

test('embedding gather and scatter-add (repeated ids)', { skip }, () => {
  const rng = new Rng(9);
  for (const [rows, dim, n] of [
    [1, 1, 1],
    [10, 7, 25],
    [500, 576, 300],
    [500, 576, 700], // multi-threaded: threads own column ranges
  ] as [number, number, number][]) {
    const table = rand(rng, rows * dim);
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) ids[i] = rng.int(rows);
    both(
      [new Float32Array(n * dim)],
      (b, [o]) => b.embedding(table, ids, dim, o),
      0,
      0,
      `embedding ${rows}x${dim}`,
    );
    const g = rand(rng, n * dim);
    both(
      [rand(rng, rows * dim)],
      (b, [gt]) => b.embeddingBackward(g, ids, dim, gt),
      1e-6,
      1e-6,
      `embedding' ${rows}x${dim}`,
    );
  }
});

test('adamw over several steps', { skip }, () => {
  const rng = new Rng(10);
  for (const n of [1, 13, 40000, 70001]) {
    const start = [rand(rng, n), new Float32Array(n), new Float32Array(n)];
    const grads = [rand(rng, n), rand(rng, n), rand(rng, n)];
    both(
      start,
      (b, [param, m, v]) => {
        for (let s = 0; s < grads.length; s++)
          b.adamw(param, grads[s], m, v, {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay: 0.01,
            step: s + 1,
          });
      },
      1e-5,
      1e-6,
      `adamw n=${n}`,
    );
  }
});

test(
  'matmul agrees with reference (layouts, batches, shared weights, alpha, accumulate)',
  { skip },
  () => {
    const rng = new Rng(11);
    for (const [batch, m, k, n] of [
      [1, 1, 1, 1],
      [1, 33, 65, 17],
      [3, 12, 32, 32],
      [2, 50, 129, 70],
      // Decoding shapes (the small-M path of x·Wᵀ): 1–16 rows, odd k and n.
      [1, 1, 577, 37],
      [1, 6, 33, 23],
      [2, 8, 100, 13],
      [1, 13, 47, 66],
      [1, 16, 16, 9],
    ] as [number, number, number, number][]) {
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const shareB of [false, true]) {
            const a = rand(rng, batch * m * k);
            const b = rand(rng, (shareB ? 1 : batch) * k * n);
            const accumulate = rng.next() < 0.5;
            const p = {
              batch,
              m,
              k,
              n,
              transA,
              transB,
              strideA: m * k,
              strideB: shareB ? 0 : k * n,
              strideOut: m * n,
              alpha: accumulate ? 0.5 : 1,
              accumulate,
            };
            both(
              [rand(rng, batch * m * n)],
              (bk, [o]) => bk.matmul(a, b, o, p),
              1e-4,
              1e-4,
              `matmul ${JSON.stringify(p)}`,
            );
          }
    }
  },
);
