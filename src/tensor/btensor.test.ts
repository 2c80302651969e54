// The bf16 frozen weights (BTensor, the bf16 compute mode) against their definition, the reference
// kernels of src/backend/reference/bf16.ts:
//  - rounding: the native packing (vcvtne2ps2bf16) gives the reference's bf16 bits for ties,
//    subnormals (flushed to a signed zero), NaN, ±Inf, overflow to Inf, and random values;
//  - the native layouts decode to the same values as the reference layout, and the input
//    gradient's layout (transposed from the forward one, built by the first backward) too;
//  - blinear forward and its input gradient on the fast kernels equal the reference kernels on
//    the same weight within fp32 summation error: |ours − ref| ≤ 1e-5 · Σ|x·w| + 1e-6 per output
//    (the reference sums the same bf16 products in float64);
//  - against the fp32 product of the unrounded operands: within 2⁻⁷ · Σ|x·w| (two roundings of
//    at most 2⁻⁹ relative each);
//  - errors: a released BTensor, a wrong inner size, a trainable weight kept out of toBf16's way.
// Odd shapes off the 12 × 32 tile, odd inner sizes (a zero pad pair), m from 1 to 100. The native
// cases are skipped, visibly, on a CPU without AVX512-BF16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from './index.js';
import { nativeStatus, referenceBackend, type Bf16Weight } from '../backend/index.js';
import { bf16Bits, bf16Values, bf16ValuesT, roundBf16 } from '../backend/reference/bf16.js';
import { Rng } from '../util/rng.js';

const native = nativeStatus().backend;
const nativeBf16 = nativeStatus().tools?.bf16 ?? null;
const noUnit = !native
  ? `no native addon: ${nativeStatus().reason}`
  : !nativeBf16
    ? `no bf16 unit: ${nativeStatus().tools?.info().bf16 ?? 'unknown'}`
    : false;

function randomMatrix(rows: number, cols: number, rng: Rng): Float32Array {
  const a = new Float32Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal() * 0.5;
  return a;
}

/** max over outputs of |a − b| − bound, where bound = relTol · Σ|x·w| + absTol per output. */
function worstExcess(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  sumAbs: ArrayLike<number>,
  relTol: number,
  absTol: number,
): number {
  let worst = -Infinity;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) - (relTol * sumAbs[i] + absTol));
  }
  return worst;
}

/** Σ_q |x[i,q]·w[j,q]| per output of x·wᵀ (x [m, k], w [n, k]). */
function sumAbsNT(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float64Array {
  const s = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let t = 0;
      for (let q = 0; q < k; q++) t += Math.abs(x[i * k + q] * w[j * k + q]);
      s[i * n + j] = t;
    }
  return s;
}

/** Σ_j |g[i,j]·w[j,q]| per output of g·w (g [m, n], w [n, k]). */
function sumAbsNN(g: Float32Array, w: Float32Array, m: number, n: number, k: number): Float64Array {
  const s = new Float64Array(m * k);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      const a = Math.abs(g[i * n + j]);
      for (let q = 0; q < k; q++) s[i * k + q] += a * Math.abs(w[j * k + q]);
    }
  return s;
}

test('reference rounding: ties to even, subnormals to signed zero, NaN quiet, overflow to Inf', () => {
  assert.equal(bf16Bits(1 + 2 ** -8), 0x3f80); // tie → even (down)
  assert.equal(bf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
  assert.equal(bf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81); // above the tie
  assert.equal(bf16Bits(1e-40), 0);
  assert.equal(bf16Bits(-1e-40), 0x8000);
  assert.equal(bf16Bits(NaN), 0x7fc0);
  assert.equal(bf16Bits(Infinity), 0x7f80);
  assert.equal(bf16Bits(3.4e38), 0x7f80);
  assert.equal(roundBf16(-2.5), -2.5);
});

test(
  'native bf16 packing: the same bits as the reference rounding, in both layouts',
  { skip: noUnit },
  () => {
    T.setBackend('native');
    const be = T.getBackend();
    const rng = new Rng(11);
    const special = [
      1e-40,
      -1e-40,
      1.17549435e-38,
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      NaN,
      Infinity,
      -0,
      3.4e38,
      -3.3e38,
    ];
    for (const [rows, cols] of [
      [1, 1],
      [5, 10],
      [33, 47],
      [70, 129],
    ] as const) {
      const w = randomMatrix(rows, cols, rng);
      for (let i = 0; i < Math.min(special.length, w.length); i++) w[i] = special[i];
      const packed = be.bf16Pack(w, rows, cols);
      assert.equal(packed.layout, 'native-panels');
      const ref = referenceBackend.bf16Pack(w, rows, cols);
      const a = bf16Values(packed);
      const b = bf16Values(ref);
      for (let i = 0; i < a.length; i++) {
        assert.ok(
          Object.is(a[i], b[i]),
          `[${rows}, ${cols}] value ${i}: ${a[i]} vs ${b[i]} (of ${w[i]})`,
        );
      }
      // The first input gradient builds the transposed packing from the forward one.
      const g = new Float32Array(rows);
      be.bf16MatmulT(g, packed, new Float32Array(cols), 1, false);
      assert.ok(packed.dataT, 'bf16MatmulT built the input-gradient packing');
      const t = bf16ValuesT(packed);
      for (let i = 0; i < a.length; i++) assert.ok(Object.is(t[i], a[i]), `transposed value ${i}`);
    }
  },
);

function productCases(be: T.BackendName, fast: boolean): void {
  T.setBackend(be);
  const backend = T.getBackend();
  const rng = new Rng(be === 'native' ? 3 : 4);
  const shapes: [number, number, number][] = fast
    ? [
        [1, 1, 1],
        [1, 47, 33],
        [5, 64, 32],
        [13, 129, 70],
        [100, 96, 37],
        [40, 900, 33],
      ]
    : [
        [1, 7, 5],
        [13, 9, 6],
      ];
  for (const [m, k, n] of shapes) {
    const wf = randomMatrix(n, k, rng);
    const w = T.toBf16(T.tensor(wf, [n, k]), 'w');
    const packed: Bf16Weight = w.weightFor('test');
    assert.equal(packed.layout, fast ? 'native-panels' : 'rows');
    const x = T.tensor(randomMatrix(m, k, rng), [m, k], { requiresGrad: true });
    const xData = Float32Array.from(x.data);
    const y = T.blinear(x, w); // [m, n]
    assert.deepEqual(y.shape, [m, n]);
    const yRef = new Float32Array(m * n);
    referenceBackend.bf16Matmul(xData, packed, yRef, m, false);
    const saNT = sumAbsNT(xData, wf, m, k, n);
    const yData = Float32Array.from(y.data);
    assert.ok(
      worstExcess(yData, yRef, saNT, 1e-5, 1e-6) <= 0,
      `${be} forward ${m}×${k}×${n}: beyond 1e-5·Σ|x·w| of the reference`,
    );
    // Against fp32 on the unrounded operands: the documented bf16 tolerance.
    const y32 = T.matmul(T.tensor(xData, [m, k]), T.tensor(wf, [n, k]), { transB: true });
    assert.ok(
      worstExcess(yData, y32.data, saNT, 2 ** -7, 1e-6) <= 0,
      `${be} vs fp32 ${m}×${k}×${n}`,
    );
    // Input gradient through a weighted sum: gx = bf16(g) · w.
    const gw = randomMatrix(m, n, rng);
    const loss = T.sum(T.mul(y, T.tensor(gw, [m, n])));
    loss.backward();
    assert.ok(x.grad, 'x has a gradient');
    const gxRef = new Float32Array(m * k);
    referenceBackend.bf16MatmulT(gw, packed, gxRef, m, false);
    const saNN = sumAbsNN(gw, wf, m, n, k);
    assert.ok(
      worstExcess(x.grad.data, gxRef, saNN, 1e-5, 1e-6) <= 0,
      `${be} input gradient ${m}×${k}×${n}: beyond 1e-5·Σ|g·w| of the reference`,
    );
    // Accumulate adds onto out.
    const acc = Float32Array.from(yRef);
    backend.bf16Matmul(xData, packed, acc, m, true);
    for (let i = 0; i < acc.length; i++) {
      assert.ok(Math.abs(acc[i] - 2 * yRef[i]) <= 2e-5 * saNT[i] + 2e-6, `${be} accumulate ${i}`);
    }
    // The rounding is real: x rounded to bf16 gives the same output as x itself.
    const xr = T.tensor(xData.map(roundBf16), [m, k]);
    const yr = T.blinear(xr, w);
    assert.deepEqual(Array.from(yr.data), Array.from(yData), `${be} x pre-rounded to bf16`);
    x.zeroGrad();
  }
}

test('reference: blinear and its input gradient are the bf16 definition', () => {
  productCases('reference', false);
});

test(
  'native: blinear and its input gradient on vdpbf16ps equal the reference kernels',
  { skip: noUnit },
  () => {
    productCases('native', true);
  },
);

test('blinear: a released weight, a wrong inner size and a non-matrix are clear errors', () => {
  T.setBackend('reference');
  const rng = new Rng(1);
  const w = T.toBf16(T.tensor(randomMatrix(4, 6, rng), [4, 6]), 'layer.w');
  assert.throws(() => T.blinear(T.zeros([2, 5]), w), /blinear: x[\s\S]*\[\.\.\., 6\]/);
  w.release();
  assert.throws(
    () => T.blinear(T.zeros([2, 6]), w),
    /blinear \(layer\.w\): use of a released bf16 tensor/,
  );
  assert.throws(() => T.toBf16(T.zeros([2, 3, 4])), /toBf16: w[\s\S]*float32 matrix/);
});
