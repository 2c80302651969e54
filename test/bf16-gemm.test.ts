// The bf16 GEMM (native/gemm_bf16.cc, AVX512-BF16 vdpbf16ps) against plain references:
//  - exact definition: inputs rounded to bf16 (round to nearest even, src/util/half.ts), products
//    and sums in float64; the kernel's fp32 sums must be within 1e-5 · Σ|terms| + 1e-6;
//  - the fp32 product of the unrounded inputs: within 2⁻⁷ · Σ|a·b| (each bf16 rounding is at
//    most 2⁻⁹ relative, so a product moves by under 2⁻⁸ of its size), the documented tolerance of
//    `--compute bf16` products.
// Odd k (a zero pad pair), n and m off the 32 × 12 tile, both transposes, alpha, accumulate, and
// results independent of the thread count. Skipped (visibly) on a CPU without AVX512-BF16.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadNative } from '../src/backend/native/index.js';
import { f32ToBf16Bits } from '../src/util/half.js';
import { Rng } from '../src/util/rng.js';

const skip = process.env.RL4QE_SKIP_NATIVE === '1' ? 'RL4QE_SKIP_NATIVE=1' : false;

const bf = (x: number): number => {
  const u = new Uint32Array([f32ToBf16Bits(x) << 16]);
  return new Float32Array(u.buffer)[0]!;
};

test(
  'bf16 GEMM: bf16-rounded products with fp32 sums, every layout, alpha, accumulate',
  { skip },
  (t) => {
    const r = loadNative();
    assert.ok(r.tools, `the native addon did not load: ${r.reason}`);
    const tools = r.tools;
    const info = tools.info();
    if (!tools.bf16) {
      assert.match(info.bf16 ?? 'none', /^none/, 'no bf16 GEMM: info.bf16 says why');
      t.skip(`no bf16 GEMM here: ${info.bf16}`);
      return;
    }
    const rng = new Rng(5);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [13, 7, 5],
      [12, 64, 32],
      [25, 129, 70],
      [40, 900, 33],
    ];
    try {
      for (const [m, k, n] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const [alpha, accumulate] of [
              [1, false],
              [0.5, true],
            ] as const) {
              const a = Float32Array.from({ length: m * k }, () => rng.uniform(-2, 2));
              const b = Float32Array.from({ length: k * n }, () => rng.uniform(-2, 2));
              const c0 = Float32Array.from({ length: m * n }, () => rng.uniform(-1, 1));
              const A = (i: number, p: number): number => (transA ? a[p * m + i]! : a[i * k + p]!);
              const B = (p: number, j: number): number => (transB ? b[j * k + p]! : b[p * n + j]!);
              const packed = tools.bf16.pack(b, k, n, transB);
              const outs: Float32Array[] = [];
              for (const threads of [1, 2]) {
                tools.setThreads(threads);
                const out = Float32Array.from(c0);
                tools.bf16.matmul({ a, packed, out, m, k, n, transA, alpha, accumulate });
                outs.push(out);
              }
              assert.deepEqual(outs[1], outs[0], `${m}×${k}×${n}: 1 vs 2 threads`);
              const got = outs[0]!;
              for (let i = 0; i < m; i++) {
                for (let j = 0; j < n; j++) {
                  let exact = 0;
                  let full = 0;
                  let abs = 0;
                  for (let p = 0; p < k; p++) {
                    exact += bf(A(i, p)) * bf(B(p, j));
                    full += A(i, p) * B(p, j);
                    abs += Math.abs(A(i, p) * B(p, j));
                  }
                  const base = accumulate ? c0[i * n + j]! : 0;
                  const g = got[i * n + j]!;
                  const tag = `${m}×${k}×${n} tA=${transA} tB=${transB} α=${alpha} [${i},${j}]`;
                  const e1 = Math.abs(g - (base + alpha * exact));
                  assert.ok(
                    e1 <= 1e-5 * (abs + Math.abs(base)) + 1e-6,
                    `${tag}: ${g} vs bf16-exact ${base + alpha * exact}`,
                  );
                  const e2 = Math.abs(g - (base + alpha * full));
                  assert.ok(
                    e2 <= 2 ** -7 * abs + 1e-6,
                    `${tag}: ${g} vs fp32 ${base + alpha * full}`,
                  );
                }
              }
            }
          }
        }
      }
    } finally {
      tools.setThreads(info.threads);
    }
  },
);

test('bf16 GEMM: a packed B of another shape is refused with a clear error', { skip }, (t) => {
  const r = loadNative();
  assert.ok(r.tools);
  if (!r.tools.bf16) {
    t.skip('no bf16 GEMM here');
    return;
  }
  const packed = r.tools.bf16.pack(new Float32Array(8 * 40), 8, 40, true);
  assert.throws(
    () =>
      r.tools!.bf16!.matmul({
        a: new Float32Array(2 * 64),
        packed,
        out: new Float32Array(2 * 40),
        m: 2,
        k: 64,
        n: 40,
        transA: false,
      }),
    /packed for another shape/,
  );
});
