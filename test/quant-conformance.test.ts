// The native quantised-weight kernels (native/quant_impl.h: qmatmul, qmatmulT, qembedding)
// against the reference backend (src/backend/reference/quant.ts, on the block decoders of
// src/backend/quant.ts, the definition), for every ggml type of QUANT_BLOCKS, under every kernel
// set this CPU runs and with 1 and 2 threads. Weights are random valid blocks (finite f16 scales,
// random quant bytes) placed at an odd byte offset of a larger buffer.
//
// qembedding must match bit for bit (the native decoders compute the same float32 values);
// qmatmul/qmatmulT per output within 1e-5 · Σ|x·w| + 1e-6 (summation order and float32 sums).
// Kernel sets with int8 dot products (info.int8MaxM > 0: avx512vnni), inside withInt8Decoding
// (decoding steps), quantise x per block of 32 (256 for the K-quants) to int8 (dx = amax / 127,
// as llama.cpp's q8_0 / q8_K blocks) for qmatmul (any m) on the 32- and 256-element formats: there the documented tolerance adds Σ_blocks (dx / 2) · Σ|w| of the block (the
// largest error x → int8 can make), and a test below checks that the int8 path runs.
//
// FAILS without a built addon (build it with `node scripts/build-native.mjs`); set
// RL4QE_SKIP_NATIVE=1 to skip it visibly instead.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, QuantWeight } from '../src/backend/backend.js';
import { loadNative, type NativeTools } from '../src/backend/native/index.js';
import { QUANT_BLOCKS, decodeBlocks } from '../src/backend/quant.js';
import { referenceBackend as ref } from '../src/backend/reference/index.js';
import { withInt8Decoding } from '../src/backend/int8-decoding.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../src/util/half.js';
import { Rng } from '../src/util/rng.js';
import { ShapeError } from '../src/util/errors.js';

const skip = process.env.RL4QE_SKIP_NATIVE === '1' ? 'RL4QE_SKIP_NATIVE=1' : false;

function native(): { backend: Backend; tools: NativeTools } {
  const r = loadNative();
  if (!r.backend || !r.tools) {
    assert.fail(
      `the native addon did not load: ${r.reason}\n` +
        'build it with `node scripts/build-native.mjs` (or set RL4QE_SKIP_NATIVE=1 to skip)',
    );
  }
  return { backend: r.backend, tools: r.tools };
}

// Byte offsets of the f16 scales (d, min) inside one block, by ggml type.
const SCALES: Record<number, number[]> = {
  2: [0],
  3: [0, 2],
  6: [0],
  7: [0, 2],
  8: [0],
  12: [0, 2],
  13: [0, 2],
  14: [208],
};

function putU16(b: Uint8Array, p: number, v: number): void {
  b[p] = v & 0xff;
  b[p + 1] = (v >> 8) & 0xff;
}

/** A random valid weight of `type`, its bytes at byte offset 3 of a larger buffer. */
function randomWeight(rng: Rng, type: number, rows: number, cols: number): QuantWeight {
  const { blockSize, typeSize } = QUANT_BLOCKS.get(type)!;
  const len = rows * (cols / blockSize) * typeSize;
  const data = new Uint8Array(len + 8).subarray(3, 3 + len);
  for (let i = 0; i < len; i++) data[i] = rng.int(256);
  if (type === 0) {
    const dv = new DataView(data.buffer, data.byteOffset, len);
    for (let i = 0; i < len; i += 4) dv.setFloat32(i, rng.uniform(-2, 2), true);
  } else if (type === 1 || type === 30) {
    for (let i = 0; i < len; i += 2) {
      const v = rng.uniform(-2, 2);
      putU16(data, i, type === 1 ? f32ToF16Bits(v) : f32ToBf16Bits(v));
    }
  } else {
    const [dOff, mOff] = SCALES[type]!;
    for (let p = 0; p < len; p += typeSize) {
      const d = rng.uniform(0.002, 0.05) * (rng.next() < 0.5 ? -1 : 1);
      putU16(data, p + dOff!, f32ToF16Bits(d));
      if (mOff !== undefined) putU16(data, p + mOff, f32ToF16Bits(rng.uniform(-0.05, 0.05)));
    }
  }
  return { type, rows, cols, data };
}

function decodeAll(w: QuantWeight): Float32Array {
  const out = new Float32Array(w.rows * w.cols);
  decodeBlocks(w.type, w.data, w.rows * w.cols, out, 0);
  return out;
}

/**
 * Per output of x [m, cols] · Wᵀ: Σ over the blocks b of x's row (qb = 32, or 256 for the
 * K-quants: the kernel quantises x as llama.cpp's q8_0 / q8_K) of (dx_b / 2) · Σ_{q∈b} |W[j, q]|
 * with dx_b = amax_b / 127 in float32 (as the kernel computes it), times 1.001 for the rounding of
 * x · 127 / amax: the most the int8 quantisation of x can change the product.
 */
function int8Bound(
  x: Float32Array,
  W: Float32Array,
  m: number,
  rows: number,
  cols: number,
  type: number,
): Float64Array {
  const qb = QUANT_BLOCKS.get(type)!.blockSize === 256 ? 256 : 32;
  const out = new Float64Array(m * rows);
  const nb = cols / qb;
  for (let i = 0; i < m; i++) {
    const half = new Float64Array(nb);
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let q = 0; q < qb; q++) amax = Math.max(amax, Math.abs(x[i * cols + qb * b + q]!));
      half[b] = Math.fround(Math.fround(amax) / 127) / 2;
    }
    for (let j = 0; j < rows; j++) {
      let s = 0;
      for (let b = 0; b < nb; b++) {
        let a = 0;
        for (let q = 0; q < qb; q++) a += Math.abs(W[j * cols + qb * b + q]!);
        s += half[b]! * a;
      }
      out[i * rows + j] = s * 1.001;
    }
  }
  return out;
}

function rand(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.uniform(-1, 1);
  return x;
}

/** |got − want| ≤ 1e-5 · bound + 1e-6 (+ int8[i]) per element (bound: Σ|terms| of that output;
 * int8: the int8 quantisation's error bound, for the int8-dot path). */
function closeTo(
  got: Float32Array,
  want: Float32Array,
  bound: Float64Array,
  label: string,
  int8?: Float64Array,
): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= 1e-5 * bound[i]! + 1e-6 + (int8 ? int8[i]! : 0))) {
      assert.fail(`${label}[${i}]: native ${got[i]} vs reference ${want[i]} (|diff| ${err})`);
    }
  }
}

interface Case {
  w: QuantWeight;
  m: number;
  accumulate: boolean;
}

function shapesFor(type: number): [number, number][] {
  const bs = QUANT_BLOCKS.get(type)!.blockSize;
  if (bs === 1)
    return [
      [7, 1],
      [33, 20],
      [130, 65],
      [33, 200],
    ];
  if (bs === 256)
    return [
      [7, 256],
      [33, 512],
      [130, 768],
    ];
  return [
    [7, 32],
    [33, 64],
    [130, 96],
    [33, 32 * 29],
  ];
}

const MS = [1, 2, 3, 5, 8, 13, 16, 17, 40, 100];

test('qsupports: every type of QUANT_BLOCKS, nothing else', { skip }, () => {
  const { backend } = native();
  for (const t of QUANT_BLOCKS.keys()) assert.equal(backend.qsupports!(t), true, `type ${t}`);
  for (const t of [4, 5, 9, 10, 11, 15, 16, 99]) assert.equal(backend.qsupports!(t), false);
});

test(
  'qmatmul, qmatmulT, qembedding match the reference for every type, kernel set and 1–2 threads',
  { skip },
  () => {
    const { backend, tools } = native();
    const info = tools.info();
    const rng = new Rng(20261126);
    try {
      for (const type of QUANT_BLOCKS.keys()) {
        let ci = 0;
        for (const [rows, cols] of shapesFor(type)) {
          const w = randomWeight(rng, type, rows, cols);
          const W = decodeAll(w);
          // qembedding: every row once plus repeats, bit for bit.
          const ids = Int32Array.from({ length: rows + 3 }, (_, i) =>
            i < rows ? i : rng.int(rows),
          );
          const wantE = new Float32Array(ids.length * cols);
          ref.qembedding!(w, ids, wantE);
          const cases: Case[] = MS.map((m) => ({ w, m, accumulate: ci++ % 2 === 0 }));
          const refs = cases.map(({ m, accumulate }) => {
            const x = rand(rng, m * cols);
            const g = rand(rng, m * rows);
            const o0 = rand(rng, m * rows);
            const t0 = rand(rng, m * cols);
            const o = Float32Array.from(o0);
            const t = Float32Array.from(t0);
            ref.qmatmul!(x, w, o, m, accumulate);
            ref.qmatmulT!(g, w, t, m, accumulate);
            // Σ|terms| per output (plus |out| when accumulating).
            const bo = new Float64Array(m * rows);
            const bt = new Float64Array(m * cols);
            for (let i = 0; i < m; i++) {
              for (let j = 0; j < rows; j++) {
                let s = accumulate ? Math.abs(o0[i * rows + j]!) : 0;
                for (let q = 0; q < cols; q++) s += Math.abs(x[i * cols + q]! * W[j * cols + q]!);
                bo[i * rows + j] = s;
                const gij = Math.abs(g[i * rows + j]!);
                for (let q = 0; q < cols; q++) bt[i * cols + q] += gij * Math.abs(W[j * cols + q]!);
              }
              if (accumulate)
                for (let q = 0; q < cols; q++) bt[i * cols + q] += Math.abs(t0[i * cols + q]!);
            }
            const b8 =
              QUANT_BLOCKS.get(type)!.blockSize >= 32
                ? int8Bound(x, W, m, rows, cols, type)
                : undefined;
            return { x, g, o0, t0, o, t, bo, bt, b8 };
          });
          for (const kernel of info.kernels) {
            tools.setKernel(kernel);
            for (const threads of [1, 2]) {
              tools.setThreads(threads);
              const tag = `type ${type} ${rows}×${cols} ${kernel} ${threads}t`;
              const gotE = new Float32Array(ids.length * cols).fill(NaN);
              backend.qembedding!(w, ids, gotE);
              assert.deepEqual(gotE, wantE, `qembedding ${tag}`);
              cases.forEach(({ m, accumulate }, k) => {
                const r = refs[k]!;
                const o = Float32Array.from(r.o0);
                backend.qmatmul!(r.x, w, o, m, accumulate);
                closeTo(o, r.o, r.bo, `qmatmul ${tag} m=${m} acc=${accumulate}`);
                if (r.b8) {
                  // Where decoding allows int8 activations (a no-op on sets without them).
                  const o8 = Float32Array.from(r.o0);
                  withInt8Decoding(() => backend.qmatmul!(r.x, w, o8, m, accumulate));
                  closeTo(o8, r.o, r.bo, `int8 qmatmul ${tag} m=${m} acc=${accumulate}`, r.b8);
                }
                const t = Float32Array.from(r.t0);
                backend.qmatmulT!(r.g, w, t, m, accumulate);
                closeTo(t, r.t, r.bt, `qmatmulT ${tag} m=${m} acc=${accumulate}`);
              });
            }
          }
        }
      }
    } finally {
      tools.setKernel(info.kernel);
      tools.setThreads(info.threads);
    }
  },
);

test(
  'int8-dot kernel sets: qmatmul in withInt8Decoding takes the int8 path (within its bound, row by row), the float path outside',
  { skip },
  (t) => {
    const { backend, tools } = native();
    const info = tools.info();
    const int8Sets = info.kernels.filter((k) => {
      tools.setKernel(k);
      return (tools.info().int8MaxM ?? 0) > 0;
    });
    tools.setKernel(info.kernel);
    if (int8Sets.length === 0) {
      t.skip(`no kernel set with int8 dot products on this CPU (${info.kernels.join(', ')})`);
      return;
    }
    const rng = new Rng(99);
    try {
      for (const kernel of int8Sets) {
        tools.setKernel(kernel);
        const maxM = tools.info().int8MaxM!;
        for (const type of [2, 3, 6, 7, 8, 12, 13, 14]) {
          const cols = QUANT_BLOCKS.get(type)!.blockSize === 256 ? 512 : 96;
          const w = randomWeight(rng, type, 40, cols);
          const W = decodeAll(w);
          for (const m of [1, 4, maxM, 2 * maxM + 3]) {
            const x = rand(rng, m * cols);
            const want = new Float32Array(m * w.rows);
            ref.qmatmul!(x, w, want, m, false);
            const got = new Float32Array(m * w.rows);
            withInt8Decoding(() => backend.qmatmul!(x, w, got, m, false));
            const bo = new Float64Array(m * w.rows);
            for (let i = 0; i < m; i++)
              for (let j = 0; j < w.rows; j++)
                for (let q = 0; q < cols; q++)
                  bo[i * w.rows + j] += Math.abs(x[i * cols + q]! * W[j * cols + q]!);
            const tag = `${kernel} type ${type} m=${m}`;
            closeTo(got, want, bo, tag, int8Bound(x, W, m, w.rows, cols, type));
            // Outside withInt8Decoding the same call is the float path.
            const plain = new Float32Array(m * w.rows);
            backend.qmatmul!(x, w, plain, m, false);
            closeTo(plain, want, bo, `${tag} (float path)`);
            // Each output is one thread's sum: the same for 1 and 2 threads.
            tools.setThreads(1);
            const one = new Float32Array(m * w.rows);
            withInt8Decoding(() => backend.qmatmul!(x, w, one, m, false));
            tools.setThreads(info.threads);
            assert.deepEqual(one, got, `${tag}: 1 vs ${info.threads} threads`);
            // Random x is not on the int8 grid: the int8 path's results are not the float ones.
            let differ = 0;
            for (let i = 0; i < got.length; i++)
              if (Math.abs(got[i]! - want[i]!) > 1e-5 * bo[i]!) differ++;
            assert.ok(
              differ > got.length / 4,
              `${tag}: only ${differ} of ${got.length} outputs off the float path`,
            );
            // Row by row: each row's result is the one it gets alone (batch-independent decoding).
            for (const i of [0, m - 1]) {
              const alone = new Float32Array(w.rows);
              withInt8Decoding(() =>
                backend.qmatmul!(x.subarray(i * cols, (i + 1) * cols), w, alone, 1, false),
              );
              assert.deepEqual(
                alone,
                got.subarray(i * w.rows, (i + 1) * w.rows),
                `${tag}: row ${i} alone`,
              );
            }
          }
          // A non-finite x block makes its outputs non-finite, as on the float path.
          const x = rand(rng, cols);
          x[5] = Infinity;
          const got = new Float32Array(w.rows);
          withInt8Decoding(() => backend.qmatmul!(x, w, got, 1, false));
          assert.ok(
            got.every((v) => !Number.isFinite(v)),
            `${kernel} type ${type}: inf in x`,
          );
        }
      }
    } finally {
      tools.setKernel(info.kernel);
      tools.setThreads(info.threads);
    }
  },
);

test('quantised results do not depend on the thread count', { skip }, () => {
  const { backend, tools } = native();
  const info = tools.info();
  const rng = new Rng(7);
  // 300 × 1024 Q4_K (173 KB) and 200 × 640 Q5_0 (88 KB): over the threshold that splits the work.
  const ws = [randomWeight(rng, 12, 300, 1024), randomWeight(rng, 6, 200, 640)];
  try {
    for (const kernel of info.kernels) {
      tools.setKernel(kernel);
      for (const w of ws) {
        for (const m of [1, 4, 8, 40]) {
          const x = rand(rng, m * w.cols);
          const g = rand(rng, m * w.rows);
          const outs: Float32Array[][] = [];
          for (const threads of [1, 2, 3]) {
            tools.setThreads(threads);
            const o = new Float32Array(m * w.rows);
            backend.qmatmul!(x, w, o, m, false);
            const t = new Float32Array(m * w.cols);
            backend.qmatmulT!(g, w, t, m, false);
            outs.push([o, t]);
          }
          for (let i = 1; i < outs.length; i++) {
            assert.deepEqual(outs[i]![0], outs[0]![0], `qmatmul ${kernel} m=${m} type ${w.type}`);
            assert.deepEqual(outs[i]![1], outs[0]![1], `qmatmulT ${kernel} m=${m} type ${w.type}`);
          }
        }
      }
    }
  } finally {
    tools.setKernel(info.kernel);
    tools.setThreads(info.threads);
  }
});

test(
  'bad quantised weights and ids throw ShapeErrors instead of reading out of bounds',
  { skip },
  () => {
    const { backend } = native();
    const rng = new Rng(3);
    const w = randomWeight(rng, 8, 4, 64); // 4 rows × 2 blocks × 34 bytes
    const x = new Float32Array(64);
    const out = new Float32Array(4);
    const short = { ...w, data: w.data.subarray(0, w.data.length - 1) };
    assert.throws(() => backend.qmatmul!(x, short, out, 1, false), ShapeError);
    assert.throws(() => backend.qmatmulT!(new Float32Array(4), short, x, 1, false), ShapeError);
    assert.throws(() => backend.qembedding!(short, Int32Array.of(0), x), ShapeError);
    assert.throws(() => backend.qmatmul!(x, { ...w, cols: 48 }, out, 1, false), /multiple/);
    assert.throws(() => backend.qmatmul!(x, { ...w, type: 9 }, out, 1, false), /type 9/);
    assert.throws(() => backend.qmatmul!(x, w, new Float32Array(3), 1, false), ShapeError);
    assert.throws(() => backend.qmatmul!(x, w, out, 2, false), ShapeError);
    assert.throws(
      () => backend.qembedding!(w, Int32Array.of(0, 4), new Float32Array(128)),
      /outside/,
    );
    assert.throws(() => backend.qembedding!(w, Int32Array.of(-1), x), /outside/);
    // Empty rows (0 columns of F16): the sums are 0.
    const empty: QuantWeight = { type: 1, rows: 3, cols: 0, data: new Uint8Array(0) };
    for (const m of [2, 20]) {
      const o = new Float32Array(m * 3).fill(5);
      backend.qmatmul!(new Float32Array(0), empty, o, m, false);
      assert.deepEqual(o, new Float32Array(m * 3));
    }
    // The good weight still works after all that.
    backend.qmatmul!(x, w, out, 1, false);
  },
);
