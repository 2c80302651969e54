// THE table of primitives: each entry computes its forward on a backend and returns, beside it,
// the backward rule (a closure over what the forward saved). Every differentiable op of
// src/tensor/ops.ts is one of these or a composition of them. Inputs are validated in ops.ts;
// rules trust shapes and dtypes.
//
// Conventions: `be` is the backend chosen for the inputs' dtype (float64 → reference); every
// output is freshly allocated (or a view sharing storage); backward returns one entry per input,
// null where needs[i] is false.
//
// `reads` says whose DATA the backward reads, given which inputs need a gradient (shapes are
// always there): tensor.ts trimActivations frees the buffers of a layer's intermediates that no
// backward reads. It must agree with the backward's own branches (which test requiresGrad, the
// same values as needs); a rule without `reads` keeps every input and its output. A wrong
// declaration shows up as ReleasedTensorError in the gradient tests, never as a wrong number.
import type {
  Bf16Weight,
  BinaryOp,
  Buf,
  FullBackend,
  MatmulParams,
  QuantWeight,
  UnaryOp,
} from '../backend/backend.js';
import type { Rng } from '../util/rng.js';
import {
  backendFor,
  emptyOn,
  uninitOn,
  sizeOf,
  stridesOf,
  type Forward,
  type Node,
  type Reads,
  Tensor,
} from './tensor.js';

// ---- shape helpers ----

/** Strides of `shape` (right-aligned) read as `outShape`: 0 on broadcast axes. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const s = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]));
}

/** Sum g (of outShape) down to `shape`, the shape it was broadcast from. */
export function sumTo(be: FullBackend, g: Tensor, shape: readonly number[]): Tensor {
  const off = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    const broadcast = i < off || shape[i - off] === 1;
    if (broadcast && g.shape[i] !== 1) axes.push(i);
  }
  if (axes.length === 0) return g.view(shape);
  const r = reduceAxes(be, g, axes, 'sum');
  const v = r.view(shape);
  r.release();
  return v;
}

/** Reduce over `axes` (keeping them as size 1). */
function reduceAxes(
  be: FullBackend,
  x: Tensor,
  axes: readonly number[],
  op: 'sum' | 'max',
): Tensor {
  let cur = x;
  let shape = [...x.shape];
  const sorted = [...axes].sort((a, b) => b - a);
  for (const ax of sorted) {
    const outer = sizeOf(shape.slice(0, ax));
    const inner = sizeOf(shape.slice(ax + 1));
    const next = [...shape];
    next[ax] = 1;
    const out = uninitOn(be, next, x.dtype);
    be.reduce(op, cur.data, outer, shape[ax], inner, out.data);
    if (cur !== x) cur.release();
    cur = out;
    shape = next;
  }
  return cur === x ? x.view(x.shape) : cur;
}

/** Broadcast g (shape `from`, same rank or fewer) to `to` by copying. */
function expandTo(be: FullBackend, g: Tensor, to: readonly number[]): Tensor {
  const out = uninitOn(be, to, g.dtype);
  be.copyStrided(g.data, 0, broadcastStrides(g.shape, to), out.data, 0, stridesOf(to), to);
  return out;
}

/** Options of a product beyond its dimensions; what is left out takes mm's defaults. */
type MmOptions = Partial<Omit<MatmulParams, 'm' | 'k' | 'n'>>;

/**
 * out = op(a) · op(b), op(a) [m, k] and op(b) [k, n], for `batch` (default 1) products of dense
 * matrices: the strides default to m·k, k·n and m·n (one matrix after another) and the transposes
 * to false, so a rule states only its dimensions, a shared operand's stride 0 and accumulate.
 */
function mm(
  be: FullBackend,
  a: Buf,
  b: Buf,
  out: Buf,
  [m, k, n]: readonly [m: number, k: number, n: number],
  o: MmOptions = {},
): void {
  be.matmul(a, b, out, {
    batch: o.batch ?? 1,
    m,
    k,
    n,
    transA: o.transA ?? false,
    transB: o.transB ?? false,
    strideA: o.strideA ?? m * k,
    strideB: o.strideB ?? k * n,
    strideOut: o.strideOut ?? m * n,
    ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
    ...(o.accumulate !== undefined ? { accumulate: o.accumulate } : {}),
  });
}

function bin(
  be: FullBackend,
  op: BinaryOp,
  a: Tensor,
  b: Tensor,
  outShape: readonly number[],
): Tensor {
  const out = uninitOn(be, outShape, a.dtype);
  be.binary(
    op,
    a.data,
    broadcastStrides(a.shape, outShape),
    b.data,
    broadcastStrides(b.shape, outShape),
    out.data,
    outShape,
  );
  return out;
}

function affineT(be: FullBackend, x: Tensor, s: number, t: number): Tensor {
  const out = uninitOn(be, x.shape, x.dtype);
  be.affine(x.data, s, t, out.data);
  return out;
}

function permuteT(be: FullBackend, x: Tensor, perm: readonly number[]): Tensor {
  const xs = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const out = uninitOn(be, shape, x.dtype);
  be.copyStrided(
    x.data,
    0,
    perm.map((p) => xs[p]),
    out.data,
    0,
    stridesOf(shape),
    shape,
  );
  return out;
}

function sliceT(be: FullBackend, x: Tensor, axis: number, start: number, end: number): Tensor {
  const shape = [...x.shape];
  shape[axis] = end - start;
  const xs = stridesOf(x.shape);
  const out = uninitOn(be, shape, x.dtype);
  be.copyStrided(x.data, start * xs[axis], xs, out.data, 0, stridesOf(shape), shape);
  return out;
}

function release(...ts: (Tensor | null)[]): void {
  for (const t of ts) t?.release();
}

// ---- what backward reads (Forward.reads) ----

/** Reads no data at all: the gradient is a linear map of g alone (add, reshape, rope, ...). */
function readsNothing(needs: readonly boolean[]): Reads {
  return { inputs: needs.map(() => false), out: false };
}

/** Reads every input (not the output), whatever needs a gradient. */
function readsInputs(needs: readonly boolean[]): Reads {
  return { inputs: needs.map(() => true), out: false };
}

/**
 * x [..., k] · Wᵀ → [..., n] for a frozen weight W [n, k] kept in a kernel's own format (GGUF
 * blocks, packed bf16): the qmatmul and bmatmul rules. Only x gets a gradient, g · W; the
 * backward reads the weight (a parameter, not an input), never x.
 */
function frozenMatmul(
  be: FullBackend,
  x: Tensor,
  w: { rows: number; cols: number },
  k: {
    forward: (x: Buf, out: Buf, m: number) => void;
    backward: (g: Buf, gx: Buf, m: number) => void;
  },
): Forward {
  const m = x.size / w.cols;
  const out = uninitOn(be, [...x.shape.slice(0, -1), w.rows], x.dtype);
  k.forward(x.data, out.data, m);
  return {
    out,
    reads: readsNothing,
    backward: (g) => {
      const gx = uninitOn(be, x.shape, x.dtype);
      k.backward(g.data, gx.data, m);
      return [gx];
    },
  };
}

/** Unary ops whose derivative is a function of the output y (the rest use the input x). */
const UNARY_READS_OUT: ReadonlySet<UnaryOp> = new Set<UnaryOp>([
  'exp',
  'sqrt',
  'rsqrt',
  'sigmoid',
  'tanh',
  'recip',
]);
/** Unary ops whose derivative is a constant (reads neither x nor y). */
const UNARY_READS_NONE: ReadonlySet<UnaryOp> = new Set<UnaryOp>(['neg']);

// ---- parameter types ----

export interface MatmulP {
  transA: boolean;
  transB: boolean;
}
export interface RopeTableBufs {
  cos: Float32Array;
  sin: Float32Array;
  cos64: Float64Array;
  sin64: Float64Array;
  headDim: number;
  maxPositions: number;
}
export interface AttentionP {
  causal: boolean;
  scale: number;
  keyStart?: Int32Array;
  /** Keys in use per sequence when k/v are a KV cache's [B, capacity, KVH, D] storage. */
  keyLen?: number;
  /** The cache is head-major, [B, KVH, capacity, D]. */
  kvHeadMajor?: boolean;
}

// ---- the table ----

export const rules = {
  /** a [..., m, k] · b [..., k, n] (b may be 2-D, shared by every batch); trans* read the stored transpose. */
  matmul(be: FullBackend, [a, b]: Tensor[], p: MatmulP): Forward {
    const { transA: ta, transB: tb } = p;
    const ra = a.shape.length;
    const batchShape = a.shape.slice(0, ra - 2);
    const batch = sizeOf(batchShape);
    const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
    const rb = b.shape.length;
    const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
    const shared = rb === 2;
    const sa = shared ? { strideA: 0 } : {};
    const sb = shared ? { strideB: 0 } : {};
    // A shared b and a row-major a: the batch folds into m (one product of batch·m rows).
    const fold = shared && !ta;
    const [B, M] = fold ? [1, batch * m] : [batch, m];
    // Every element is written when the inner dimension is non-empty (k = 0 gives zeros).
    const outShape = [...batchShape, m, n];
    const out = k > 0 ? uninitOn(be, outShape, a.dtype) : emptyOn(be, outShape, a.dtype);
    mm(be, a.data, b.data, out.data, [M, k, n], { batch: B, transA: ta, transB: tb, ...sb });

    const gradA = (g: Tensor): Tensor => {
      const ga = n > 0 ? uninitOn(be, a.shape, a.dtype) : emptyOn(be, a.shape, a.dtype);
      // dA = g · op(b)ᵀ; a stored [k, m] (transA): dAᵀ = op(b) · gᵀ
      if (!ta) mm(be, g.data, b.data, ga.data, [M, n, k], { batch: B, transB: !tb, ...sb });
      else mm(be, b.data, g.data, ga.data, [k, n, m], { batch, transA: tb, transB: true, ...sa });
      return ga;
    };
    const gradB = (g: Tensor): Tensor => {
      const gb = emptyOn(be, b.shape, b.dtype);
      if (fold) {
        // Shared b, folded batch: contract over all batch·m rows at once.
        if (!tb) mm(be, a.data, g.data, gb.data, [k, batch * m, n], { transA: true });
        else mm(be, g.data, a.data, gb.data, [n, batch * m, k], { transA: true });
        return gb;
      }
      // Per batch; a shared b (with transA) sums the batches, accumulating after the first.
      const steps = shared ? batch : 1;
      const nb = shared ? 1 : batch;
      for (let s = 0; s < steps; s++) {
        const aPart = shared ? a.data.subarray(s * m * k, (s + 1) * m * k) : a.data;
        const gPart = shared ? g.data.subarray(s * m * n, (s + 1) * m * n) : g.data;
        const o = { batch: nb, accumulate: s > 0 };
        // dB = op(a)ᵀ · g; b stored [n, k] (transB): dBᵀ = gᵀ · op(a)
        if (!tb) mm(be, aPart, gPart, gb.data, [k, m, n], { ...o, transA: !ta });
        else mm(be, gPart, aPart, gb.data, [n, m, k], { ...o, transA: true, transB: ta });
      }
      return gb;
    };
    return {
      out,
      // dA reads b, dB reads a: with a frozen weight b, the input a is never read again.
      reads: ([na, nb]) => ({ inputs: [nb === true, na === true], out: false }),
      backward: (g) => [a.requiresGrad ? gradA(g) : null, b.requiresGrad ? gradB(g) : null],
    };
  },

  /** Broadcasting binary op: add, sub, mul, div, max (elementwise maximum). */
  binary(
    be: FullBackend,
    [a, b]: Tensor[],
    p: { op: 'add' | 'sub' | 'mul' | 'div' | 'max'; outShape: readonly number[] },
  ): Forward {
    const out = bin(be, p.op, a, b, p.outShape);
    const reads = ([na, nb]: readonly boolean[]): Reads => {
      switch (p.op) {
        case 'add':
        case 'sub':
          return { inputs: [false, false], out: false };
        case 'mul':
          return { inputs: [nb === true, na === true], out: false };
        case 'div':
          // da = g / b; db = −g·out / b.
          return { inputs: [false, true], out: nb === true };
        case 'max':
          return { inputs: [true, true], out: false };
      }
    };
    return {
      out,
      reads,
      backward: (g) => {
        const S = p.outShape;
        let fa: Tensor | null = null;
        let fb: Tensor | null = null;
        switch (p.op) {
          case 'add':
            fa = a.requiresGrad ? g.view(S) : null;
            fb = b.requiresGrad ? g.view(S) : null;
            break;
          case 'sub':
            fa = a.requiresGrad ? g.view(S) : null;
            fb = b.requiresGrad ? affineT(be, g, -1, 0) : null;
            break;
          case 'mul':
            fa = a.requiresGrad ? bin(be, 'mul', g, b, S) : null;
            fb = b.requiresGrad ? bin(be, 'mul', g, a, S) : null;
            break;
          case 'div':
            fa = a.requiresGrad ? bin(be, 'div', g, b, S) : null;
            if (b.requiresGrad) {
              // d(a/b)/db = −out / b
              const t = bin(be, 'mul', g, out, S);
              const u = bin(be, 'div', t, b, S);
              fb = affineT(be, u, -1, 0);
              release(t, u);
            }
            break;
          case 'max': {
            // The larger input takes the gradient; ties split it evenly (as PyTorch does).
            const gt = bin(be, 'gt', a, b, S);
            const eq = bin(be, 'eq', a, b, S);
            const half = affineT(be, eq, 0.5, 0);
            const wa = bin(be, 'add', gt, half, S);
            const ga = bin(be, 'mul', g, wa, S);
            if (b.requiresGrad) fb = bin(be, 'sub', g, ga, S);
            if (a.requiresGrad) fa = ga;
            else ga.release();
            release(gt, eq, half, wa);
            break;
          }
        }
        const ga = fa ? sumTo(be, fa, a.shape) : null;
        const gb = fb ? sumTo(be, fb, b.shape) : null;
        release(fa, fb);
        return [ga, gb];
      },
    };
  },

  /** out = x · s + t. */
  affine(be: FullBackend, [x]: Tensor[], p: { s: number; t: number }): Forward {
    return {
      out: affineT(be, x, p.s, p.t),
      reads: readsNothing,
      backward: (g) => [affineT(be, g, p.s, 0)],
    };
  },

  unary(be: FullBackend, [x]: Tensor[], p: { op: UnaryOp }): Forward {
    const out = uninitOn(be, x.shape, x.dtype);
    be.unary(p.op, x.data, out.data);
    const none = UNARY_READS_NONE.has(p.op);
    const useOut = !none && UNARY_READS_OUT.has(p.op);
    const useX = !none && !useOut;
    return {
      out,
      reads: () => ({ inputs: [useX], out: useOut }),
      backward: (g) => {
        const gx = uninitOn(be, x.shape, x.dtype);
        // The kernel's derivative for this op ignores one of x and y (or both): g's buffer, of
        // the same length, stands in for the one it ignores, so that buffer may be freed.
        const xb = useX ? x.data : g.data;
        const yb = useOut ? out.data : g.data;
        be.unaryBackward(p.op, xb, yb, g.data, gx.data, false);
        return [gx];
      },
    };
  },

  /** Same data, another shape (a view: no copy). */
  reshape(_be: FullBackend, [x]: Tensor[], p: { shape: readonly number[] }): Forward {
    return { out: x.view(p.shape), reads: readsNothing, backward: (g) => [g.view(x.shape)] };
  },

  permute(be: FullBackend, [x]: Tensor[], p: { perm: readonly number[] }): Forward {
    const inv = new Array<number>(p.perm.length);
    p.perm.forEach((q, i) => (inv[q] = i));
    return {
      out: permuteT(be, x, p.perm),
      reads: readsNothing,
      backward: (g) => [permuteT(be, g, inv)],
    };
  },

  slice(be: FullBackend, [x]: Tensor[], p: { axis: number; start: number; end: number }): Forward {
    return {
      out: sliceT(be, x, p.axis, p.start, p.end),
      reads: readsNothing,
      backward: (g) => {
        const gx = emptyOn(be, x.shape, x.dtype);
        const xs = stridesOf(x.shape);
        be.copyStrided(g.data, 0, stridesOf(g.shape), gx.data, p.start * xs[p.axis], xs, g.shape);
        return [gx];
      },
    };
  },

  concat(be: FullBackend, xs: Tensor[], p: { axis: number }): Forward {
    const shape = [...xs[0].shape];
    shape[p.axis] = xs.reduce((s, x) => s + x.shape[p.axis], 0);
    const out = uninitOn(be, shape, xs[0].dtype);
    const os = stridesOf(shape);
    let at = 0;
    const starts: number[] = [];
    for (const x of xs) {
      starts.push(at);
      be.copyStrided(x.data, 0, stridesOf(x.shape), out.data, at * os[p.axis], os, x.shape);
      at += x.shape[p.axis];
    }
    return {
      out,
      reads: readsNothing,
      backward: (g) =>
        xs.map((x, i) =>
          x.requiresGrad ? sliceT(be, g, p.axis, starts[i], starts[i] + x.shape[p.axis]) : null,
        ),
    };
  },

  /** Broadcast to a larger shape (copy). */
  expand(be: FullBackend, [x]: Tensor[], p: { shape: readonly number[] }): Forward {
    return {
      out: expandTo(be, x, p.shape),
      reads: readsNothing,
      backward: (g) => [sumTo(be, g, x.shape)],
    };
  },

  /** Sum over axes (sorted, distinct); outShape drops them unless keepDims. */
  sum(be: FullBackend, [x]: Tensor[], p: { axes: number[]; outShape: readonly number[] }): Forward {
    const r = reduceAxes(be, x, p.axes, 'sum');
    const out = r.view(p.outShape);
    r.release();
    return {
      out,
      reads: readsNothing,
      backward: (g) => {
        const kd = x.shape.map((d, i) => (p.axes.includes(i) ? 1 : d));
        const gv = g.view(kd);
        const gx = expandTo(be, gv, x.shape);
        gv.release();
        return [gx];
      },
    };
  },

  /** Max over one axis; the gradient goes to the first maximum. */
  max(be: FullBackend, [x]: Tensor[], p: { axis: number; outShape: readonly number[] }): Forward {
    const outer = sizeOf(x.shape.slice(0, p.axis));
    const len = x.shape[p.axis];
    const inner = sizeOf(x.shape.slice(p.axis + 1));
    const out = emptyOn(be, p.outShape, x.dtype);
    be.reduce('max', x.data, outer, len, inner, out.data);
    return {
      out,
      // The argmax is recomputed from x.
      reads: readsInputs,
      backward: (g) => {
        const idx = new Int32Array(outer * inner);
        be.argmax(x.data, outer, len, inner, idx);
        const gx = emptyOn(be, x.shape, x.dtype);
        const gd = g.data;
        const xd = gx.data;
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            xd[(o * len + idx[o * inner + i]) * inner + i] = gd[o * inner + i];
          }
        }
        return [gx];
      },
    };
  },

  /** Softmax or log-softmax over the last axis. */
  softmax(be: FullBackend, [x]: Tensor[], p: { log: boolean }): Forward {
    const cols = x.shape[x.shape.length - 1];
    const rows = cols === 0 ? 0 : x.size / cols;
    const out = uninitOn(be, x.shape, x.dtype);
    be.softmax(x.data, rows, cols, out.data, p.log);
    return {
      out,
      reads: () => ({ inputs: [false], out: true }),
      backward: (g) => {
        const gx = uninitOn(be, x.shape, x.dtype);
        be.softmaxBackward(out.data, g.data, rows, cols, gx.data, p.log);
        return [gx];
      },
    };
  },

  /** RMSNorm over the last axis with a weight [cols]. */
  rmsnorm(be: FullBackend, [x, w]: Tensor[], p: { eps: number }): Forward {
    const cols = x.shape[x.shape.length - 1];
    const rows = cols === 0 ? 0 : x.size / cols;
    const out = uninitOn(be, x.shape, x.dtype);
    const rstd = uninitOn(be, [rows], x.dtype);
    be.rmsnorm(x.data, w.data, rows, cols, p.eps, out.data, rstd.data);
    return {
      out,
      saved: [rstd],
      // The kernel computes dx (and dw) from x, w and rstd whichever is needed.
      reads: readsInputs,
      backward: (g) => {
        const gx = uninitOn(be, x.shape, x.dtype);
        const gw = w.requiresGrad ? emptyOn(be, w.shape, w.dtype) : null;
        be.rmsnormBackward(
          x.data,
          w.data,
          rstd.data,
          g.data,
          rows,
          cols,
          gx.data,
          gw?.data ?? null,
        );
        if (!x.requiresGrad) {
          gx.release();
          return [null, gw];
        }
        return [gx, gw];
      },
    };
  },

  /** RoPE on x [B, T, H, D] at the given positions (rotate-half layout). */
  rope(
    be: FullBackend,
    [x]: Tensor[],
    p: { table: RopeTableBufs; positions: Int32Array },
  ): Forward {
    const [batch, seq, heads, headDim] = x.shape;
    const f64 = x.dtype === 'f64';
    const params = {
      batch,
      seq,
      heads,
      headDim,
      positions: p.positions,
      cos: f64 ? p.table.cos64 : p.table.cos,
      sin: f64 ? p.table.sin64 : p.table.sin,
    };
    const out = uninitOn(be, x.shape, x.dtype);
    be.rope(x.data, out.data, { ...params, inverse: false });
    return {
      out,
      // A rotation: dx is the inverse rotation of g.
      reads: readsNothing,
      backward: (g) => {
        const gx = uninitOn(be, x.shape, x.dtype);
        be.rope(g.data, gx.data, { ...params, inverse: true });
        return [gx];
      },
    };
  },

  /** Fused attention; the per-row logsumexp is the only thing saved besides q, k, v, out. */
  attention(be: FullBackend, [q, k, v]: Tensor[], p: AttentionP): Forward {
    const [batch, seqQ, heads, headDim] = q.shape;
    const hm = p.kvHeadMajor === true;
    const kvHeads = hm ? k.shape[1] : k.shape[2];
    const cap = hm ? k.shape[2] : k.shape[1];
    const seqK = p.keyLen ?? cap;
    const params = {
      batch,
      seqQ,
      seqK,
      heads,
      kvHeads,
      headDim,
      scale: p.scale,
      causal: p.causal,
      keyStart: p.keyStart,
      ...(p.keyLen !== undefined ? { kvStride: cap * kvHeads * headDim } : {}),
      ...(hm ? { kvRowStride: headDim, kvHeadStride: cap * headDim } : {}),
    };
    const out = uninitOn(be, q.shape, q.dtype);
    const lse = uninitOn(be, [batch, heads, seqQ], q.dtype);
    be.attention(q.data, k.data, v.data, out.data, lse.data, params);
    return {
      out,
      saved: [lse],
      // The backward recomputes the probabilities from q, k and lse and reads out (dO·O rows).
      reads: (needs) => ({ inputs: needs.map(() => true), out: true }),
      backward: (g) => {
        const gq = uninitOn(be, q.shape, q.dtype);
        const gk = uninitOn(be, k.shape, k.dtype);
        const gv = uninitOn(be, v.shape, v.dtype);
        be.attentionBackward(
          q.data,
          k.data,
          v.data,
          out.data,
          lse.data,
          g.data,
          gq.data,
          gk.data,
          gv.data,
          params,
        );
        const res = [gq, gk, gv];
        return [q, k, v].map((t, i) => {
          if (t.requiresGrad) return res[i];
          res[i].release();
          return null;
        });
      },
    };
  },

  /** Rows of table [V, dim] gathered by ids → [...idsShape, dim]. */
  embedding(
    be: FullBackend,
    [table]: Tensor[],
    p: { ids: Int32Array; idsShape: readonly number[] },
  ): Forward {
    const dim = table.shape[1];
    const out = uninitOn(be, [...p.idsShape, dim], table.dtype);
    be.embedding(table.data, p.ids, dim, out.data);
    return {
      out,
      // A scatter-add of g by ids.
      reads: readsNothing,
      backward: (g) => {
        const gt = emptyOn(be, table.shape, table.dtype);
        be.embeddingBackward(g.data, p.ids, dim, gt.data);
        return [gt];
      },
    };
  },

  /**
   * x [..., k] · dequant(w)ᵀ → [..., n] for a quantised frozen weight w [n, k] (QuantWeight):
   * a linear layer on a model loaded with quantised weights. Only x gets a gradient
   * (g · dequant(w)); the weight is never trained.
   */
  qmatmul: (be: FullBackend, [x]: Tensor[], p: { w: QuantWeight }): Forward =>
    frozenMatmul(be, x, p.w, {
      forward: (x, out, m) => be.qmatmul(x, p.w, out, m, false),
      backward: (g, gx, m) => be.qmatmulT(g, p.w, gx, m, false),
    }),

  /**
   * x [..., k] · wᵀ → [..., n] for a bf16 frozen weight w [n, k] (Bf16Weight, the bf16 compute
   * mode): x is rounded to bf16, sums in fp32. Only x gets a gradient, g · w, through bf16
   * products too (g rounded to bf16); the weight is never trained.
   */
  bmatmul: (be: FullBackend, [x]: Tensor[], p: { w: Bf16Weight }): Forward =>
    frozenMatmul(be, x, p.w, {
      forward: (x, out, m) => be.bf16Matmul(x, p.w, out, m, false),
      backward: (g, gx, m) => be.bf16MatmulT(g, p.w, gx, m, false),
    }),

  /**
   * log softmax(hidden · weightᵀ)[target] per row, in chunks of rows: at most chunkRows × V
   * logits exist at once, forward and backward (which recomputes them). Targets < 0 give 0.
   */
  tokenLogProbs(
    be: FullBackend,
    [hidden, weight]: Tensor[],
    // qweight: a quantised frozen head (inputs are then [hidden] alone).
    p: { targets: Int32Array; chunkRows: number; qweight?: QuantWeight },
  ): Forward {
    const [N, d] = hidden.shape;
    const qw = p.qweight;
    const V = qw ? qw.rows : weight.shape[0];
    const C = Math.max(1, Math.min(p.chunkRows, N));
    const out = emptyOn(be, [N], hidden.dtype);
    const chunkLogits = (scratch: Tensor, r0: number, rows: number): void => {
      const h = hidden.data.subarray(r0 * d, (r0 + rows) * d);
      if (qw) return be.qmatmul(h, qw, scratch.data, rows, false);
      mm(be, h, weight.data, scratch.data, [rows, d, V], { transB: true });
    };
    const scratch = emptyOn(be, [C, V], hidden.dtype);
    const lse = emptyOn(be, [C], hidden.dtype);
    for (let r0 = 0; r0 < N; r0 += C) {
      const rows = Math.min(C, N - r0);
      chunkLogits(scratch, r0, rows);
      be.logsumexp(scratch.data, rows, V, lse.data);
      for (let r = 0; r < rows; r++) {
        const t = p.targets[r0 + r];
        out.data[r0 + r] = t < 0 ? 0 : scratch.data[r * V + t] - lse.data[r];
      }
    }
    release(scratch, lse);
    return {
      out,
      // Each chunk's logits are recomputed from hidden and weight.
      reads: readsInputs,
      backward: (g) => {
        // d/dlogits of g·logp[target] = g · (onehot(target) − softmax)
        const gh = hidden.requiresGrad ? emptyOn(be, hidden.shape, hidden.dtype) : null;
        const gw = !qw && weight.requiresGrad ? emptyOn(be, weight.shape, weight.dtype) : null;
        const sc = emptyOn(be, [C, V], hidden.dtype);
        const gRow = emptyOn(be, [C, 1], hidden.dtype);
        for (let r0 = 0; r0 < N; r0 += C) {
          const rows = Math.min(C, N - r0);
          chunkLogits(sc, r0, rows);
          const logits = sc.data.subarray(0, rows * V);
          be.softmax(logits, rows, V, logits, false);
          for (let r = 0; r < rows; r++) {
            const t = p.targets[r0 + r];
            gRow.data[r] = t < 0 ? 0 : -g.data[r0 + r];
          }
          // dlogits = −g · softmax, then + g at the target.
          be.binary('mul', logits, [V, 1], gRow.data, [1, 0], logits, [rows, V]);
          for (let r = 0; r < rows; r++) {
            const t = p.targets[r0 + r];
            if (t >= 0) logits[r * V + t] -= gRow.data[r];
          }
          if (gh && qw) {
            be.qmatmulT(logits, qw, gh.data.subarray(r0 * d, (r0 + rows) * d), rows, false);
          } else if (gh) {
            const ghRows = gh.data.subarray(r0 * d, (r0 + rows) * d);
            mm(be, logits, weight.data, ghRows, [rows, V, d]);
          }
          if (gw) {
            const hRows = hidden.data.subarray(r0 * d, (r0 + rows) * d);
            mm(be, logits, hRows, gw.data, [V, rows, d], { transA: true, accumulate: true });
          }
        }
        release(sc, gRow);
        return qw ? [gh] : [gh, gw];
      },
    };
  },

  /** Inverted dropout: zero with probability p, scale the rest by 1/(1 − p). */
  dropout(be: FullBackend, [x]: Tensor[], p: { p: number; rng: Rng }): Forward {
    const mask = emptyOn(be, x.shape, x.dtype);
    const keep = 1 / (1 - p.p);
    const md = mask.data;
    for (let i = 0; i < md.length; i++) md[i] = p.rng.next() < p.p ? 0 : keep;
    const out = bin(be, 'mul', x, mask, x.shape);
    return {
      out,
      saved: [mask],
      reads: readsNothing,
      backward: (g) => [bin(be, 'mul', g, mask, x.shape)],
    };
  },

  /** Convert between float32 and float64 (the gradient converts back). */
  cast(_be: FullBackend, [x]: Tensor[], p: { dtype: 'f32' | 'f64'; to: FullBackend }): Forward {
    const out = emptyOn(p.to, x.shape, p.dtype);
    out.data.set(x.data);
    return {
      out,
      reads: readsNothing,
      backward: (g) => {
        const gx = emptyOn(backendFor(x.dtype), x.shape, x.dtype);
        gx.data.set(g.data);
        return [gx];
      },
    };
  },
} satisfies Record<string, (be: FullBackend, xs: Tensor[], p: never) => Forward>;

export type { Node };
