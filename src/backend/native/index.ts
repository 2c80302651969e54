// Loader and Backend binding of the native C++ addon (native/, built by scripts/build-native.mjs
// into build/Release/rl4qe_native.node).
//
// The addon works zero-copy on the Float32Arrays it is given and on its own 64-byte aligned
// buffers from alloc(); release() frees those at once and detaches them (length 0 afterwards, so
// a later use is a ShapeError, never a crash). Float64 buffers and any kernel the addon lacks go
// to the fallback backend (the reference one) given to createNativeBackend.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rl4qeError, ShapeError, UnsupportedError } from '../../util/errors.js';
import { referenceBackend } from '../reference/index.js';
import { int8DecodingAllowed } from '../int8-decoding.js';
import type {
  AdamWParams,
  AttentionParams,
  Backend,
  BinaryOp,
  Buf,
  DType,
  MatmulParams,
  QuantWeight,
  Bf16Weight,
  ReduceOp,
  RopeParams,
  UnaryOp,
} from '../backend.js';

export interface NativeLoadResult {
  /** The native backend, or null when the addon is missing or failed to load. */
  backend: Backend | null;
  /** Why native is (not) active, printed by `rl4qe doctor` and in the one-time warning. */
  reason: string;
  /** Detected CPU features (e.g. avx512f, avx2, fma) and the kernel set chosen. */
  features: string[];
  /** Set when RL4QE_KERNEL forces a kernel set this CPU cannot run: the backend is then null and
   * getBackend() throws this message instead of falling back. */
  refused?: string;
  kernel: string;
  threads: number;
  /** Benchmark and diagnostic hooks of the loaded addon (null or absent when it did not load). */
  tools?: NativeTools | null;
}

/** What the addon reports about itself. */
export interface NativeInfo {
  kernel: string;
  /** Register tile of the GEMM micro-kernel (rows × columns of C). */
  mr: number;
  nr: number;
  threads: number;
  /** How the kernel set was chosen when not simply the best: the better sets it fell back from
   * and the CPU features they lack, or that RL4QE_KERNEL / setKernel forced it. */
  note: string;
  /** Non-empty when RL4QE_KERNEL names a set this CPU cannot run (the loader then refuses the
   * addon with this message instead of running anything). Older builds lack it. */
  refused?: string;
  /** > 0: quantised products in decoding steps run on int8 dot products, int8MaxM rows of x
   * per pass over the weight (0: float products only). */
  int8MaxM?: number;
  /** The units the products use (for doctor and the benches). */
  units?: string;
  /** The bf16 GEMM's units, or why there is none ("none: the CPU lacks …"). */
  bf16?: string;
  bf16Available?: boolean;
  features: string[];
  /** Kernel sets this CPU can run, best first. */
  kernels: string[];
  /** The OpenBLAS library found at run time (for benchmarks only), or null. */
  openblas: string | null;
}

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

// The raw addon surface (positional arguments; validated again in C++).
interface Addon {
  /** zero = false leaves the contents unspecified (default true: zero-filled). */
  alloc(length: number, zero?: boolean): Float32Array;
  release(buf: Buf): boolean;
  isNative(buf: Buf): boolean;
  alignment(buf: Buf): number;
  liveBytes(): number;
  /** Free the pool of released blocks kept for reuse; returns the bytes freed. */
  trimPool?(): number;
  /** Set the pool's cap in MiB (0 = off); returns the previous cap. Older builds lack it. */
  setPoolCap?(mb: number): number;
  info(): NativeInfo;
  setThreads(n: number): number;
  setKernel(name: string): string;
  peak(seconds: number, threads: number): number;
  packBf16?(b: Float32Array, k: number, n: number, transB: boolean): Uint32Array;
  /** The packing of op(B)ᵀ (n × k) from packBf16(_, k, n, _)'s (the same bf16 values). */
  packBf16T?(packed: Uint32Array, k: number, n: number): Uint32Array;
  matmulBf16?(
    a: Float32Array,
    packed: Uint32Array,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    alpha: number,
    accumulate: boolean,
  ): void;
  peakBf16?(seconds: number, threads: number): number;
  openblasSgemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    threads: number,
  ): boolean;
  matmul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideOut: number,
    alpha: number,
    accumulate: boolean,
  ): void;
  copyStrided(
    src: Float32Array,
    srcOffset: number,
    srcStrides: readonly number[],
    dst: Float32Array,
    dstOffset: number,
    dstStrides: readonly number[],
    shape: readonly number[],
  ): void;
  fill(out: Float32Array, value: number): void;
  binary(
    op: number,
    a: Float32Array,
    aStrides: readonly number[],
    b: Float32Array,
    bStrides: readonly number[],
    out: Float32Array,
    outShape: readonly number[],
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  unaryBackward(
    op: number,
    x: Float32Array | null,
    y: Float32Array | null,
    gy: Float32Array,
    gx: Float32Array,
    accumulate: boolean,
  ): void;
  affine(x: Float32Array, s: number, t: number, out: Float32Array): void;
  argmax(x: Float32Array, outer: number, axis: number, inner: number, out: Int32Array): void;
  reduce(
    op: number,
    x: Float32Array,
    outer: number,
    axis: number,
    inner: number,
    out: Float32Array,
  ): void;
  softmax(x: Float32Array, rows: number, cols: number, out: Float32Array, log: boolean): void;
  softmaxBackward(
    y: Float32Array,
    gy: Float32Array,
    rows: number,
    cols: number,
    gx: Float32Array,
    log: boolean,
  ): void;
  logsumexp(x: Float32Array, rows: number, cols: number, out: Float32Array): void;
  rmsnorm(
    x: Float32Array,
    w: Float32Array,
    rows: number,
    cols: number,
    eps: number,
    out: Float32Array,
    rstd: Float32Array,
  ): void;
  rmsnormBackward(
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    gy: Float32Array,
    rows: number,
    cols: number,
    gx: Float32Array,
    gw: Float32Array | null,
  ): void;
  rope(
    x: Float32Array,
    out: Float32Array,
    batch: number,
    seq: number,
    heads: number,
    headDim: number,
    positions: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    inverse: boolean,
  ): void;
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    ...p: AttnTail
  ): void;
  attentionBackward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    gOut: Float32Array,
    gq: Float32Array,
    gk: Float32Array,
    gv: Float32Array,
    ...p: AttnTail
  ): void;
  embedding(table: Float32Array, ids: Int32Array, dim: number, out: Float32Array): void;
  embeddingBackward(gOut: Float32Array, ids: Int32Array, dim: number, gTable: Float32Array): void;
  adamw(
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  // Quantised frozen weights: w is passed as (data, type, rows, cols).
  qsupports?(type: number): boolean;
  qmatmul?(
    x: Float32Array,
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    out: Float32Array,
    m: number,
    accumulate: boolean,
    /** May run on int8 activations (the avx512vnni set; older builds ignore it). */
    int8?: boolean,
  ): void;
  qmatmulT?(
    g: Float32Array,
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    out: Float32Array,
    m: number,
    accumulate: boolean,
  ): void;
  qembedding?(
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    ids: Int32Array,
    out: Float32Array,
  ): void;
}

type AttnTail = [
  batch: number,
  seqQ: number,
  seqK: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  scale: number,
  causal: boolean,
  keyStart: Int32Array | null,
  kvStride: number | null,
  kvRowStride: number | null,
  kvHeadStride: number | null,
];

// Op codes: the enum order of native/ops.h.
const BINARY: Record<BinaryOp, number> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  eq: 6,
  gt: 7,
};
const UNARY: Record<UnaryOp, number> = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  rsqrt: 4,
  sigmoid: 5,
  silu: 6,
  tanh: 7,
  relu: 8,
  abs: 9,
  square: 10,
  recip: 11,
};
const REDUCE: Record<ReduceOp, number> = { sum: 0, max: 1 };

function isF32(b: Buf | null): b is Float32Array {
  return b instanceof Float32Array;
}

function attnTail(p: AttentionParams): AttnTail {
  return [
    p.batch,
    p.seqQ,
    p.seqK,
    p.heads,
    p.kvHeads,
    p.headDim,
    p.scale,
    p.causal,
    p.keyStart ?? null,
    p.kvStride ?? null,
    p.kvRowStride ?? null,
    p.kvHeadStride ?? null,
  ];
}

/** Native errors (RangeError/TypeError from argument checks) become ShapeErrors naming the op. */
function rethrow(op: string, e: unknown): never {
  if (e instanceof Rl4qeError) throw e;
  const msg = e instanceof Error ? e.message : String(e);
  throw new ShapeError(msg.replace(/^native\.\w+: /, ''), { where: `native.${op}`, cause: e });
}

/**
 * The Backend over a loaded addon. `fallback` runs float64 buffers (and would run any kernel the
 * addon lacked); without one such calls throw UnsupportedError.
 */
export function createNativeBackend(
  addon: unknown,
  fallback: Backend | null = null,
): Backend & Required<Pick<Backend, 'argmax' | 'liveBytes' | 'allocUninit'>> {
  const a = addon as Addon;
  const fb = (op: string, dtype: string): Backend => {
    if (fallback) return fallback;
    throw new UnsupportedError(`native backend has no ${dtype} ${op}`, {
      where: `native.${op}`,
      hint: 'float64 runs on the reference backend',
    });
  };
  // The fallback for a quantised kernel: float64 buffers, or an addon without the kernel.
  const fbq = (op: 'qmatmul' | 'qmatmulT' | 'qembedding', f32: boolean): Backend => {
    const b = fb(op, f32 ? 'f32' : 'f64');
    if (!b[op]) {
      throw new UnsupportedError(`native backend has no ${op} and its fallback has none either`, {
        where: `native.${op}`,
      });
    }
    return b;
  };
  // Whether the addon runs the bf16 GEMM on this CPU (AVX512-BF16; RL4QE_HIDE_FEATURES can hide it).
  const bf16Unit = !!a.packBf16 && !!a.matmulBf16 && a.info().bf16Available === true;
  const fbb = (op: 'bf16Pack' | 'bf16Matmul' | 'bf16MatmulT'): Backend => {
    const b = fb(op, 'bf16');
    if (!b[op]) {
      throw new UnsupportedError(`native backend has no ${op} and its fallback has none either`, {
        where: `native.${op}`,
      });
    }
    return b;
  };
  const backend: Backend & Required<Pick<Backend, 'argmax' | 'liveBytes' | 'allocUninit'>> = {
    name: 'native',
    supports: (dtype: DType) => dtype === 'f32',
    alloc(dtype, length) {
      if (dtype !== 'f32') return fb('alloc', dtype).alloc(dtype, length);
      try {
        return a.alloc(length);
      } catch (e) {
        return rethrow('alloc', e);
      }
    },
    allocUninit(dtype, length) {
      if (dtype !== 'f32') return fb('alloc', dtype).alloc(dtype, length);
      try {
        return a.alloc(length, false);
      } catch (e) {
        return rethrow('alloc', e);
      }
    },
    release(buf) {
      if (!isF32(buf)) {
        fallback?.release(buf);
        return;
      }
      a.release(buf);
    },
    copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape) {
      if (!isF32(src) || !isF32(dst))
        return fb('copyStrided', 'f64').copyStrided(
          src,
          srcOffset,
          srcStrides,
          dst,
          dstOffset,
          dstStrides,
          shape,
        );
      try {
        a.copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape);
      } catch (e) {
        rethrow('copyStrided', e);
      }
    },
    fill(out, value) {
      if (!isF32(out)) return fb('fill', 'f64').fill(out, value);
      a.fill(out, value);
    },
    matmul(x, y, out, p: MatmulParams) {
      if (!isF32(x) || !isF32(y) || !isF32(out)) return fb('matmul', 'f64').matmul(x, y, out, p);
      try {
        a.matmul(
          x,
          y,
          out,
          p.batch,
          p.m,
          p.k,
          p.n,
          p.transA,
          p.transB,
          p.strideA,
          p.strideB,
          p.strideOut,
          p.alpha ?? 1,
          p.accumulate ?? false,
        );
      } catch (e) {
        rethrow('matmul', e);
      }
    },
    binary(op, x, xStrides, y, yStrides, out, outShape) {
      if (!isF32(x) || !isF32(y) || !isF32(out))
        return fb('binary', 'f64').binary(op, x, xStrides, y, yStrides, out, outShape);
      try {
        a.binary(BINARY[op], x, xStrides, y, yStrides, out, outShape);
      } catch (e) {
        rethrow('binary', e);
      }
    },
    unary(op, x, out) {
      if (!isF32(x) || !isF32(out)) return fb('unary', 'f64').unary(op, x, out);
      try {
        a.unary(UNARY[op], x, out);
      } catch (e) {
        rethrow('unary', e);
      }
    },
    unaryBackward(op, x, y, gy, gx, accumulate) {
      if (!isF32(x) || !isF32(y) || !isF32(gy) || !isF32(gx))
        return fb('unaryBackward', 'f64').unaryBackward(op, x, y, gy, gx, accumulate);
      try {
        a.unaryBackward(UNARY[op], x, y, gy, gx, accumulate);
      } catch (e) {
        rethrow('unaryBackward', e);
      }
    },
    affine(x, s, t, out) {
      if (!isF32(x) || !isF32(out)) return fb('affine', 'f64').affine(x, s, t, out);
      try {
        a.affine(x, s, t, out);
      } catch (e) {
        rethrow('affine', e);
      }
    },
    reduce(op, x, outer, axis, inner, out) {
      if (!isF32(x) || !isF32(out))
        return fb('reduce', 'f64').reduce(op, x, outer, axis, inner, out);
      try {
        a.reduce(REDUCE[op], x, outer, axis, inner, out);
      } catch (e) {
        rethrow('reduce', e);
      }
    },
    argmax(x, outer, axis, inner, out) {
      if (!isF32(x)) return fb('argmax', 'f64').argmax!(x, outer, axis, inner, out);
      try {
        a.argmax(x, outer, axis, inner, out);
      } catch (e) {
        rethrow('argmax', e);
      }
    },
    liveBytes: () => a.liveBytes(),
    trimPool: () => a.trimPool?.() ?? 0,
    ...(a.setPoolCap
      ? { setPoolCapMb: (mb: number) => (a.setPoolCap as (m: number) => number)(mb) }
      : {}),
    softmax(x, rows, cols, out, log) {
      if (!isF32(x) || !isF32(out)) return fb('softmax', 'f64').softmax(x, rows, cols, out, log);
      try {
        a.softmax(x, rows, cols, out, log);
      } catch (e) {
        rethrow('softmax', e);
      }
    },
    softmaxBackward(y, gy, rows, cols, gx, log) {
      if (!isF32(y) || !isF32(gy) || !isF32(gx))
        return fb('softmaxBackward', 'f64').softmaxBackward(y, gy, rows, cols, gx, log);
      try {
        a.softmaxBackward(y, gy, rows, cols, gx, log);
      } catch (e) {
        rethrow('softmaxBackward', e);
      }
    },
    logsumexp(x, rows, cols, out) {
      if (!isF32(x) || !isF32(out)) return fb('logsumexp', 'f64').logsumexp(x, rows, cols, out);
      try {
        a.logsumexp(x, rows, cols, out);
      } catch (e) {
        rethrow('logsumexp', e);
      }
    },
    rmsnorm(x, w, rows, cols, eps, out, rstd) {
      if (!isF32(x) || !isF32(w) || !isF32(out) || !isF32(rstd))
        return fb('rmsnorm', 'f64').rmsnorm(x, w, rows, cols, eps, out, rstd);
      try {
        a.rmsnorm(x, w, rows, cols, eps, out, rstd);
      } catch (e) {
        rethrow('rmsnorm', e);
      }
    },
    rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw) {
      if (
        !isF32(x) ||
        !isF32(w) ||
        !isF32(rstd) ||
        !isF32(gy) ||
        !isF32(gx) ||
        (gw !== null && !isF32(gw))
      )
        return fb('rmsnormBackward', 'f64').rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw);
      try {
        a.rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw);
      } catch (e) {
        rethrow('rmsnormBackward', e);
      }
    },
    rope(x, out, p: RopeParams) {
      if (!isF32(x) || !isF32(out) || !isF32(p.cos) || !isF32(p.sin))
        return fb('rope', 'f64').rope(x, out, p);
      try {
        a.rope(x, out, p.batch, p.seq, p.heads, p.headDim, p.positions, p.cos, p.sin, p.inverse);
      } catch (e) {
        rethrow('rope', e);
      }
    },
    attention(q, k, v, out, lse, p: AttentionParams) {
      if (!isF32(q) || !isF32(k) || !isF32(v) || !isF32(out) || !isF32(lse))
        return fb('attention', 'f64').attention(q, k, v, out, lse, p);
      try {
        a.attention(q, k, v, out, lse, ...attnTail(p));
      } catch (e) {
        rethrow('attention', e);
      }
    },
    attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, p: AttentionParams) {
      const all = [q, k, v, out, lse, gOut, gq, gk, gv];
      if (!all.every(isF32))
        return fb('attentionBackward', 'f64').attentionBackward(
          q,
          k,
          v,
          out,
          lse,
          gOut,
          gq,
          gk,
          gv,
          p,
        );
      try {
        a.attentionBackward(
          q as Float32Array,
          k as Float32Array,
          v as Float32Array,
          out as Float32Array,
          lse as Float32Array,
          gOut as Float32Array,
          gq as Float32Array,
          gk as Float32Array,
          gv as Float32Array,
          ...attnTail(p),
        );
      } catch (e) {
        rethrow('attentionBackward', e);
      }
    },
    embedding(table, ids, dim, out) {
      if (!isF32(table) || !isF32(out))
        return fb('embedding', 'f64').embedding(table, ids, dim, out);
      try {
        a.embedding(table, ids, dim, out);
      } catch (e) {
        rethrow('embedding', e);
      }
    },
    embeddingBackward(gOut, ids, dim, gTable) {
      if (!isF32(gOut) || !isF32(gTable))
        return fb('embeddingBackward', 'f64').embeddingBackward(gOut, ids, dim, gTable);
      try {
        a.embeddingBackward(gOut, ids, dim, gTable);
      } catch (e) {
        rethrow('embeddingBackward', e);
      }
    },
    adamw(param, grad, m, v, p: AdamWParams) {
      if (!isF32(param) || !isF32(grad) || !isF32(m) || !isF32(v))
        return fb('adamw', 'f64').adamw(param, grad, m, v, p);
      try {
        a.adamw(param, grad, m, v, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.step);
      } catch (e) {
        rethrow('adamw', e);
      }
    },
    // Quantised frozen weights (native/quant_impl.h). An addon built before these kernels
    // existed lacks them: the fallback (reference) backend runs them then.
    qsupports(type) {
      if (a.qsupports) return a.qsupports(type);
      return fallback?.qsupports?.(type) ?? false;
    },
    qmatmul(x, w: QuantWeight, out, m, accumulate) {
      if (!isF32(x) || !isF32(out) || !a.qmatmul) {
        return fbq('qmatmul', isF32(x) && isF32(out)).qmatmul!(x, w, out, m, accumulate);
      }
      try {
        a.qmatmul(x, w.data, w.type, w.rows, w.cols, out, m, accumulate, int8DecodingAllowed());
      } catch (e) {
        rethrow('qmatmul', e);
      }
    },
    qmatmulT(g, w: QuantWeight, out, m, accumulate) {
      if (!isF32(g) || !isF32(out) || !a.qmatmulT) {
        return fbq('qmatmulT', isF32(g) && isF32(out)).qmatmulT!(g, w, out, m, accumulate);
      }
      try {
        a.qmatmulT(g, w.data, w.type, w.rows, w.cols, out, m, accumulate);
      } catch (e) {
        rethrow('qmatmulT', e);
      }
    },
    // bf16 frozen weights (native/gemm_bf16.cc): W [rows, cols] is packed as op(B) = Wᵀ
    // (k = cols, n = rows) for x·Wᵀ; the input gradient g·W needs op(B) = W, whose vdpbf16ps
    // pairs run along W's rows, so it gets its own packing, transposed from the first (the same
    // bf16 values) when a backward first asks for it. Without the unit (or for float64, or a
    // weight in the reference layout) the reference kernels run.
    bf16Fast: () => bf16Unit,
    bf16Pack(w, rows, cols) {
      if (!bf16Unit || !a.packBf16) return fbb('bf16Pack').bf16Pack!(w, rows, cols);
      try {
        return { rows, cols, layout: 'native-panels', data: a.packBf16(w, cols, rows, true) };
      } catch (e) {
        return rethrow('bf16Pack', e);
      }
    },
    bf16Matmul(x, w: Bf16Weight, out, m, accumulate) {
      if (!bf16Unit || !a.matmulBf16 || !isF32(x) || !isF32(out) || w.layout !== 'native-panels')
        return fbb('bf16Matmul').bf16Matmul!(x, w, out, m, accumulate);
      try {
        a.matmulBf16(x, w.data, out, m, w.cols, w.rows, false, 1, accumulate);
      } catch (e) {
        rethrow('bf16Matmul', e);
      }
    },
    bf16MatmulT(g, w: Bf16Weight, out, m, accumulate) {
      if (
        !bf16Unit ||
        !a.matmulBf16 ||
        !a.packBf16T ||
        !isF32(g) ||
        !isF32(out) ||
        w.layout !== 'native-panels'
      )
        return fbb('bf16MatmulT').bf16MatmulT!(g, w, out, m, accumulate);
      try {
        w.dataT ??= a.packBf16T(w.data, w.cols, w.rows);
        a.matmulBf16(g, w.dataT, out, m, w.rows, w.cols, false, 1, accumulate);
      } catch (e) {
        rethrow('bf16MatmulT', e);
      }
    },
    qembedding(w: QuantWeight, ids, out) {
      if (!isF32(out) || !a.qembedding)
        return fbq('qembedding', isF32(out)).qembedding!(w, ids, out);
      try {
        a.qembedding(w.data, w.type, w.rows, w.cols, ids, out);
      } catch (e) {
        rethrow('qembedding', e);
      }
    },
  };
  return backend;
}

function toolsOf(a: Addon): NativeTools {
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
    setKernel: (name) => {
      try {
        return a.setKernel(name);
      } catch (e) {
        return rethrow('setKernel', e);
      }
    },
    liveBytes: () => a.liveBytes(),
    isNative: (buf) => a.isNative(buf),
    alignment: (buf) => a.alignment(buf),
    bf16: bf16Of(a),
  };
}

function bf16Of(a: Addon): NativeTools['bf16'] {
  const { packBf16, matmulBf16, peakBf16 } = a;
  if (!packBf16 || !matmulBf16 || !peakBf16 || !a.info().bf16Available) return null;
  return {
    pack: (b, k, n, transB) => {
      try {
        return packBf16(b, k, n, transB);
      } catch (e) {
        return rethrow('packBf16', e);
      }
    },
    matmul: (p) => {
      try {
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
        );
      } catch (e) {
        rethrow('matmulBf16', e);
      }
    },
    peakGflops: (seconds = 0.3, threads?: number) => peakBf16(seconds, threads ?? a.info().threads),
  };
}

/** The folder holding package.json: build/Release/ lives there, whether we run from src or dist. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp')))
      return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** Where the addon is looked for: $RL4QE_NATIVE_PATH, else build/Release/rl4qe_native.node. */
export function nativeAddonPath(): string {
  const env = process.env.RL4QE_NATIVE_PATH;
  if (env && env.length > 0) return path.resolve(env);
  return path.join(packageRoot(), 'build', 'Release', 'rl4qe_native.node');
}

function buildNote(): string {
  try {
    const file = path.join(packageRoot(), 'build', 'rl4qe-native-build.json');
    const j = JSON.parse(readFileSync(file, 'utf8')) as { ok?: boolean; reason?: string };
    return j.ok === false && j.reason ? ` (the install-time build said: ${j.reason})` : '';
  } catch {
    return '';
  }
}

/** CPU features from /proc/cpuinfo (Linux), named as the addon names them; for `doctor` when the addon is missing. */
export function cpuFeaturesFromOs(): string[] {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    if (!line) return [];
    const flags = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    const names: [string, string][] = [
      ['sse4_2', 'sse4.2'],
      ['avx', 'avx'],
      ['avx2', 'avx2'],
      ['fma', 'fma'],
      ['avx512f', 'avx512f'],
      ['avx512dq', 'avx512dq'],
      ['avx512bw', 'avx512bw'],
      ['avx512vl', 'avx512vl'],
      ['avx512_vnni', 'avx512vnni'],
      ['avx512_bf16', 'avx512bf16'],
    ];
    return names.filter(([os]) => flags.has(os)).map(([, name]) => name);
  } catch {
    return [];
  }
}

/**
 * Loads the addon at `file` (uncached; loadNative() caches the default one). Never throws: a
 * missing or broken addon gives backend null and the reason.
 */
export function loadNativeFrom(file: string, fallback: Backend | null = null): NativeLoadResult {
  const none = (reason: string): NativeLoadResult => ({
    backend: null,
    reason,
    features: cpuFeaturesFromOs(),
    kernel: 'none',
    threads: 1,
    tools: null,
  });
  if (process.env.RL4QE_NATIVE === '0') return none('disabled by RL4QE_NATIVE=0');
  if (!existsSync(file)) {
    return none(
      `the native addon is not built (${file} is missing)${buildNote()}; ` +
        'run `node scripts/build-native.mjs` to build it and see why it failed',
    );
  }
  // OpenMP threads that finish early spin before sleeping (GOMP's default: ~300k spins). On a
  // machine shared with other busy processes that spinning steals the core from the thread it
  // waits for, and short GEMMs ran 2-3× slower than OpenBLAS (whose workers yield); a short spin
  // keeps the hand-off fast on an idle machine. Set before libgomp loads; a user's own setting wins.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = '2000';
  }
  let addon: Addon;
  try {
    const require = createRequire(import.meta.url);
    addon = require(file) as Addon;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return none(
      `the native addon at ${file} failed to load: ${msg}; rebuild it with \`node scripts/build-native.mjs\``,
    );
  }
  if (typeof addon.info !== 'function' || typeof addon.matmul !== 'function') {
    return none(`${file} is not the rl4qe native addon`);
  }
  const info = addon.info();
  if (info.refused) {
    return {
      ...none(`${info.refused}; unset RL4QE_KERNEL or name one of those`),
      refused: info.refused,
    };
  }
  const why =
    `loaded ${file}: ${info.kernel} kernels (${info.mr}×${info.nr} GEMM tile), ` +
    `${info.threads} OpenMP threads` +
    (info.units ? `, ${info.units}` : '') +
    (info.note ? `; ${info.note}` : '');
  return {
    backend: createNativeBackend(addon, fallback),
    reason: why,
    features: info.features,
    kernel: info.kernel,
    threads: info.threads,
    tools: toolsOf(addon),
  };
}

let cached: NativeLoadResult | null = null;

/** Loads the native addon once per process (see nativeAddonPath for where it is looked for). */
export function loadNative(): NativeLoadResult {
  cached ??= loadNativeFrom(nativeAddonPath(), referenceBackend);
  return cached;
}
