// The Backend interface over a loaded addon. The addon works zero-copy on the Float32Arrays it is
// given and on its own 64-byte aligned buffers from alloc(); release() frees those at once and
// detaches them (length 0 afterwards, so a later use is a ShapeError, never a crash).
//
// Every kernel goes through ONE dispatch, `run`: float32 buffers run in the addon (its argument
// errors become ShapeErrors naming the op); anything else (float64 buffers) runs on the fallback
// backend, the reference one. That is the only fallback: a build of this checkout has every
// kernel (the loader refuses a stale one), so no kernel is looked up at call time.
import { UnsupportedError } from '../../util/errors.js';
import type {
  AdamWParams,
  AttentionParams,
  Backend,
  Bf16Weight,
  Buf,
  DType,
  MatmulParams,
  QuantWeight,
  RopeParams,
} from '../backend.js';
import { int8DecodingAllowed } from '../int8-decoding.js';
import { attnTail, BINARY, guard, REDUCE, UNARY, type Addon } from './addon.js';

/** The native backend: the Backend interface with the optional members the addon always has. */
export type NativeBackend = Backend &
  Required<
    Pick<
      Backend,
      | 'argmax'
      | 'liveBytes'
      | 'allocUninit'
      | 'trimPool'
      | 'setPoolCapMb'
      | 'qsupports'
      | 'qmatmul'
      | 'qmatmulT'
      | 'qembedding'
      | 'bf16Pack'
      | 'bf16Matmul'
      | 'bf16MatmulT'
      | 'bf16Fast'
    >
  >;

// A tuple of buffers as the addon takes them: every Buf a Float32Array, a null staying null.
type F32<T> = T extends null ? null : Float32Array;
type AllF32<T extends readonly (Buf | null)[]> = { [K in keyof T]: F32<T[K]> };

function allF32<T extends readonly (Buf | null)[]>(bufs: T): AllF32<T> | undefined {
  return bufs.every((b) => b === null || b instanceof Float32Array)
    ? (bufs as unknown as AllF32<T>)
    : undefined;
}

/** A kernel a backend may lack (Backend's optional members), or an UnsupportedError naming it. */
function need<
  K extends
    'argmax' | 'qmatmul' | 'qmatmulT' | 'qembedding' | 'bf16Pack' | 'bf16Matmul' | 'bf16MatmulT',
>(b: Backend, op: K): NonNullable<Backend[K]> {
  const f = b[op];
  if (!f) {
    throw new UnsupportedError(`the native backend's fallback (${b.name}) has no ${op}`, {
      where: `native.${op}`,
    });
  }
  return f.bind(b) as NonNullable<Backend[K]>;
}

/**
 * The Backend over a loaded addon. `fallback` runs float64 buffers; without one such calls throw
 * UnsupportedError.
 */
export function createNativeBackend(addon: Addon, fallback: Backend | null = null): NativeBackend {
  const a = addon;
  const fallbackFor = (op: string): Backend => {
    if (fallback) return fallback;
    throw new UnsupportedError(`native backend has no f64 ${op}`, {
      where: `native.${op}`,
      hint: 'float64 runs on the reference backend',
    });
  };
  // THE dispatch (see the header): `native` gets the buffers typed as the addon takes them.
  // The bf16 GEMM where the build has it (x86-64) and the CPU runs it (AVX512-BF16; hidden by
  // RL4QE_HIDE_FEATURES): a property of the machine, so the bf16 ops below go to the fallback
  // backend's reference kernels without it, as they do for float64 or a reference-layout weight.
  const { packBf16, packBf16T, matmulBf16 } = a;
  const bf16 =
    packBf16 && packBf16T && matmulBf16 && a.info().bf16Available === true
      ? { packBf16, packBf16T, matmulBf16 }
      : null;
  const run = <T extends readonly (Buf | null)[], R>(
    op: string,
    bufs: T,
    native: (...f: AllF32<T>) => R,
    other: (fb: Backend) => R,
  ): R => {
    const f = allF32(bufs);
    return f ? guard(op, () => native(...f)) : other(fallbackFor(op));
  };

  return {
    name: 'native',
    supports: (dtype: DType) => dtype === 'f32',
    alloc: (dtype, length) =>
      dtype === 'f32'
        ? guard('alloc', () => a.alloc(length))
        : fallbackFor('alloc').alloc(dtype, length),
    allocUninit: (dtype, length) =>
      dtype === 'f32'
        ? guard('alloc', () => a.alloc(length, false))
        : fallbackFor('alloc').alloc(dtype, length),
    release(buf) {
      if (buf instanceof Float32Array) a.release(buf);
      else fallback?.release(buf);
    },
    liveBytes: () => a.liveBytes(),
    trimPool: () => a.trimPool(),
    setPoolCapMb: (mb) => a.setPoolCap(mb),

    copyStrided: (src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape) =>
      run(
        'copyStrided',
        [src, dst] as const,
        (s, d) => a.copyStrided(s, srcOffset, srcStrides, d, dstOffset, dstStrides, shape),
        (fb) => fb.copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape),
      ),
    fill: (out, value) =>
      run(
        'fill',
        [out] as const,
        (o) => a.fill(o, value),
        (fb) => fb.fill(out, value),
      ),
    matmul: (x, y, out, p: MatmulParams) =>
      run(
        'matmul',
        [x, y, out] as const,
        (x, y, o) =>
          a.matmul(
            x,
            y,
            o,
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
          ),
        (fb) => fb.matmul(x, y, out, p),
      ),
    binary: (op, x, xStrides, y, yStrides, out, outShape) =>
      run(
        'binary',
        [x, y, out] as const,
        (x, y, o) => a.binary(BINARY[op], x, xStrides, y, yStrides, o, outShape),
        (fb) => fb.binary(op, x, xStrides, y, yStrides, out, outShape),
      ),
    unary: (op, x, out) =>
      run(
        'unary',
        [x, out] as const,
        (x, o) => a.unary(UNARY[op], x, o),
        (fb) => fb.unary(op, x, out),
      ),
    unaryBackward: (op, x, y, gy, gx, accumulate) =>
      run(
        'unaryBackward',
        [x, y, gy, gx] as const,
        (x, y, gy, gx) => a.unaryBackward(UNARY[op], x, y, gy, gx, accumulate),
        (fb) => fb.unaryBackward(op, x, y, gy, gx, accumulate),
      ),
    affine: (x, s, t, out) =>
      run(
        'affine',
        [x, out] as const,
        (x, o) => a.affine(x, s, t, o),
        (fb) => fb.affine(x, s, t, out),
      ),
    reduce: (op, x, outer, axis, inner, out) =>
      run(
        'reduce',
        [x, out] as const,
        (x, o) => a.reduce(REDUCE[op], x, outer, axis, inner, o),
        (fb) => fb.reduce(op, x, outer, axis, inner, out),
      ),
    argmax: (x, outer, axis, inner, out) =>
      run(
        'argmax',
        [x] as const,
        (x) => a.argmax(x, outer, axis, inner, out),
        (fb) => need(fb, 'argmax')(x, outer, axis, inner, out),
      ),
    softmax: (x, rows, cols, out, log) =>
      run(
        'softmax',
        [x, out] as const,
        (x, o) => a.softmax(x, rows, cols, o, log),
        (fb) => fb.softmax(x, rows, cols, out, log),
      ),
    softmaxBackward: (y, gy, rows, cols, gx, log) =>
      run(
        'softmaxBackward',
        [y, gy, gx] as const,
        (y, gy, gx) => a.softmaxBackward(y, gy, rows, cols, gx, log),
        (fb) => fb.softmaxBackward(y, gy, rows, cols, gx, log),
      ),
    logsumexp: (x, rows, cols, out) =>
      run(
        'logsumexp',
        [x, out] as const,
        (x, o) => a.logsumexp(x, rows, cols, o),
        (fb) => fb.logsumexp(x, rows, cols, out),
      ),
    rmsnorm: (x, w, rows, cols, eps, out, rstd) =>
      run(
        'rmsnorm',
        [x, w, out, rstd] as const,
        (x, w, o, r) => a.rmsnorm(x, w, rows, cols, eps, o, r),
        (fb) => fb.rmsnorm(x, w, rows, cols, eps, out, rstd),
      ),
    rmsnormBackward: (x, w, rstd, gy, rows, cols, gx, gw) =>
      run(
        'rmsnormBackward',
        [x, w, rstd, gy, gx, gw] as const,
        (x, w, r, gy, gx, gw) => a.rmsnormBackward(x, w, r, gy, rows, cols, gx, gw),
        (fb) => fb.rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw),
      ),
    rope: (x, out, p: RopeParams) =>
      run(
        'rope',
        [x, out, p.cos, p.sin] as const,
        (x, o, cos, sin) =>
          a.rope(x, o, p.batch, p.seq, p.heads, p.headDim, p.positions, cos, sin, p.inverse),
        (fb) => fb.rope(x, out, p),
      ),
    attention: (q, k, v, out, lse, p: AttentionParams) =>
      run(
        'attention',
        [q, k, v, out, lse] as const,
        (q, k, v, o, l) => a.attention(q, k, v, o, l, ...attnTail(p)),
        (fb) => fb.attention(q, k, v, out, lse, p),
      ),
    attentionBackward: (q, k, v, out, lse, gOut, gq, gk, gv, p: AttentionParams) =>
      run(
        'attentionBackward',
        [q, k, v, out, lse, gOut, gq, gk, gv] as const,
        (q, k, v, o, l, go, gq, gk, gv) =>
          a.attentionBackward(q, k, v, o, l, go, gq, gk, gv, ...attnTail(p)),
        (fb) => fb.attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, p),
      ),
    embedding: (table, ids, dim, out) =>
      run(
        'embedding',
        [table, out] as const,
        (t, o) => a.embedding(t, ids, dim, o),
        (fb) => fb.embedding(table, ids, dim, out),
      ),
    embeddingBackward: (gOut, ids, dim, gTable) =>
      run(
        'embeddingBackward',
        [gOut, gTable] as const,
        (g, t) => a.embeddingBackward(g, ids, dim, t),
        (fb) => fb.embeddingBackward(gOut, ids, dim, gTable),
      ),
    adamw: (param, grad, m, v, p: AdamWParams) =>
      run(
        'adamw',
        [param, grad, m, v] as const,
        (w, g, m, v) => a.adamw(w, g, m, v, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, p.step),
        (fb) => fb.adamw(param, grad, m, v, p),
      ),

    // Quantised frozen weights (native/quant_impl.h): w travels as (data, type, rows, cols).
    qsupports: (type) => a.qsupports(type),
    qmatmul: (x, w: QuantWeight, out, m, accumulate) =>
      run(
        'qmatmul',
        [x, out] as const,
        (x, o) =>
          a.qmatmul(x, w.data, w.type, w.rows, w.cols, o, m, accumulate, int8DecodingAllowed()),
        (fb) => need(fb, 'qmatmul')(x, w, out, m, accumulate),
      ),
    qmatmulT: (g, w: QuantWeight, out, m, accumulate) =>
      run(
        'qmatmulT',
        [g, out] as const,
        (g, o) => a.qmatmulT(g, w.data, w.type, w.rows, w.cols, o, m, accumulate),
        (fb) => need(fb, 'qmatmulT')(g, w, out, m, accumulate),
      ),
    // bf16 frozen weights (native/gemm_bf16.cc): W [rows, cols] is packed as op(B) = Wᵀ
    // (k = cols, n = rows) for x·Wᵀ; the input gradient g·W needs op(B) = W, whose vdpbf16ps
    // pairs run along W's rows, so it gets its own packing, transposed from the first (the same
    // bf16 values) when a backward first asks for it.
    bf16Fast: () => bf16 !== null,
    bf16Pack: (w, rows, cols) =>
      bf16
        ? guard('bf16Pack', (): Bf16Weight => ({
            rows,
            cols,
            layout: 'native-panels',
            data: bf16.packBf16(w, cols, rows, true),
          }))
        : need(fallbackFor('bf16Pack'), 'bf16Pack')(w, rows, cols),
    bf16Matmul: (x, w: Bf16Weight, out, m, accumulate) => {
      const f = bf16 && w.layout === 'native-panels' ? allF32([x, out] as const) : undefined;
      if (!bf16 || !f)
        return need(fallbackFor('bf16Matmul'), 'bf16Matmul')(x, w, out, m, accumulate);
      const [xf, of] = f;
      guard('bf16Matmul', () =>
        bf16.matmulBf16(xf, w.data, of, m, w.cols, w.rows, false, 1, accumulate),
      );
    },
    bf16MatmulT: (g, w: Bf16Weight, out, m, accumulate) => {
      const f = bf16 && w.layout === 'native-panels' ? allF32([g, out] as const) : undefined;
      if (!bf16 || !f)
        return need(fallbackFor('bf16MatmulT'), 'bf16MatmulT')(g, w, out, m, accumulate);
      const [gf, of] = f;
      guard('bf16MatmulT', () => {
        w.dataT ??= bf16.packBf16T(w.data, w.cols, w.rows);
        bf16.matmulBf16(gf, w.dataT, of, m, w.rows, w.cols, false, 1, accumulate);
      });
    },
    qembedding: (w: QuantWeight, ids, out) =>
      run(
        'qembedding',
        [out] as const,
        (o) => a.qembedding(w.data, w.type, w.rows, w.cols, ids, o),
        (fb) => need(fb, 'qembedding')(w, ids, out),
      ),
  };
}
