// rl4qe bench gemm: fp32 GEMM throughput of the native backend (all cores) against the machine's
// measured FMA peak and, when it is installed, OpenBLAS cblas_sgemm on the same inputs, all in
// one run. Every number is the median of several timed samples after a warm-up; a sample repeats
// the product until it lasts ≥ 25 ms so that small cases are not timer noise. The peak is
// re-measured beside every case and each case's ratio uses its own peak samples.
//
// Where the CPU has AVX512-BF16, every shape also gets a bf16 case (`MxKxN NT bf16`: inputs
// rounded to bf16, fp32 sums; B, the frozen weight, packed to bf16 once outside the timing, A
// converted in every call): ratio `fp32` against our fp32 NT GEMM of the same shape sampled in
// turn with it, ratio `peak` against the measured vdpbf16ps peak. Its max |diff| against the fp32
// result is recorded (bf16 rounding: about 2⁻⁸ relative per input).
import { loadNative } from '../../backend/native/index.js';
import type { Backend } from '../../backend/backend.js';
import { referenceBackend } from '../../backend/reference/index.js';
import { machineInfo, median, type BenchCase } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import type { BenchFn } from './index.js';

type Layout = 'NN' | 'TN' | 'NT';
const LAYOUTS: Layout[] = ['NN', 'TN', 'NT'];
/** (M, K, N): the projections of a 135M-parameter Llama block at 512 tokens, and a square one. */
const SHAPES: [number, number, number][] = [
  [512, 576, 1536],
  [512, 1536, 576],
  [512, 576, 576],
  [2048, 2048, 2048],
];
const QUICK_SHAPES: [number, number, number][] = [
  [96, 128, 160],
  [130, 67, 95],
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Calls per timed sample so that one sample lasts at least minSeconds (after one warm-up call). */
function calibrate(fn: () => void, minSeconds: number): number {
  fn();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const t = (performance.now() - t0) / 1000;
    if (t >= minSeconds || reps >= 1 << 16) return reps;
    reps = Math.max(reps * 2, Math.ceil((reps * minSeconds) / Math.max(t, 1e-6)));
  }
}

/** Seconds per call of one sample of `reps` calls. */
function sample(fn: () => void, reps: number): number {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / 1000 / reps;
}

function randomBuf(backend: Backend, n: number, rng: Rng): Float32Array {
  const b = backend.alloc('f32', n) as Float32Array;
  for (let i = 0; i < n; i++) b[i] = rng.uniform(-1, 1);
  return b;
}

export const gemmBench: { description: string; run: BenchFn } = {
  description:
    'fp32 GEMM GFLOP/s (NN, TN, NT) vs the measured FMA peak and OpenBLAS; bf16 NT vs fp32 and the bf16 peak',
  async run(opts) {
    const native = loadNative();
    if (!native.backend || !native.tools) {
      throw new NotFoundError('the gemm benchmark needs the native backend', {
        where: 'bench gemm',
        found: native.reason,
        hint: 'build it with `node scripts/build-native.mjs`',
      });
    }
    const backend = native.backend;
    const tools = native.tools;
    const info = tools.info();
    const samples = opts.quick ? 3 : 7;
    const minSeconds = opts.quick ? 0.01 : 0.025;
    const rng = new Rng(1234);
    opts.log(
      `gemm: ${info.kernel} kernels (${info.mr}×${info.nr}), ${info.threads} threads, ` +
        `OpenBLAS: ${info.openblas ?? 'not installed (no openblas ratio)'}`,
    );
    const pause = opts.quick ? 5 : 40;
    const allPeaks: number[] = [];
    opts.log(
      tools.bf16
        ? `gemm: bf16 cases on ${info.bf16}`
        : `gemm: no bf16 cases: ${info.bf16 ?? 'this build has no bf16 GEMM'}`,
    );
    const bf16Peaks: number[] = [];
    /** One shape's bf16 case (NT: C = A·Bᵀ, B [n, k] the weight), sampled in turn with fp32 NT. */
    const bf16Case = async (m: number, k: number, n: number): Promise<BenchCase> => {
      const bf = tools.bf16!;
      const a = randomBuf(backend, m * k, rng);
      const b = randomBuf(backend, k * n, rng);
      const c = backend.alloc('f32', m * n) as Float32Array;
      const c2 = backend.alloc('f32', m * n) as Float32Array;
      const packed = bf.pack(b, k, n, true);
      const fp32 = (): void =>
        backend.matmul(a, b, c, {
          batch: 1,
          m,
          k,
          n,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideOut: 0,
        });
      const half = (): void => bf.matmul({ a, packed, out: c2, m, k, n, transA: false });
      const rf = calibrate(fp32, minSeconds);
      await sleep(pause);
      const rh = calibrate(half, minSeconds);
      const tf: number[] = [];
      const th: number[] = [];
      const pk: number[] = [];
      for (let s = 0; s < samples; s++) {
        await sleep(pause);
        tf.push(sample(fp32, rf));
        await sleep(pause);
        th.push(sample(half, rh));
        await sleep(pause);
        pk.push(bf.peakGflops(minSeconds));
      }
      bf16Peaks.push(...pk);
      const flops = 2 * m * n * k;
      const g16 = flops / median(th) / 1e9;
      const g32 = flops / median(tf) / 1e9;
      const peak = median(pk);
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < c.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(c[i]! - c2[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(c[i]!));
      }
      const id = `${m}x${k}x${n} NT bf16`;
      opts.log(
        `gemm ${id.padEnd(20)} ${g16.toFixed(1).padStart(7)} GFLOP/s  fp32 ${(g16 / g32).toFixed(2)}  ` +
          `peak ${(g16 / peak).toFixed(2)} (bf16 peak ${peak.toFixed(0)})`,
      );
      for (const buf of [a, b, c, c2]) backend.release(buf);
      return {
        case: id,
        value: g16,
        unit: 'GFLOP/s',
        ratios: { fp32: g16 / g32, peak: g16 / peak },
        extra: {
          m,
          k,
          n,
          layout: 'NT',
          fp32Gflops: g32,
          bf16PeakGflops: peak,
          maxAbsDiffVsFp32: maxDiff,
          maxAbsFp32: maxAbs,
        },
      };
    };

    const cases: BenchCase[] = [];
    for (const [m, k, n] of opts.quick ? QUICK_SHAPES : SHAPES) {
      for (const layout of LAYOUTS) {
        const transA = layout === 'TN';
        const transB = layout === 'NT';
        const a = randomBuf(backend, m * k, rng);
        const b = randomBuf(backend, k * n, rng);
        const c = backend.alloc('f32', m * n) as Float32Array;
        const flops = 2 * m * n * k;
        const ours = (): void =>
          backend.matmul(a, b, c, {
            batch: 1,
            m,
            k,
            n,
            transA,
            transB,
            strideA: 0,
            strideB: 0,
            strideOut: 0,
          });
        // Ours, OpenBLAS and the FMA peak are sampled in turn, so that load from other processes
        // hits all three alike; the pauses let each side's spinning threads go idle.
        const blas = info.openblas
          ? (): void => {
              tools.openblasSgemm({ a, b, c, m, k, n, transA, transB, threads: info.threads });
            }
          : null;
        const repsOurs = calibrate(ours, minSeconds);
        const mine = Float32Array.from(c);
        await sleep(pause);
        const repsBlas = blas ? calibrate(blas, minSeconds) : 0;
        const tOurs: number[] = [];
        const tBlas: number[] = [];
        const peaks: number[] = [];
        for (let s = 0; s < samples; s++) {
          await sleep(pause);
          tOurs.push(sample(ours, repsOurs));
          if (blas) {
            await sleep(pause);
            tBlas.push(sample(blas, repsBlas));
          }
          await sleep(pause);
          peaks.push(tools.peakGflops(minSeconds));
        }
        const t = median(tOurs);
        const gflops = flops / t / 1e9;
        const peak = median(peaks);
        allPeaks.push(...peaks);
        const ratios: Record<string, number> = { peak: gflops / peak };
        const extra: Record<string, unknown> = { m, k, n, layout, seconds: t, peakGflops: peak };
        if (blas) {
          const blasGflops = flops / median(tBlas) / 1e9;
          ratios.openblas = gflops / blasGflops;
          let maxDiff = 0;
          for (let i = 0; i < c.length; i++) maxDiff = Math.max(maxDiff, Math.abs(c[i] - mine[i]));
          extra.openblasGflops = blasGflops;
          extra.maxAbsDiffVsOpenblas = maxDiff;
        }
        const id = `${m}x${k}x${n} ${layout}`;
        opts.log(
          `gemm ${id.padEnd(20)} ${gflops.toFixed(1).padStart(7)} GFLOP/s  ` +
            Object.entries(ratios)
              .map(([key, v]) => `${key} ${v.toFixed(2)}`)
              .join('  '),
        );
        cases.push({ case: id, value: gflops, unit: 'GFLOP/s', ratios, extra });
        for (const buf of [a, b, c]) backend.release(buf);
      }
      if (tools.bf16) cases.push(await bf16Case(m, k, n));
    }
    // Against our own reference backend (plain TypeScript loops) on a smaller product.
    {
      const [m, k, n] = opts.quick ? [48, 64, 40] : [256, 256, 256];
      const a = randomBuf(backend, m * k, rng);
      const b = randomBuf(backend, k * n, rng);
      const c = backend.alloc('f32', m * n) as Float32Array;
      const p = {
        batch: 1,
        m,
        k,
        n,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: 0,
        strideOut: 0,
      };
      const ours = (): void => backend.matmul(a, b, c, p);
      const theirs = (): void => referenceBackend.matmul(a, b, c, p);
      const ro = calibrate(ours, minSeconds);
      const rr = calibrate(theirs, minSeconds);
      const to: number[] = [];
      const tr: number[] = [];
      for (let s = 0; s < Math.min(samples, 5); s++) {
        to.push(sample(ours, ro));
        tr.push(sample(theirs, rr));
      }
      const flops = 2 * m * n * k;
      const gflops = flops / median(to) / 1e9;
      const refGflops = flops / median(tr) / 1e9;
      const id = `${m}x${k}x${n} NN vs reference`;
      opts.log(`gemm ${id}: ${gflops.toFixed(1)} vs ${refGflops.toFixed(2)} GFLOP/s`);
      cases.push({
        case: id,
        value: gflops,
        unit: 'GFLOP/s',
        ratios: { reference: gflops / refGflops },
        extra: { m, k, n, layout: 'NN', referenceGflops: refGflops },
      });
      for (const buf of [a, b, c]) backend.release(buf);
    }
    const peak = median(allPeaks);
    const spread = [Math.min(...allPeaks), Math.max(...allPeaks)];
    opts.log(
      `gemm: measured fp32 FMA peak ${peak.toFixed(1)} GFLOP/s (median; samples ranged ` +
        `${spread[0].toFixed(0)}–${spread[1].toFixed(0)}: a wide range means a loaded machine)`,
    );
    return {
      bench: 'gemm',
      machine: machineInfo({
        kernel: info.kernel,
        tile: `${info.mr}x${info.nr}`,
        threads: info.threads,
        features: info.features,
        openblas: info.openblas,
        gompSpincount: process.env.GOMP_SPINCOUNT ?? null,
        ompWaitPolicy: process.env.OMP_WAIT_POLICY ?? null,
        peakGflops: peak,
        peakGflopsRange: spread,
        units: info.units,
        kernelNote: info.note || undefined,
        bf16: info.bf16,
        bf16PeakGflops: bf16Peaks.length ? median(bf16Peaks) : undefined,
      }),
      cases,
    };
  },
};
