// The native addon's raw surface (native/addon.cc): what it exports, with the op codes of
// native/ops.h, and the one place its errors become rl4qe errors. backend.ts binds it to the
// Backend interface, tools.ts to the benchmark and doctor hooks, index.ts loads it.
import { Rl4qeError, ShapeError } from '../../util/errors.js';
import type { AttentionParams, BinaryOp, Buf, ReduceOp, UnaryOp } from '../backend.js';

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

/**
 * The raw addon surface: native/addon.cc's exports, positional arguments, validated again in C++.
 * Every member is present in a build of this checkout (the loader refuses one that lacks any, a
 * stale build); only the bf16 GEMM is x86-64 only.
 */
export interface Addon {
  /** zero = false leaves the contents unspecified (default true: zero-filled). */
  alloc(length: number, zero?: boolean): Float32Array;
  release(buf: Buf): boolean;
  isNative(buf: Buf): boolean;
  alignment(buf: Buf): number;
  liveBytes(): number;
  /** Free the pool of released blocks kept for reuse; returns the bytes freed. */
  trimPool(): number;
  /** Set the pool's cap in MiB (0 = off); returns the previous cap. */
  setPoolCap(mb: number): number;
  info(): NativeInfo;
  setThreads(n: number): number;
  setKernel(name: string): string;
  peak(seconds: number, threads: number): number;
  /** x86-64 builds only (with bf16Available from info() saying whether the CPU runs them). */
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
  qsupports(type: number): boolean;
  qmatmul(
    x: Float32Array,
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    out: Float32Array,
    m: number,
    accumulate: boolean,
    /** May run on int8 activations (the avx512vnni set). */
    int8: boolean,
  ): void;
  qmatmulT(
    g: Float32Array,
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    out: Float32Array,
    m: number,
    accumulate: boolean,
  ): void;
  qembedding(
    data: Uint8Array,
    type: number,
    rows: number,
    cols: number,
    ids: Int32Array,
    out: Float32Array,
  ): void;
}

export type AttnTail = [
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

/** The functions every build of this checkout exports (the bf16 trio is x86-64 only). */
const REQUIRED: readonly (keyof Addon)[] = [
  'alloc',
  'release',
  'isNative',
  'alignment',
  'liveBytes',
  'trimPool',
  'setPoolCap',
  'info',
  'setThreads',
  'setKernel',
  'peak',
  'openblasSgemm',
  'matmul',
  'copyStrided',
  'fill',
  'binary',
  'unary',
  'unaryBackward',
  'affine',
  'argmax',
  'reduce',
  'softmax',
  'softmaxBackward',
  'logsumexp',
  'rmsnorm',
  'rmsnormBackward',
  'rope',
  'attention',
  'attentionBackward',
  'embedding',
  'embeddingBackward',
  'adamw',
  'qsupports',
  'qmatmul',
  'qmatmulT',
  'qembedding',
];

/** The required functions a loaded module lacks (a stale build, or not the rl4qe addon). */
export function missingFunctions(mod: unknown): string[] {
  const m = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
  return REQUIRED.filter((k) => typeof m[k] !== 'function');
}

// Op codes: the enum order of native/ops.h.
export const BINARY: Record<BinaryOp, number> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  eq: 6,
  gt: 7,
};
export const UNARY: Record<UnaryOp, number> = {
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
export const REDUCE: Record<ReduceOp, number> = { sum: 0, max: 1 };

export function attnTail(p: AttentionParams): AttnTail {
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
export function rethrow(op: string, e: unknown): never {
  if (e instanceof Rl4qeError) throw e;
  const msg = e instanceof Error ? e.message : String(e);
  throw new ShapeError(msg.replace(/^native\.\w+: /, ''), { where: `native.${op}`, cause: e });
}

/** Runs one addon call, its errors made rl4qe errors that name the op. */
export function guard<R>(op: string, run: () => R): R {
  try {
    return run();
  } catch (e) {
    return rethrow(op, e);
  }
}
