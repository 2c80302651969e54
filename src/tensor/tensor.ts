// Tensor, its storage and lifetime, and the autograd engine (the tape and the backward pass).
//
// Lifetime: a tensor's memory is a reference-counted Storage from a backend's alloc(). Views
// (reshape, detach) share the storage. release() drops this tensor's reference at once; the last
// reference frees the buffer on its backend. A FinalizationRegistry drops the reference of a
// tensor that was garbage-collected without release(), as a safety net for native memory.
//
// Autograd: an op whose inputs require grad records a Node on its output (the tape is the graph
// of nodes). backward() walks the nodes in reverse topological order, calls each node's backward
// closure (the rules live in rules.ts, each beside its forward), accumulates gradients into the
// .grad of leaf tensors, and releases every intermediate the pass no longer needs: gradients of
// non-leaves, saved auxiliaries (lse, rstd, masks), the outputs of the nodes it consumed and the
// op outputs that fed the graph without a grad path (activations of frozen layers). Call keep()
// on an op output to read it after backward() or to reuse it across steps.
//
// Activation trimming (trimActivations, used per decoder layer by models/model.ts runLayers): each
// node carries what its backward reads (Reads, declared by its rule); after a layer's forward the
// buffers of the layer's intermediates that no backward reads are freed at once, instead of when
// backward() ends, while their Tensor and Node objects stay for the graph walk.
import { AsyncLocalStorage } from 'node:async_hooks';
import { getBackend, referenceBackend } from '../backend/index.js';
import type { Buf, DType, FullBackend } from '../backend/backend.js';
import { NumericError, ReleasedTensorError, Rl4qeError, ShapeError } from '../util/errors.js';

interface Storage {
  buf: Buf;
  /** The backend that allocated buf (release goes there); null when the caller owns the memory. */
  owner: FullBackend | null;
  refs: number;
}

/** One tensor's claim on a storage; shared with the finalizer, which must not hold the tensor. */
interface Claim {
  storage: Storage;
  done: boolean;
}

function dropClaim(c: Claim): void {
  if (c.done) return;
  c.done = true;
  const s = c.storage;
  s.refs--;
  if (s.refs === 0 && s.owner) s.owner.release(s.buf);
}

const finalizer = new FinalizationRegistry<Claim>(dropClaim);

/**
 * Which buffers a node's backward reads: inputs[i] for input i's data, out for its own output's.
 * Shapes are always available; only the data counts. A rule that declares nothing reads all.
 */
export interface Reads {
  inputs: readonly boolean[];
  out: boolean;
}

/** A recorded op: what backward() needs to send gradients to the op's inputs. */
export interface Node {
  op: string;
  inputs: Tensor[];
  /** needs[i]: input i requires a gradient. */
  needs: boolean[];
  /** What the backward reads given `needs`; null: undeclared, so every input and the output. */
  reads: Reads | null;
  /** Gradients for each input (null where not needed), given the gradient of the output. */
  backward: (g: Tensor) => (Tensor | null)[];
  /** Auxiliary tensors owned by the node (released after its backward). */
  saved: Tensor[];
}

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
  name?: string;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  name?: string;
  /** The op that produced this tensor, while its graph is alive (null for leaves). */
  node: Node | null = null;
  /** Kept tensors survive the release of intermediates at the end of backward(). */
  kept = false;
  /** Produced by an op (an intermediate), rather than by a creation function (a leaf). */
  fromOp = false;
  /** Set on a root whose graph backward() consumed (a second backward() is an error). */
  consumed = false;
  /** Set when trimActivations freed the buffer (the tensor stays in the graph): for the error. */
  private trimmed = false;
  private claim: Claim | null;

  /** Internal: use the creation functions (tensor, zeros, fromBuf, ...). */
  constructor(storage: Storage, shape: readonly number[], dtype: DType) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    storage.refs++;
    this.claim = { storage, done: false };
    finalizer.register(this, this.claim, this.claim);
    if (scopes.length > 0) scopes[scopes.length - 1].push(this);
  }

  get released(): boolean {
    return this.claim === null;
  }

  /** Contiguous row-major data; throws ReleasedTensorError after release(). */
  get data(): Buf {
    return this.storageFor('data').buf;
  }

  /** Internal: the storage, or a ReleasedTensorError naming the op that tried to use it. */
  storageFor(op: string): Storage {
    if (this.claim === null && this.trimmed) {
      // A rule read data its Reads declaration says it never reads (or a layer's intermediate
      // was used outside the layer): the declaration in rules.ts is the thing to fix.
      throw new ReleasedTensorError('tensor used after trimActivations freed its buffer', {
        where: `${op}: tensor ${this.describe()}`,
        hint:
          "the buffer was freed after its decoder layer's forward because no recorded backward " +
          "declared reading it: fix the op's `reads` in src/tensor/rules.ts, or keep() a " +
          'layer intermediate that is read after the layer (RL4QE_TRIM_ACTIVATIONS=0 turns ' +
          'trimming off)',
      });
    }
    if (this.claim === null) {
      throw new ReleasedTensorError('tensor used after release()', {
        where: `${op}: tensor ${this.describe()}`,
        hint:
          'intermediates are released by backward(); read them before backward() or call ' +
          'keep() on them, and do not use a tensor after calling release() on it',
      });
    }
    return this.claim.storage;
  }

  /** Internal: the backend that owns this tensor's memory (reference for caller-owned memory). */
  get owner(): FullBackend {
    return this.storageFor('owner').owner ?? referenceBackend;
  }

  /** Internal: true when no other tensor shares this storage (safe to update in place). */
  get exclusive(): boolean {
    return this.claim !== null && this.claim.storage.refs === 1;
  }

  describe(): string {
    return `${this.name ? `'${this.name}' ` : ''}${this.dtype}${fmtShape(this.shape)}`;
  }

  item(): number {
    if (this.size !== 1) {
      throw new ShapeError('item() needs a tensor with exactly one element', {
        where: `item: tensor ${this.describe()}`,
        expected: 'size 1',
        found: `size ${this.size}`,
      });
    }
    return this.data[0];
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /** Mark this tensor to survive backward()'s release of intermediates. Returns this. */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** Free this tensor's memory now (and its gradient). Idempotent. */
  release(): void {
    if (this.claim) {
      finalizer.unregister(this.claim);
      dropClaim(this.claim);
      this.claim = null;
    }
    this.node = null;
    if (this.grad) {
      this.grad.release();
      this.grad = null;
    }
  }

  /**
   * Internal (trimActivations): drop this tensor's buffer but keep its node and requiresGrad, so
   * backward() still walks through it; its data must never be read again.
   */
  trimBuffer(): void {
    if (!this.claim) return;
    finalizer.unregister(this.claim);
    dropClaim(this.claim);
    this.claim = null;
    this.trimmed = true;
  }

  /** A tensor sharing this one's data, outside the graph. */
  detach(): Tensor {
    return new Tensor(this.storageFor('detach'), this.shape, this.dtype);
  }

  /** Internal: a tensor sharing this one's data with another shape of the same size. */
  view(shape: readonly number[]): Tensor {
    return new Tensor(this.storageFor('view'), shape, this.dtype);
  }

  zeroGrad(): void {
    if (this.grad) {
      this.grad.release();
      this.grad = null;
    }
  }

  /**
   * Reverse-mode differentiation from this tensor. Without `grad` the tensor must have one
   * element (a loss); gradients accumulate into the .grad of leaves with requiresGrad.
   * The graph is consumed: intermediates are released (see keep()).
   */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }
}

// ---- tidy scopes ----

const scopes: Tensor[][] = [];

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (v instanceof Tensor) out.add(v);
  else if (depth < 4 && Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (depth < 4 && v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    for (const x of Object.values(v)) collectTensors(x, out, depth + 1);
  }
}

/**
 * Run fn (synchronous) and release every tensor created inside it except: the tensors it returns
 * (directly, or in arrays/objects), everything their graphs still need for backward(), kept
 * tensors and leaves with requiresGrad (parameters).
 */
export function tidy<T>(fn: () => T): T {
  scopes.push([]);
  let created: Tensor[];
  let result: T;
  try {
    result = fn();
  } finally {
    created = scopes.pop() ?? [];
  }
  const spare = new Set<Tensor>();
  collectTensors(result, spare);
  const stack = [...spare];
  while (stack.length > 0) {
    const t = stack.pop() as Tensor;
    if (t.grad) spare.add(t.grad);
    const n = t.node;
    if (!n) continue;
    for (const x of [...n.inputs, ...n.saved]) {
      if (!spare.has(x)) {
        spare.add(x);
        stack.push(x);
      }
    }
  }
  // Leaf gradients are kept (runBackward marks them), so tidy(() => loss.backward()) is safe.
  for (const t of created) {
    if (spare.has(t) || t.kept || (t.requiresGrad && !t.fromOp)) continue;
    t.release();
  }
  // Tensors returned from an inner tidy belong to the enclosing one.
  if (scopes.length > 0) {
    const made = new Set(created);
    for (const t of spare) if (made.has(t)) scopes[scopes.length - 1].push(t);
  }
  return result;
}

// ---- activation trimming ----

let trimOn = process.env.RL4QE_TRIM_ACTIVATIONS !== '0';

/** Turn trimActivations on or off (default on; RL4QE_TRIM_ACTIVATIONS=0 turns it off). */
export function setTrimActivations(on: boolean): void {
  trimOn = on;
}

export function isTrimActivationsEnabled(): boolean {
  return trimOn;
}

/**
 * Run fn (synchronous: one decoder layer's forward, under the tape) and free at once the buffers
 * of the intermediates it created that no recorded backward reads. Without this every
 * intermediate lives until backward() ends although, with a frozen base, over half of them are
 * never read again (a projection's output feeding add, RoPE's input, the MLP's down-projection
 * input: see each rule's `reads`). Freed: op outputs created inside fn that some node recorded
 * inside fn takes as input, that no such node's backward reads (nor saves), and that are not
 * fn's result and not kept. Their Tensor and Node stay, so backward() still walks through them;
 * a view shares its base's storage, which goes only with the last tensor on it, so a view that
 * is read keeps the buffer. Reading a freed buffer throws ReleasedTensorError saying why.
 *
 * The caller promises that fn's intermediates are read after fn only through its result and its
 * graph (true of a decoder layer; a KV cache under the tape captures k and v, which attention
 * reads, so they stay). A tensor that is consumed by no recorded node is never freed here (it
 * may have escaped: a frozen layer's captured k/v), nor are tensors created before fn.
 */
export function trimActivations(fn: () => Tensor): Tensor {
  if (!trimOn || !isGradEnabled()) return fn();
  scopes.push([]);
  let created: Tensor[];
  let out: Tensor;
  try {
    out = fn();
  } finally {
    created = scopes.pop() ?? [];
    // The enclosing tidy still owns everything created here.
    if (scopes.length > 0) {
      const outer = scopes[scopes.length - 1];
      for (const t of created) outer.push(t);
    }
  }
  const consumed = new Set<Tensor>();
  const read = new Set<Tensor>();
  for (const t of created) {
    const n = t.node;
    if (!n) continue;
    const r = n.reads;
    n.inputs.forEach((x, i) => {
      consumed.add(x);
      if (!r || r.inputs[i]) read.add(x);
    });
    if (!r || r.out) read.add(t);
    for (const s of n.saved) read.add(s);
  }
  for (const t of created) {
    if (t === out || t.kept || !t.fromOp || !consumed.has(t) || read.has(t)) continue;
    t.trimBuffer();
  }
  return out;
}

// ---- memory helpers used by rules and creation functions ----

/** The backend that runs ops of this dtype: float64 always on reference. */
export function backendFor(dtype: DType): FullBackend {
  if (dtype === 'f64') return referenceBackend;
  const b = getBackend();
  return b.supports('f32') ? b : referenceBackend;
}

/** A zero-filled tensor allocated on `be`. */
export function emptyOn(be: FullBackend, shape: readonly number[], dtype: DType): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError('invalid shape', {
        where: 'alloc',
        expected: 'non-negative integer dimensions',
        found: fmtShape(shape),
      });
    }
  }
  const buf = be.alloc(dtype, sizeOf(shape));
  return new Tensor({ buf, owner: be, refs: 0 }, shape, dtype);
}

/**
 * Like emptyOn, for an output the kernel overwrites entirely: the memory is not zero-filled
 * (recycled native memory). With the NaN check on it is filled with NaN instead, so an element a
 * kernel failed to write is reported as that op's NaN.
 */
export function uninitOn(be: FullBackend, shape: readonly number[], dtype: DType): Tensor {
  if (checkNan) {
    const t = emptyOn(be, shape, dtype);
    t.data.fill(NaN);
    return t;
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError('invalid shape', {
        where: 'alloc',
        expected: 'non-negative integer dimensions',
        found: fmtShape(shape),
      });
    }
  }
  const buf = be.allocUninit(dtype, sizeOf(shape));
  return new Tensor({ buf, owner: be, refs: 0 }, shape, dtype);
}

/** Wrap a caller-owned buffer (no copy; release() does not free it). */
export function wrapBuf(buf: Buf, shape: readonly number[]): Tensor {
  return new Tensor(
    { buf, owner: null, refs: 0 },
    shape,
    buf instanceof Float64Array ? 'f64' : 'f32',
  );
}

// ---- grad mode ----

const gradMode = new AsyncLocalStorage<boolean>();

export function isGradEnabled(): boolean {
  return gradMode.getStore() ?? true;
}

/** Run fn (sync or async) with gradient recording off; ops inside record no graph. */
export function noGrad<T>(fn: () => T): T {
  return gradMode.run(false, fn);
}

/** Run fn with gradient recording on (inside a noGrad scope). */
export function enableGrad<T>(fn: () => T): T {
  return gradMode.run(true, fn);
}

// ---- NaN/Inf checks (RL4QE_CHECK_NAN=1) ----

let checkNan = process.env.RL4QE_CHECK_NAN === '1';

/** Turn the NaN/Inf check of every op's output on or off (default: RL4QE_CHECK_NAN=1). */
export function setCheckNan(on: boolean): void {
  checkNan = on;
}

export function isCheckNanEnabled(): boolean {
  return checkNan;
}

export function assertFinite(op: string, t: Tensor): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      throw new NumericError(`${Number.isNaN(d[i]) ? 'NaN' : 'Inf'} produced by op ${op}`, {
        where: op,
        expected: 'finite values (RL4QE_CHECK_NAN=1)',
        found: `${d[i]} at element ${i} of ${t.describe()}`,
        hint: 'this is the first op whose output was not finite; check its inputs',
      });
    }
  }
}

// ---- the tape ----

/** What a rule's forward returns: the output, and (for differentiable ops) its backward. */
export interface Forward {
  out: Tensor;
  /** Auxiliaries the backward needs and the node owns (released with the node). */
  saved?: Tensor[];
  backward?: (g: Tensor) => (Tensor | null)[];
  /**
   * What backward reads, given which inputs need a gradient (the rule's own branches on
   * requiresGrad must agree). Omitted: everything (safe, but keeps every input alive).
   */
  reads?: (needs: readonly boolean[]) => Reads;
}

/**
 * Run one primitive: `forward` computes the output; if any input requires grad and grad mode is
 * on, a node is recorded so backward() can call the rule's backward later.
 */
export function record(op: string, inputs: Tensor[], f: Forward): Tensor {
  const out = f.out;
  out.fromOp = true;
  if (checkNan) assertFinite(op, out);
  const needs = inputs.map((x) => x.requiresGrad);
  if (f.backward && isGradEnabled() && needs.some((n) => n)) {
    const reads = f.reads ? f.reads(needs) : null;
    out.node = { op, inputs, needs, reads, backward: f.backward, saved: f.saved ?? [] };
    out.requiresGrad = true;
  } else if (f.saved) {
    for (const s of f.saved) s.release();
  }
  return out;
}

function topoOrder(root: Node): Node[] {
  // Iterative DFS post-order (graphs of a deep model are too deep for recursion).
  const order: Node[] = [];
  const visited = new Set<Node>([root]);
  const stack: [Node, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i].node;
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order.reverse();
}

/** dst += src, in place when dst owns its storage; returns the tensor holding the sum. */
function accumulate(dst: Tensor, src: Tensor): Tensor {
  const be = backendFor(dst.dtype);
  const shape = dst.shape;
  const strides = stridesOf(shape);
  if (dst.exclusive) {
    be.binary('add', dst.data, strides, src.data, strides, dst.data, shape);
    src.release();
    return dst;
  }
  const sum = uninitOn(be, shape, dst.dtype);
  be.binary('add', dst.data, strides, src.data, strides, sum.data, shape);
  dst.release();
  src.release();
  return sum;
}

function copyOf(t: Tensor): Tensor {
  const c = emptyOn(backendFor(t.dtype), t.shape, t.dtype);
  c.data.set(t.data);
  return c;
}

function runBackward(root: Tensor, grad?: Tensor): void {
  if (grad === undefined && root.size !== 1) {
    throw new ShapeError('backward() without a gradient needs a one-element tensor', {
      where: `backward: tensor ${root.describe()}`,
      expected: 'size 1 (a loss), or pass the output gradient',
      found: `size ${root.size}`,
    });
  }
  if (grad !== undefined && (grad.dtype !== root.dtype || sizeOf(grad.shape) !== root.size)) {
    throw new ShapeError('backward(grad): grad must match the tensor', {
      where: `backward: tensor ${root.describe()}`,
      expected: `${root.dtype}${fmtShape(root.shape)}`,
      found: `${grad.dtype}${fmtShape(grad.shape)}`,
    });
  }
  root.storageFor('backward');
  if (root.consumed) {
    throw new Rl4qeError('backward() called twice on the same graph', {
      where: `backward: tensor ${root.describe()}`,
      hint: 'the first backward() consumed the graph (its intermediates are released); recompute the forward pass',
    });
  }
  const seed =
    grad !== undefined ? copyOf(grad) : emptyOn(backendFor(root.dtype), root.shape, root.dtype);
  if (grad === undefined) seed.data[0] = 1;
  if (!root.node) {
    if (!root.requiresGrad) {
      seed.release();
      throw new Rl4qeError('backward() on a tensor that does not require grad', {
        where: `backward: tensor ${root.describe()}`,
        hint: 'set requiresGrad on the parameters and compute the loss outside noGrad()',
      });
    }
    root.grad = root.grad ? accumulate(root.grad, seed) : seed;
    root.grad.kept = true;
    return;
  }
  root.consumed = true;
  const grads = new Map<Node, Tensor>([[root.node, seed]]);
  const outputs = new Map<Node, Tensor>([[root.node, root]]);
  const order = topoOrder(root.node);
  // Op outputs that feed the graph without a grad path of their own (e.g. activations of frozen
  // layers) are intermediates too: released at the end of the pass.
  const inert = new Set<Tensor>();
  for (const node of order) {
    for (const x of node.inputs) {
      if (x.node) outputs.set(x.node, x);
      else if (x.fromOp && x !== root && !x.kept) inert.add(x);
    }
  }
  for (const node of order) {
    const g = grads.get(node);
    grads.delete(node);
    if (g) {
      const gs = node.backward(g);
      g.release();
      for (let i = 0; i < node.inputs.length; i++) {
        const gi = gs[i];
        if (!gi) continue;
        if (!node.needs[i]) {
          gi.release();
          continue;
        }
        if (checkNan) assertFinite(`${node.op} (backward)`, gi);
        const x = node.inputs[i];
        if (x.node) {
          const prev = grads.get(x.node);
          grads.set(x.node, prev ? accumulate(prev, gi) : gi);
        } else if (x.requiresGrad) {
          // A leaf's .grad is handed to the user: give it storage of its own.
          const own = gi.exclusive ? gi : copyOf(gi);
          if (own !== gi) gi.release();
          x.grad = x.grad ? accumulate(x.grad, own) : own;
          x.grad.kept = true;
        } else {
          gi.release();
        }
      }
    }
    // The node is consumed: free what it saved and the intermediate it produced.
    for (const s of node.saved) s.release();
    const out = outputs.get(node);
    if (out) {
      // Its graph is gone: what survives (the root, kept tensors) is a constant from now on.
      out.node = null;
      out.requiresGrad = false;
      if (out !== root && !out.kept) out.release();
    }
    node.inputs = [];
    node.saved = [];
  }
  for (const x of inert) x.release();
}
