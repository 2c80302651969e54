// rl4qe bench qmatmul: the native quantised-weight product (qmatmul: x · dequant(W)ᵀ on weights
// kept in their ggml block format) against the float32 matmul (NT, the same small-M path a
// linear layer takes) on the dequantised weight of the same shape, at m = 1 (one decoding step)
// and m = 8. Both read their weights from several copies cycled through (> 128 MB each side), so
// the weights stream from memory as in a real decoding step, not from the cache. Rounds of the
// two alternate, so both see the same load from other processes; each number is the median over
// rounds. Reported: GB/s of weight bytes read, and the ratio f32 time / quantised time (> 1 means
// the quantised product is faster). Where the active kernel set runs qmatmul on int8 dot products
// (avx512vnni), the same qmatmul on the float path (the next set without them, e.g. avx512) is
// timed in the same rounds: ratio key `float-path` (> 1: the int8 path is faster).
import { loadNative } from '../../backend/native/index.js';
import type { QuantWeight } from '../../backend/backend.js';
import { QUANT_BLOCKS, decodeBlocks } from '../../backend/quant.js';
import { machineInfo, median, type BenchCase } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import { f32ToF16Bits } from '../../util/half.js';
import { Rng } from '../../util/rng.js';
import type { BenchFn } from './index.js';

const NAMES: Record<number, string> = { 3: 'Q4_1', 6: 'Q5_0', 8: 'Q8_0', 12: 'Q4_K', 14: 'Q6_K' };
// Byte offsets of the f16 scales in a block (set to a finite value; the rest is random).
const SCALES: Record<number, number[]> = { 3: [0, 2], 6: [0], 8: [0], 12: [0, 2], 14: [208] };
/** (type, rows, cols): Qwen2-0.5B's MLP down projection, SmolLM2-135M's, its embedding. */
const CASES: [number, number, number][] = [
  [6, 896, 4864],
  [3, 576, 1536],
  [8, 49152, 576],
  [12, 896, 4864],
  [14, 896, 4864],
];
const QUICK_CASES: [number, number, number][] = [[3, 64, 256]];

function randomWeight(rng: Rng, type: number, rows: number, cols: number): QuantWeight {
  const { blockSize, typeSize } = QUANT_BLOCKS.get(type)!;
  const len = rows * (cols / blockSize) * typeSize;
  const data = new Uint8Array(len);
  for (let i = 0; i < len; i++) data[i] = rng.int(256);
  const h = f32ToF16Bits(0.01);
  for (let p = 0; p < len; p += typeSize) {
    for (const o of SCALES[type]!) {
      data[p + o] = h & 0xff;
      data[p + o + 1] = h >> 8;
    }
  }
  return { type, rows, cols, data };
}

/** Seconds per call, median over `rounds` samples of one pass over all copies. */
function pass(fn: (c: number) => void, copies: number): number {
  const t0 = performance.now();
  for (let c = 0; c < copies; c++) fn(c);
  return (performance.now() - t0) / 1000 / copies;
}

export const benchQmatmul: { description: string; run: BenchFn } = {
  description:
    'quantised qmatmul (Q4_1, Q5_0, Q8_0, Q4_K, Q6_K) GB/s vs float32 matmul, m = 1 and 8',
  async run(opts) {
    const native = loadNative();
    if (!native.backend || !native.tools) {
      throw new NotFoundError(`the native addon is not loaded: ${native.reason}`, {
        where: 'bench qmatmul',
        hint: 'build it with `node scripts/build-native.mjs`',
      });
    }
    const backend = native.backend;
    const tools = native.tools;
    const info = tools.info();
    // The float path to compare the int8-dot one with: the best set without int8 dot products.
    const floatSet =
      (info.int8MaxM ?? 0) > 0
        ? info.kernels.find((k) => {
            tools.setKernel(k);
            const none = (tools.info().int8MaxM ?? 0) === 0;
            return none;
          })
        : undefined;
    tools.setKernel(info.kernel);
    opts.log(
      `qmatmul: ${info.kernel} kernels: ${info.units ?? ''}` +
        (floatSet ? `; float path timed on ${floatSet}` : '') +
        (info.note ? ` (${info.note})` : ''),
    );
    const rng = new Rng(1);
    const cases: BenchCase[] = [];
    const budget = opts.quick ? 4e6 : 128e6;
    const rounds = opts.quick ? 3 : 15;
    for (const [type, rows, cols] of opts.quick ? QUICK_CASES : CASES) {
      const w0 = randomWeight(rng, type, rows, cols);
      const bytes = w0.data.length;
      const qs = [w0];
      for (let i = 1; i < Math.min(64, Math.ceil(budget / bytes)); i++) {
        qs.push({ ...w0, data: Uint8Array.from(w0.data) });
      }
      const f0 = new Float32Array(rows * cols);
      decodeBlocks(type, w0.data, rows * cols, f0, 0);
      const fs = [f0];
      for (let i = 1; i < Math.min(64, Math.ceil(budget / (4 * rows * cols))); i++) {
        fs.push(Float32Array.from(f0));
      }
      for (const m of [1, 8]) {
        const x = new Float32Array(m * cols);
        for (let i = 0; i < x.length; i++) x[i] = rng.uniform(-1, 1);
        const out = new Float32Array(m * rows);
        const p = {
          batch: 1,
          m,
          k: cols,
          n: rows,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideOut: 0,
        };
        const q = (c: number): void => backend.qmatmul!(x, qs[c]!, out, m, false);
        const f = (c: number): void => backend.matmul(x, fs[c]!, out, p);
        const onFloatPath = (c: number): void => {
          tools.setKernel(floatSet!);
          try {
            backend.qmatmul!(x, qs[c]!, out, m, false);
          } finally {
            tools.setKernel(info.kernel);
          }
        };
        pass(q, qs.length);
        pass(f, fs.length);
        if (floatSet) pass(onFloatPath, qs.length);
        const tq: number[] = [];
        const tf: number[] = [];
        const tp: number[] = [];
        for (let r = 0; r < rounds; r++) {
          tq.push(pass(q, qs.length));
          tf.push(pass(f, fs.length));
          if (floatSet) tp.push(pass(onFloatPath, qs.length));
        }
        const sq = median(tq);
        const sf = median(tf);
        const sp = floatSet ? median(tp) : undefined;
        const name = `${NAMES[type] ?? type} ${rows}×${cols} m=${m}`;
        opts.log(
          `${name}: quantised ${(sq * 1e3).toFixed(3)} ms (${(bytes / sq / 1e9).toFixed(1)} GB/s), ` +
            `f32 ${(sf * 1e3).toFixed(3)} ms (${((4 * rows * cols) / sf / 1e9).toFixed(1)} GB/s), ` +
            `f32/quantised ${(sf / sq).toFixed(2)}×` +
            (sp !== undefined ? `, float path/int8 ${(sp / sq).toFixed(2)}×` : ''),
        );
        const ratios: Record<string, number> = { f32: sf / sq };
        if (sp !== undefined) ratios['float-path'] = sp / sq;
        cases.push({
          case: name,
          value: bytes / sq / 1e9,
          unit: 'GB/s of weights',
          ratios,
          extra: {
            quantisedMs: sq * 1e3,
            f32Ms: sf * 1e3,
            weightBytes: bytes,
            ...(sp !== undefined ? { floatPathMs: sp * 1e3, floatPathKernel: floatSet } : {}),
          },
        });
      }
    }
    return {
      bench: 'qmatmul',
      machine: machineInfo({
        kernel: native.kernel,
        units: info.units,
        kernelNote: info.note || undefined,
        threads: native.threads,
      }),
      cases,
    };
  },
};
