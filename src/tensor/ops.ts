// The public ops of the tensor API (docs/engine.md): validate arguments (ShapeError naming the op, the argument and
// the shapes), then run one primitive of rules.ts through the tape, or compose primitives.
import type { QuantWeight, UnaryOp } from '../backend/backend.js';
import { ShapeError, UnsupportedError } from '../util/errors.js';
import { BTensor } from './btensor.js';
import { QTensor } from './qtensor.js';
import type { Rng } from '../util/rng.js';
import { rules, type AttentionP, type RopeTableBufs } from './rules.js';
import {
  backendFor,
  fmtShape,
  isGradEnabled,
  noGrad,
  record,
  sizeOf,
  stridesOf,
  uninitOn,
  type Forward,
  Tensor,
} from './tensor.js';
import type { FullBackend } from '../backend/backend.js';

// Activation trimming lives with the tape (tensor.ts); exported through the public API here.
export { trimActivations, setTrimActivations, isTrimActivationsEnabled } from './tensor.js';

type RuleName = keyof typeof rules;
type ParamsOf<K extends RuleName> = Parameters<(typeof rules)[K]>[2];

function live(op: string, name: string, x: unknown): Tensor {
  if (!(x instanceof Tensor)) {
    throw new ShapeError('argument is not a Tensor', {
      where: `${op}: ${name}`,
      expected: 'a Tensor',
      found: x === null ? 'null' : typeof x,
    });
  }
  x.storageFor(`${op} (${name})`);
  return x;
}

/** Check every input is a live tensor of one dtype, pick the backend and run the rule. */
function run<K extends RuleName>(
  op: string,
  rule: K,
  inputs: Record<string, Tensor> | Tensor[],
  p: ParamsOf<K>,
): Tensor {
  const entries = Array.isArray(inputs)
    ? inputs.map((t, i): [string, Tensor] => [`xs[${i}]`, t])
    : Object.entries(inputs);
  const xs = entries.map(([name, t]) => live(op, name, t));
  const dtype = xs[0].dtype;
  for (let i = 1; i < xs.length; i++) {
    if (xs[i].dtype !== dtype) {
      throw new ShapeError('dtype mismatch', {
        where: `${op}: ${entries[i][0]}`,
        expected: `${dtype} (like ${entries[0][0]})`,
        found: `${xs[i].dtype}${fmtShape(xs[i].shape)}`,
        hint: 'convert with cast(x, dtype)',
      });
    }
  }
  const be = backendFor(dtype);
  const fn = rules[rule] as (be: FullBackend, xs: Tensor[], p: ParamsOf<K>) => Forward;
  return record(op, xs, fn(be, xs, p));
}

function bad(op: string, arg: string, expected: string, found: string, hint?: string): never {
  throw new ShapeError('invalid argument', { where: `${op}: ${arg}`, expected, found, hint });
}

function normAxis(op: string, axis: number, rank: number, arg = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    bad(op, arg, `an integer in [${-rank}, ${rank})`, String(axis));
  }
  return a;
}

// ---- linear algebra ----

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * a [..., m, k] · b [..., k, n] → [..., m, n]. b may be 2-D (shared by every batch: weights).
 * transA: a is stored [..., k, m]; transB: b is stored [..., n, k] (nn.Linear weights [out, in]).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  live(op, 'a', a);
  live(op, 'b', b);
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2) bad(op, 'a', 'at least 2 dimensions [..., m, k]', fmtShape(a.shape));
  if (rb < 2) bad(op, 'b', 'at least 2 dimensions [..., k, n]', fmtShape(b.shape));
  const k = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  if (k !== kb) {
    throw new ShapeError('inner dimensions differ', {
      where: `${op}: a ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} · b ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`,
      expected: `b's ${transB ? 'last' : 'second-to-last'} dimension = ${k}`,
      found: String(kb),
    });
  }
  if (rb > 2) {
    const ba = a.shape.slice(0, ra - 2).join(',');
    const bb = b.shape.slice(0, rb - 2).join(',');
    if (ba !== bb) {
      bad(op, 'b', `batch dimensions [${ba}] like a, or a 2-D b`, fmtShape(b.shape));
    }
  }
  return run(op, 'matmul', { a, b }, { transA, transB });
}

// ---- elementwise ----

function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError('shapes do not broadcast', {
        where: `${op}: a ${fmtShape(a)}, b ${fmtShape(b)}`,
        expected: 'equal dimensions or 1 (aligned from the right)',
        found: `${da} vs ${db} at output axis ${i}`,
      });
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

function binaryOp(op: 'add' | 'sub' | 'mul' | 'div' | 'max', name: string, a: Tensor, b: Tensor) {
  live(name, 'a', a);
  live(name, 'b', b);
  return run(name, 'binary', { a, b }, { op, outShape: broadcastShape(name, a.shape, b.shape) });
}

export const add = (a: Tensor, b: Tensor): Tensor => binaryOp('add', 'add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binaryOp('sub', 'sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binaryOp('mul', 'mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binaryOp('div', 'div', a, b);
/** Elementwise maximum (ties split the gradient evenly). */
export const maximum = (a: Tensor, b: Tensor): Tensor => binaryOp('max', 'maximum', a, b);

export function scale(x: Tensor, s: number): Tensor {
  return run('scale', 'affine', { x }, { s, t: 0 });
}
export function addScalar(x: Tensor, s: number): Tensor {
  return run('addScalar', 'affine', { x }, { s: 1, t: s });
}

function unaryOp(op: UnaryOp) {
  return (x: Tensor): Tensor => run(op, 'unary', { x }, { op });
}
export const exp = unaryOp('exp');
export const log = unaryOp('log');
export const sqrt = unaryOp('sqrt');
export const rsqrt = unaryOp('rsqrt');
export const sigmoid = unaryOp('sigmoid');
export const silu = unaryOp('silu');
export const tanh = unaryOp('tanh');
export const relu = unaryOp('relu');
export const neg = unaryOp('neg');
export const square = unaryOp('square');
export const abs = unaryOp('abs');
export const recip = unaryOp('recip');

// ---- layout ----

/** Same data in another shape (one dimension may be −1). A view: no copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const op = 'reshape';
  live(op, 'x', x);
  const free = shape.filter((d) => d === -1).length;
  if (free > 1 || shape.some((d) => !Number.isInteger(d) || d < -1)) {
    bad(op, 'shape', 'non-negative integers and at most one −1', fmtShape(shape));
  }
  let out = [...shape];
  if (free === 1) {
    const known = sizeOf(shape.filter((d) => d !== -1));
    if (known === 0 || x.size % known !== 0) {
      bad(
        op,
        'shape',
        `a shape with ${x.size} elements (x is ${fmtShape(x.shape)})`,
        fmtShape(shape),
      );
    }
    out = shape.map((d) => (d === -1 ? x.size / known : d));
  }
  if (sizeOf(out) !== x.size) {
    bad(
      op,
      'shape',
      `a shape with ${x.size} elements (x is ${fmtShape(x.shape)})`,
      fmtShape(shape),
    );
  }
  return run(op, 'reshape', { x }, { shape: out });
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const op = 'permute';
  live(op, 'x', x);
  const r = x.shape.length;
  const p = perm.map((a) => (a < 0 ? a + r : a));
  const ok = p.length === r && [...p].sort((a, b) => a - b).every((a, i) => a === i);
  if (!ok)
    bad(op, 'perm', `a permutation of 0..${r - 1} (x is ${fmtShape(x.shape)})`, fmtShape(perm));
  return run(op, 'permute', { x }, { perm: p });
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  live('transpose', 'x', x);
  const r = x.shape.length;
  const a = normAxis('transpose', d0, r, 'd0');
  const b = normAxis('transpose', d1, r, 'd1');
  const perm = x.shape.map((_, i) => (i === a ? b : i === b ? a : i));
  return run('transpose', 'permute', { x }, { perm });
}

/** Elements start..end−1 along axis (negative start/end count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const op = 'slice';
  live(op, 'x', x);
  const ax = normAxis(op, axis, x.shape.length);
  const len = x.shape[ax];
  const s = start < 0 ? start + len : start;
  const e = end === undefined ? len : end < 0 ? end + len : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > len || s > e) {
    bad(
      op,
      'start/end',
      `0 ≤ start ≤ end ≤ ${len} on axis ${ax} of ${fmtShape(x.shape)}`,
      `${start}..${end}`,
    );
  }
  return run(op, 'slice', { x }, { axis: ax, start: s, end: e });
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const op = 'concat';
  if (xs.length === 0) bad(op, 'xs', 'at least one tensor', 'none');
  xs.forEach((x, i) => live(op, `xs[${i}]`, x));
  const r = xs[0].shape.length;
  const ax = normAxis(op, axis, r);
  xs.forEach((x, i) => {
    const ok = x.shape.length === r && x.shape.every((d, j) => j === ax || d === xs[0].shape[j]);
    if (!ok) {
      bad(
        op,
        `xs[${i}]`,
        `shape like ${fmtShape(xs[0].shape)} except on axis ${ax}`,
        fmtShape(x.shape),
      );
    }
  });
  return run(op, 'concat', [...xs], { axis: ax });
}

/** Broadcast x to `shape` (NumPy rules), copying. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  live('expand', 'x', x);
  const s = broadcastShape('expand', x.shape, shape);
  if (s.join(',') !== shape.join(','))
    bad('expand', 'shape', `a shape x ${fmtShape(x.shape)} broadcasts to`, fmtShape(shape));
  return run('expand', 'expand', { x }, { shape: s });
}

// ---- reductions ----

function normAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  const r = x.shape.length;
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const norm = list.map((a) => normAxis(op, a, r, 'axes'));
  if (new Set(norm).size !== norm.length) bad(op, 'axes', 'distinct axes', fmtShape(list));
  return norm.sort((a, b) => a - b);
}

function reducedShape(x: Tensor, axes: readonly number[], keepDims: boolean): number[] {
  return keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
}

/** Sum over axes (default all). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  live('sum', 'x', x);
  const ax = normAxes('sum', x, axes);
  return run('sum', 'sum', { x }, { axes: ax, outShape: reducedShape(x, ax, keepDims) });
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  live('mean', 'x', x);
  const ax = normAxes('mean', x, axes);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const s = sum(x, ax, keepDims);
  const m = scale(s, 1 / count);
  if (!s.node) s.release();
  return m;
}

/** Maximum over one axis. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  live('max', 'x', x);
  const ax = normAxis('max', axis, x.shape.length);
  if (x.shape[ax] === 0) bad('max', 'x', 'a non-empty axis', fmtShape(x.shape));
  return run('max', 'max', { x }, { axis: ax, outShape: reducedShape(x, [ax], keepDims) });
}

// ---- fused rows ----

function lastAxis(op: string, x: Tensor): void {
  live(op, 'x', x);
  if (x.shape.length < 1) bad(op, 'x', 'at least 1 dimension', fmtShape(x.shape));
}

export function softmax(x: Tensor): Tensor {
  lastAxis('softmax', x);
  return run('softmax', 'softmax', { x }, { log: false });
}
export function logSoftmax(x: Tensor): Tensor {
  lastAxis('logSoftmax', x);
  return run('logSoftmax', 'softmax', { x }, { log: true });
}

/** x · rsqrt(mean(x², last axis) + eps) · weight. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  lastAxis('rmsNorm', x);
  live('rmsNorm', 'weight', weight);
  const cols = x.shape[x.shape.length - 1];
  if (weight.shape.length !== 1 || weight.shape[0] !== cols) {
    bad(
      'rmsNorm',
      'weight',
      `[${cols}] (the last dimension of x ${fmtShape(x.shape)})`,
      fmtShape(weight.shape),
    );
  }
  return run('rmsNorm', 'rmsnorm', { x, weight }, { eps });
}

// ---- transformer pieces ----

/** RoPE tables from ropeTable() (src/tensor/rope.ts). */
export type RopeTable = RopeTableBufs & { attentionFactor: number };

/** Rotary embedding of x [B, T, H, D] (rotate-half layout); positions has B·T entries. */
export function rope(x: Tensor, table: RopeTable, positions: Int32Array): Tensor {
  const op = 'rope';
  live(op, 'x', x);
  if (x.shape.length !== 4) bad(op, 'x', '[batch, seq, heads, headDim]', fmtShape(x.shape));
  const [B, T, , D] = x.shape;
  if (D !== table.headDim)
    bad(op, 'table', `headDim ${D} (x is ${fmtShape(x.shape)})`, `headDim ${table.headDim}`);
  if (positions.length !== B * T)
    bad(op, 'positions', `${B * T} entries (batch·seq)`, `${positions.length}`);
  for (let i = 0; i < positions.length; i++) {
    if (positions[i] < 0 || positions[i] >= table.maxPositions) {
      bad(
        op,
        'positions',
        `positions in [0, ${table.maxPositions})`,
        `${positions[i]} at index ${i}`,
        'build the table with a larger maxPositions',
      );
    }
  }
  return run(op, 'rope', { x }, { table, positions });
}

export interface AttentionOptions {
  causal: boolean;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  /** Per-batch first valid key (left padding). */
  keyStart?: Int32Array;
  /**
   * Use only the first keyLen keys of each sequence: k and v are then a KV cache's storage
   * [B, capacity, KVH, D] read in place (no copy per step); Tk = keyLen in the causal rule.
   * Inference only (no gradient through k and v).
   */
  keyLen?: number;
  /**
   * With keyLen: k and v are a head-major KV cache's storage [B, KVH, capacity, D] (each head's
   * keys contiguous: a decoding step reads them about twice as fast) instead of [B, capacity,
   * KVH, D]. Inference only.
   */
  kvHeadMajor?: boolean;
}

/**
 * Fused scaled-dot-product attention. q [B, Tq, H, D], k/v [B, Tk, KVH, D] with H % KVH = 0
 * (grouped-query); query i sits at key position Tk − Tq + i. Returns [B, Tq, H, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const op = 'attention';
  live(op, 'q', q);
  live(op, 'k', k);
  live(op, 'v', v);
  if (q.shape.length !== 4) bad(op, 'q', '[batch, seqQ, heads, headDim]', fmtShape(q.shape));
  const [B, Tq, H, D] = q.shape;
  if (k.shape.length !== 4 || k.shape[0] !== B || k.shape[3] !== D) {
    bad(op, 'k', `[${B}, seqK, kvHeads, ${D}] (q is ${fmtShape(q.shape)})`, fmtShape(k.shape));
  }
  const headMajor = opts.kvHeadMajor === true;
  if (headMajor && opts.keyLen === undefined)
    bad(op, 'kvHeadMajor', 'a KV cache read in place (keyLen given)', 'kvHeadMajor without keyLen');
  const [C, KVH] = headMajor ? [k.shape[2], k.shape[1]] : [k.shape[1], k.shape[2]];
  if (v.shape.join(',') !== k.shape.join(','))
    bad(op, 'v', `the shape of k ${fmtShape(k.shape)}`, fmtShape(v.shape));
  if (KVH === 0 || H % KVH !== 0) bad(op, 'k', `kvHeads dividing heads = ${H}`, `kvHeads = ${KVH}`);
  const Tk = opts.keyLen ?? C;
  if (opts.keyLen !== undefined) {
    if (!Number.isInteger(Tk) || Tk < 0 || Tk > C)
      bad(op, 'keyLen', `an integer in [0, ${C}] (k holds ${C} keys)`, String(opts.keyLen));
    if (isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad))
      bad(op, 'keyLen', 'inference (noGrad, or inputs without grad)', 'a graph being recorded');
  }
  if (Tq > Tk) bad(op, 'q', `seqQ ≤ seqK = ${Tk}`, `seqQ = ${Tq}`);
  if (opts.keyStart && opts.keyStart.length !== B)
    bad(op, 'keyStart', `${B} entries`, `${opts.keyStart.length}`);
  const p: AttentionP = {
    causal: opts.causal,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    keyStart: opts.keyStart,
    keyLen: opts.keyLen,
    kvHeadMajor: headMajor,
  };
  return run(op, 'attention', { q, k, v }, p);
}

function checkIds(
  op: string,
  arg: string,
  ids: Int32Array,
  limit: number,
  allowNegative: boolean,
): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (t >= limit || (t < 0 && !allowNegative)) {
      bad(
        op,
        arg,
        `ids in [0, ${limit})${allowNegative ? ' or < 0 (ignored)' : ''}`,
        `${t} at index ${i}`,
      );
    }
  }
}

/** Rows of table [V, dim] gathered by ids → [...idsShape, dim]; the gradient scatter-adds. */
export function embedding(
  table: Tensor,
  ids: Int32Array,
  idsShape: readonly number[] = [ids.length],
): Tensor {
  const op = 'embedding';
  live(op, 'table', table);
  if (table.shape.length !== 2) bad(op, 'table', '[vocab, dim]', fmtShape(table.shape));
  if (sizeOf(idsShape) !== ids.length)
    bad(op, 'idsShape', `${ids.length} elements (ids.length)`, fmtShape(idsShape));
  checkIds(op, 'ids', ids, table.shape[0], false);
  return run(op, 'embedding', { table }, { ids, idsShape });
}

export interface TokenLogProbOptions {
  /** Rows per chunk; at most chunkRows × V logits exist at once (default: about 8 M logits). */
  chunkRows?: number;
}

function checkHead(op: string, hidden: Tensor, weight: Tensor): void {
  live(op, 'hidden', hidden);
  live(op, 'weight', weight);
  if (hidden.shape.length !== 2) bad(op, 'hidden', '[N, d]', fmtShape(hidden.shape));
  if (weight.shape.length !== 2 || weight.shape[1] !== hidden.shape[1]) {
    bad(
      op,
      'weight',
      `[V, ${hidden.shape[1]}] (hidden is ${fmtShape(hidden.shape)})`,
      fmtShape(weight.shape),
    );
  }
}

/**
 * log softmax(hidden · weightᵀ)[target] for each row: hidden [N, d], weight [V, d] → [N].
 * Computed in row chunks, never holding N×V logits. A target < 0 is ignored (gives 0, no grad).
 */
export function tokenLogProbs(
  hidden: Tensor,
  weight: Tensor | QTensor,
  targets: Int32Array,
  opts: TokenLogProbOptions = {},
): Tensor {
  const op = 'tokenLogProbs';
  let qweight: QuantWeight | undefined;
  if (weight instanceof QTensor) {
    live(op, 'hidden', hidden);
    qweight = quantFor(op, weight, hidden.dtype);
    if (hidden.shape.length !== 2 || hidden.shape[1] !== qweight.cols) {
      bad(
        op,
        'hidden',
        `[N, ${qweight.cols}] (weight is [${weight.shape.join(', ')}])`,
        fmtShape(hidden.shape),
      );
    }
  } else {
    checkHead(op, hidden, weight);
  }
  const [N] = hidden.shape;
  const V = weight.shape[0];
  if (targets.length !== N)
    bad(op, 'targets', `${N} entries (rows of hidden)`, `${targets.length}`);
  checkIds(op, 'targets', targets, V, true);
  const chunkRows = opts.chunkRows ?? Math.max(1, Math.floor(2 ** 23 / Math.max(1, V)));
  if (!Number.isInteger(chunkRows) || chunkRows < 1)
    bad(op, 'chunkRows', 'a positive integer', String(chunkRows));
  // A quantised head is a parameter of the rule, not an input: it gets no gradient.
  return weight instanceof QTensor
    ? run(op, 'tokenLogProbs', { hidden }, { targets, chunkRows, qweight })
    : run(op, 'tokenLogProbs', { hidden, weight }, { targets, chunkRows });
}

/** −mean over non-ignored targets of tokenLogProbs. */
export function crossEntropy(
  hidden: Tensor,
  weight: Tensor,
  targets: Int32Array,
  opts: TokenLogProbOptions = {},
): Tensor {
  const lp = tokenLogProbs(hidden, weight, targets, opts);
  let valid = 0;
  for (const t of targets) if (t >= 0) valid++;
  const s = sum(lp);
  const loss = scale(s, -1 / Math.max(1, valid));
  if (!s.node) s.release();
  if (!lp.node) lp.release();
  return loss;
}

/** hidden [N, d] · weightᵀ → [N, V] logits, without recording a graph (for sampling). */
export function logits(hidden: Tensor, weight: Tensor | QTensor): Tensor {
  if (weight instanceof QTensor) {
    live('logits', 'hidden', hidden);
    if (hidden.shape.length !== 2) bad('logits', 'hidden', '[N, d]', fmtShape(hidden.shape));
    return noGrad(() => qlinear(hidden, weight));
  }
  checkHead('logits', hidden, weight);
  return noGrad(() => matmul(hidden, weight, { transB: true }));
}

// ---- quantised frozen weights (QTensor) ----

/** The blocks of w for `op`, after checking the backend of `dtype` can read its format. */
function quantFor(op: string, w: QTensor, dtype: Tensor['dtype']): QuantWeight {
  if (!(w instanceof QTensor)) bad(op, 'w', 'a QTensor', typeof w);
  const q = w.weightFor(op);
  if (!backendFor(dtype).qsupports(q.type)) {
    throw new UnsupportedError('the backend cannot read this quantised format', {
      where: `${op}${w.name ? ` (${w.name})` : ''}`,
      expected: 'a ggml block type the backend supports',
      found: `ggml type ${q.type}`,
      hint: "load the model with weights: 'float32'",
    });
  }
  return q;
}

/**
 * x [..., in] · dequant(w)ᵀ → [..., out] for a quantised frozen weight w [out, in]: the base
 * product of a linear layer whose model keeps its GGUF blocks. Differentiable in x only.
 */
export function qlinear(x: Tensor, w: QTensor): Tensor {
  const op = 'qlinear';
  live(op, 'x', x);
  const q = quantFor(op, w, x.dtype);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== q.cols) {
    bad(op, 'x', `[..., ${q.cols}] (w is [${q.rows}, ${q.cols}])`, fmtShape(x.shape));
  }
  return run(op, 'qmatmul', { x }, { w: q });
}

/** Rows ids of a quantised table w [vocab, dim] as float32 → [...idsShape, dim] (no gradient). */
export function qembedding(
  w: QTensor,
  ids: Int32Array,
  idsShape: readonly number[] = [ids.length],
): Tensor {
  const op = 'qembedding';
  const q = quantFor(op, w, 'f32');
  if (sizeOf(idsShape) !== ids.length)
    bad(op, 'idsShape', `${ids.length} elements (ids.length)`, fmtShape(idsShape));
  checkIds(op, 'ids', ids, q.rows, false);
  const be = backendFor('f32');
  const out = uninitOn(be, [...idsShape, q.cols], 'f32');
  be.qembedding(q, ids, out.data);
  return out;
}

/** A float32 copy of dequant(w) [rows, cols] (for ops that take no QTensor). */
export function dequantizeWeight(w: QTensor): Tensor {
  const [rows] = w.shape;
  return qembedding(
    w,
    Int32Array.from({ length: rows }, (_, i) => i),
    [rows],
  );
}

// ---- bf16 frozen weights (BTensor: the bf16 compute mode) ----

/**
 * A frozen float32 weight w [rows, cols] rounded to bf16 and laid out for the active backend's
 * bf16 products (BTensor). The caller may release w afterwards: nothing refers to it.
 */
export function toBf16(w: Tensor, name?: string): BTensor {
  const op = 'toBf16';
  live(op, 'w', w);
  if (w.shape.length !== 2 || w.dtype !== 'f32') {
    bad(op, 'w', 'a float32 matrix [rows, cols]', `${w.dtype}${fmtShape(w.shape)}`);
  }
  const [rows, cols] = w.shape;
  return new BTensor(
    backendFor('f32').bf16Pack(w.data as Float32Array, rows, cols),
    name ?? w.name,
  );
}

/**
 * x [..., in] · wᵀ → [..., out] for a bf16 frozen weight w [out, in]: the base product of a
 * linear layer in the bf16 compute mode (x rounded to bf16, fp32 sums). Differentiable in x only.
 */
export function blinear(x: Tensor, w: BTensor): Tensor {
  const op = 'blinear';
  live(op, 'x', x);
  if (!(w instanceof BTensor)) bad(op, 'w', 'a BTensor', typeof w);
  const b = w.weightFor(op);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== b.cols) {
    bad(op, 'x', `[..., ${b.cols}] (w is [${b.rows}, ${b.cols}])`, fmtShape(x.shape));
  }
  return run(op, 'bmatmul', { x }, { w: b });
}

// ---- misc ----

/** Inverted dropout; returns x itself when not training or p = 0. */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  live('dropout', 'x', x);
  if (!(p >= 0 && p < 1)) bad('dropout', 'p', 'a probability in [0, 1)', String(p));
  if (!training || p === 0) return x;
  return run('dropout', 'dropout', { x }, { p, rng });
}

/** Index of the maximum along axis (first on ties) → Int32Array of the shape without that axis. */
export function argmax(x: Tensor, axis: number): Int32Array {
  live('argmax', 'x', x);
  const ax = normAxis('argmax', axis, x.shape.length);
  const outer = sizeOf(x.shape.slice(0, ax));
  const inner = sizeOf(x.shape.slice(ax + 1));
  const out = new Int32Array(outer * inner);
  backendFor(x.dtype).argmax(x.data, outer, x.shape[ax], inner, out);
  return out;
}

/** Convert to another dtype (a copy; float64 lives on the reference backend). */
export function cast(x: Tensor, dtype: 'f32' | 'f64'): Tensor {
  live('cast', 'x', x);
  if (dtype !== 'f32' && dtype !== 'f64') bad('cast', 'dtype', "'f32' or 'f64'", String(dtype));
  return run('cast', 'cast', { x }, { dtype, to: backendFor(dtype) });
}

/** A copy of x with its own storage (differentiable). */
export function clone(x: Tensor): Tensor {
  return run('clone', 'affine', { x }, { s: 1, t: 0 });
}

/**
 * In place: dst[..., start:start + src.shape[axis], ...] = src along axis (not differentiable;
 * for KV caches and other preallocated buffers). dst must not require grad.
 */
export function assignSlice(dst: Tensor, src: Tensor, axis: number, start: number): void {
  const op = 'assignSlice';
  live(op, 'dst', dst);
  live(op, 'src', src);
  if (dst.requiresGrad) {
    bad(op, 'dst', 'a tensor that does not require grad', `${dst.describe()} with requiresGrad`);
  }
  if (src.dtype !== dst.dtype) bad(op, 'src', `dtype ${dst.dtype}`, src.dtype);
  const r = dst.shape.length;
  const ax = normAxis(op, axis, r);
  const len = src.shape[ax] ?? 0;
  const ok =
    src.shape.length === r &&
    src.shape.every((d, i) => i === ax || d === dst.shape[i]) &&
    Number.isInteger(start) &&
    start >= 0 &&
    start + len <= dst.shape[ax];
  if (!ok) {
    bad(
      op,
      'src',
      `a shape like dst ${fmtShape(dst.shape)} except on axis ${ax}, fitting from ${start}`,
      fmtShape(src.shape),
    );
  }
  const ds = stridesOf(dst.shape);
  backendFor(dst.dtype).copyStrided(
    src.data,
    0,
    stridesOf(src.shape),
    dst.data,
    start * ds[ax],
    ds,
    src.shape,
  );
}
