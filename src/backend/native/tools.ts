// The addon's extras beyond the Backend interface: the FMA and bf16 peaks, OpenBLAS for the
// benchmarks' ratios, the bf16 GEMM, thread and kernel-set control, buffer introspection.
import type { Buf } from '../backend.js';
import { guard, type Addon, type NativeInfo } from './addon.js';

/** Extras beyond the Backend interface: benchmarks, tests, doctor. */
export interface NativeTools {
  info(): NativeInfo;
  /** Measured fp32 FMA peak in GFLOP/s (a register-only FMA loop over `threads` threads). */
  peakGflops(seconds?: number, threads?: number): number;
  /** C = op(A)·op(B) with OpenBLAS cblas_sgemm when it is installed; false when it is not. */
  openblasSgemm(p: {
    a: Float32Array;
    b: Float32Array;
    c: Float32Array;
    m: number;
    k: number;
    n: number;
    transA: boolean;
    transB: boolean;
    threads?: number;
  }): boolean;
  /** Use `threads` OpenMP threads from now on (default: RL4QE_THREADS, else all cores). */
  setThreads(threads: number): number;
  /** Force a kernel set ('avx512' | 'avx2' | 'generic'); throws when the CPU cannot run it. */
  setKernel(name: string): string;
  /** Bytes of native memory from alloc() not yet released or collected. */
  liveBytes(): number;
  /**
   * bf16 GEMM (AVX512-BF16; null on a CPU or build without it): op(B) (k × n) rounded to bf16
   * and packed once (cache it: a frozen weight), then out [m, n] = alpha · op(A) · B (+ out) with
   * A rounded to bf16 per call and fp32 sums; peak: the measured vdpbf16ps GFLOP/s.
   */
  bf16: {
    pack(b: Float32Array, k: number, n: number, transB: boolean): Uint32Array;
    matmul(p: {
      a: Float32Array;
      packed: Uint32Array;
      out: Float32Array;
      m: number;
      k: number;
      n: number;
      transA: boolean;
      alpha?: number;
      accumulate?: boolean;
    }): void;
    peakGflops(seconds?: number, threads?: number): number;
  } | null;
  /** True when buf is a live buffer from the addon's alloc(). */
  isNative(buf: Buf): boolean;
  /** Address of buf's first element modulo 64 (0 for the addon's own buffers). */
  alignment(buf: Buf): number;
}

export function toolsOf(a: Addon): NativeTools {
  return {
    info: () => a.info(),
    peakGflops: (seconds = 0.3, threads?: number) => a.peak(seconds, threads ?? a.info().threads),
    openblasSgemm: (p) =>
      a.openblasSgemm(
        p.a,
        p.b,
        p.c,
        p.m,
        p.k,
        p.n,
        p.transA,
        p.transB,
        p.threads ?? a.info().threads,
      ),
    setThreads: (n) => a.setThreads(n),
    setKernel: (name) => guard('setKernel', () => a.setKernel(name)),
    liveBytes: () => a.liveBytes(),
    isNative: (buf) => a.isNative(buf),
    alignment: (buf) => a.alignment(buf),
    bf16: bf16Of(a),
  };
}

/** The bf16 GEMM, or null where the build (not x86-64) or the CPU (no AVX512-BF16) lacks it. */
function bf16Of(a: Addon): NativeTools['bf16'] {
  const { packBf16, matmulBf16, peakBf16 } = a;
  if (!packBf16 || !matmulBf16 || !peakBf16 || !a.info().bf16Available) return null;
  return {
    pack: (b, k, n, transB) => guard('packBf16', () => packBf16(b, k, n, transB)),
    matmul: (p) =>
      guard('matmulBf16', () =>
        matmulBf16(
          p.a,
          p.packed,
          p.out,
          p.m,
          p.k,
          p.n,
          p.transA,
          p.alpha ?? 1,
          p.accumulate ?? false,
        ),
      ),
    peakGflops: (seconds = 0.3, threads?: number) => peakBf16(seconds, threads ?? a.info().threads),
  };
}
