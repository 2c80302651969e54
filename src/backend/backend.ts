// The Backend interface: the primitive kernels every tensor op is built from.
//
// A backend knows nothing of Tensor or autograd. It works on contiguous row-major typed arrays
// (Float32Array, and Float64Array on the reference backend) and writes into caller-provided
// outputs, so the native backend can run zero-copy on the same memory.
//
// `reference` (src/backend/reference/) defines the semantics with plain loops. `native`
// (src/backend/native/, C++ in native/) must agree with it within each op's tolerance. A new op
// is added here and in reference first, and made fast later (until then the native binding can
// hand it to the reference backend, its one fallback, which also runs every float64 buffer).
//
// Conventions:
// - Shapes are plain number arrays; strides are in elements.
// - Every kernel that takes `out` overwrites it, unless `accumulate: true` says out += result.
// - Kernels never allocate their output; `alloc` is the only allocation entry point.
// - `binary`, `unary`, `affine` and `softmax` must accept `out` equal to an input (in place):
//   tokenLogProbs' backward turns its logits chunk into scaled probabilities in place.
// - Buffers may be `subarray` views (non-zero byteOffset), e.g. row chunks passed to `matmul`,
//   and may come from another backend's `alloc` or from plain JavaScript memory.

export type DType = 'f32' | 'f64';
export type Buf = Float32Array | Float64Array;

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'eq' | 'gt';
export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'sigmoid'
  | 'silu'
  | 'tanh'
  | 'relu'
  | 'abs'
  | 'square'
  | 'recip';
export type ReduceOp = 'sum' | 'max';

export interface MatmulParams {
  /** Number of independent matrix products. */
  batch: number;
  /** out[b] (m×n) = alpha · op(a[b]) (m×k) · op(b[b]) (k×n)  (+ out[b] if accumulate). */
  m: number;
  k: number;
  n: number;
  /** a is stored k×m (so op(a) = aᵀ). */
  transA: boolean;
  /** b is stored n×k (so op(b) = bᵀ). */
  transB: boolean;
  /** Elements between consecutive batch matrices; 0 broadcasts one matrix to every batch. */
  strideA: number;
  strideB: number;
  strideOut: number;
  alpha?: number;
  accumulate?: boolean;
}

export interface RopeParams {
  /** x is [batch, seq, heads, headDim], rotate-half layout (HF Llama/Qwen2). */
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Absolute position of each (batch, seq) row: Int32Array of batch·seq. */
  positions: Int32Array;
  /** Tables [maxPosition, headDim/2]: cos(pos·invFreq[i]) and sin(...), built by the tensor layer. */
  cos: Buf;
  sin: Buf;
  /** Rotate by −angle: the backward of rope is rope with inverse = true. */
  inverse: boolean;
}

export interface AttentionParams {
  /** q: [batch, seqQ, heads, headDim]; k, v: [batch, seqK, kvHeads, headDim]; out like q. */
  batch: number;
  seqQ: number;
  seqK: number;
  heads: number;
  /** heads % kvHeads === 0; query head h reads KV head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  headDim: number;
  /** Usually 1/sqrt(headDim). */
  scale: number;
  /** Query i sits at absolute key position (seqK − seqQ + i) and sees keys j ≤ that position. */
  causal: boolean;
  /**
   * Optional per-batch first valid key (left padding in batched generation): keys j < keyStart[b]
   * are masked. Query rows that see no key at all produce zeros.
   */
  keyStart?: Int32Array;
  /**
   * Optional elements between batch entries of k and v (default seqK·kvHeads·headDim, i.e.
   * contiguous). A KV cache of capacity C ≥ seqK passes C·kvHeads·headDim so attention reads the
   * first seqK keys of each sequence in place instead of a copy. Forward only: the backward
   * requires contiguous k and v.
   */
  kvStride?: number;
  /**
   * Optional elements between consecutive keys of one KV head (default kvHeads·headDim: k and v
   * are [batch, seqK, kvHeads, headDim]) and between KV heads (default headDim). A head-major KV
   * cache [batch, kvHeads, capacity, headDim] passes headDim and capacity·headDim: each head's
   * keys are then contiguous, which a decoding step reads about twice as fast. Forward only.
   */
  kvRowStride?: number;
  kvHeadStride?: number;
}

/**
 * A 2-D weight kept in a ggml block-quantised format exactly as GGUF stores it (the frozen base
 * weights of a model loaded with `weights: 'quantized'`): `rows` rows of `cols` values; each row
 * is cols / blockSize blocks of typeSize bytes, rows contiguous. Its values are by definition the
 * float32 numbers ggml's dequantize_row_* gives (src/backend/quant.ts is that definition), so
 * arithmetic on it equals arithmetic on the dequantised float32 matrix up to summation order.
 */
export interface QuantWeight {
  /** ggml type id (GgmlType in src/io/gguf/types.ts: Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7,
   * Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, F16 = 1, BF16 = 30). */
  type: number;
  rows: number;
  cols: number;
  /** rows · (cols / blockSize) · typeSize bytes. */
  data: Uint8Array;
}

/**
 * A frozen 2-D weight W [rows, cols] rounded to bf16 (round to nearest even) for the bf16 compute
 * mode: its values are by definition those bf16 numbers, and a product with it rounds the other
 * operand to bf16 too and sums in fp32 (or wider). `layout` says which backend laid the words
 * out; the reference kernels read every layout (src/backend/reference/bf16.ts is the definition
 * of both), a fast kernel only its own.
 *
 * - 'rows': row-major, two bf16 values per 32-bit word (low half first), rows · ⌈cols/2⌉ words.
 * - 'native-panels': native/gemm_bf16.cc's packing of Wᵀ (k = cols, n = rows) for x·Wᵀ.
 */
export interface Bf16Weight {
  rows: number;
  cols: number;
  layout: 'rows' | 'native-panels';
  data: Uint32Array;
  /**
   * 'native-panels' only: the packing of W itself (k = rows, n = cols) for the input gradient
   * g·W, made from `data` (the same bf16 values) by the first bf16MatmulT: a weight used only
   * for inference never holds it.
   */
  dataT?: Uint32Array;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** Which dtypes the kernels accept; the tensor layer routes others to the reference backend. */
  supports(dtype: DType): boolean;

  // ---- memory ----
  /** A zero-filled buffer. Native: 64-byte aligned memory that release() frees at once. */
  alloc(dtype: DType, length: number): Buf;
  /** Free memory from alloc() now (the buffer is detached: later use reads length 0, never a crash). */
  release(buf: Buf): void;

  // ---- data movement ----
  /** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides] over `shape`. Permute, slice, concat, expand. */
  copyStrided(
    src: Buf,
    srcOffset: number,
    srcStrides: readonly number[],
    dst: Buf,
    dstOffset: number,
    dstStrides: readonly number[],
    shape: readonly number[],
  ): void;
  fill(out: Buf, value: number): void;

  // ---- linear algebra ----
  matmul(a: Buf, b: Buf, out: Buf, p: MatmulParams): void;

  // ---- elementwise ----
  /** out[i] = op(a[ia], b[ib]) with broadcasting: aStrides/bStrides are over outShape (0 = broadcast). */
  binary(
    op: BinaryOp,
    a: Buf,
    aStrides: readonly number[],
    b: Buf,
    bStrides: readonly number[],
    out: Buf,
    outShape: readonly number[],
  ): void;
  unary(op: UnaryOp, x: Buf, out: Buf): void;
  /** gx = gy · d op(x)/dx, given x and y = op(x) (whichever the rule needs). accumulate adds into gx. */
  unaryBackward(op: UnaryOp, x: Buf, y: Buf, gy: Buf, gx: Buf, accumulate: boolean): void;
  /** out = x · s + t. */
  affine(x: Buf, s: number, t: number, out: Buf): void;

  // ---- reductions over the middle axis of [outer, axis, inner] → [outer, inner] ----
  reduce(op: ReduceOp, x: Buf, outer: number, axis: number, inner: number, out: Buf): void;

  // ---- fused rows (last axis) ----
  /** Row-wise softmax or log-softmax of [rows, cols]. */
  softmax(x: Buf, rows: number, cols: number, out: Buf, log: boolean): void;
  /** Backward of softmax given its output y: gx = y·(gy − Σ gy·y) (softmax) or gy − softmax·Σgy (log). */
  softmaxBackward(y: Buf, gy: Buf, rows: number, cols: number, gx: Buf, log: boolean): void;
  /** Row-wise log Σ exp(x) of [rows, cols] → [rows]. */
  logsumexp(x: Buf, rows: number, cols: number, out: Buf): void;
  /** y = x · rsqrt(mean(x²) + eps) · w over rows of width cols; rstd [rows] saved for backward. */
  rmsnorm(x: Buf, w: Buf, rows: number, cols: number, eps: number, out: Buf, rstd: Buf): void;
  /** gx (overwritten) and gw (accumulated, may be null when w is frozen). */
  rmsnormBackward(
    x: Buf,
    w: Buf,
    rstd: Buf,
    gy: Buf,
    rows: number,
    cols: number,
    gx: Buf,
    gw: Buf | null,
  ): void;

  // ---- transformer pieces ----
  rope(x: Buf, out: Buf, p: RopeParams): void;
  /** Fused attention. lse [batch, heads, seqQ] is saved for the backward (flash-attention style). */
  attention(q: Buf, k: Buf, v: Buf, out: Buf, lse: Buf, p: AttentionParams): void;
  /** Gradients gq, gk, gv (overwritten) by recomputing scores tile by tile; no seqQ×seqK matrix kept. */
  attentionBackward(
    q: Buf,
    k: Buf,
    v: Buf,
    out: Buf,
    lse: Buf,
    gOut: Buf,
    gq: Buf,
    gk: Buf,
    gv: Buf,
    p: AttentionParams,
  ): void;
  /** out[i, :] = table[ids[i], :]. */
  embedding(table: Buf, ids: Int32Array, dim: number, out: Buf): void;
  /** gTable[ids[i], :] += gOut[i, :]. */
  embeddingBackward(gOut: Buf, ids: Int32Array, dim: number, gTable: Buf): void;

  // ---- optimiser ----
  /** Decoupled-weight-decay Adam, in place on param, m, v. */
  adamw(param: Buf, grad: Buf, m: Buf, v: Buf, p: AdamWParams): void;

  // ---- added by the engine after the first interface (optional: a backend that lacks one gets
  // the reference implementation through withFallback() in src/backend/index.ts) ----
  /** Index of the maximum over the middle axis of [outer, axis, inner] → out [outer, inner] (first on ties). */
  argmax?(x: Buf, outer: number, axis: number, inner: number, out: Int32Array): void;
  /** Bytes currently allocated by alloc() and not yet release()d (memory accounting, leak tests). */
  liveBytes?(): number;
  /**
   * Return released memory that the backend keeps for reuse to the OS (the native buffer pool);
   * returns the bytes freed. Called after a model load, whose replaced placeholders would
   * otherwise stay pooled.
   */
  trimPool?(): number;
  /**
   * Set the cap of that pool in MiB (0 turns it off); returns the previous cap. A trainer raises
   * it so that a step's activations are reused from the previous step rather than page-faulted
   * in fresh every step. Absent where the backend has no pool.
   */
  setPoolCapMb?(mb: number): number;
  /**
   * Like alloc, but the contents are unspecified (not zero-filled): for outputs a kernel
   * overwrites entirely. Saves a pass over memory per op; the native backend reuses released
   * blocks, so this is recycled memory. A backend without it gets its own alloc (withFallback).
   */
  allocUninit?(dtype: DType, length: number): Buf;

  // ---- quantised frozen weights (QuantWeight) ----
  /** Whether qmatmul/qmatmulT/qembedding accept weights of this ggml type. */
  qsupports?(type: number): boolean;
  /** out [m, w.rows] = x [m, w.cols] · dequant(w)ᵀ (+ out when accumulate): a linear layer. */
  qmatmul?(x: Buf, w: QuantWeight, out: Buf, m: number, accumulate: boolean): void;
  /** out [m, w.cols] = g [m, w.rows] · dequant(w) (+ out when accumulate): qmatmul's input gradient. */
  qmatmulT?(g: Buf, w: QuantWeight, out: Buf, m: number, accumulate: boolean): void;
  /** out [n, w.cols]: row ids[i] of dequant(w) (an embedding table kept quantised). */
  qembedding?(w: QuantWeight, ids: Int32Array, out: Buf): void;

  // ---- bf16 frozen weights (Bf16Weight: the bf16 compute mode) ----
  /** W [rows, cols] (float32, row-major) rounded to bf16 in this backend's layout. */
  bf16Pack?(w: Float32Array, rows: number, cols: number): Bf16Weight;
  /** out [m, w.rows] = bf16(x) [m, w.cols] · wᵀ (+ out when accumulate), fp32 sums. */
  bf16Matmul?(x: Buf, w: Bf16Weight, out: Buf, m: number, accumulate: boolean): void;
  /** out [m, w.cols] = bf16(g) [m, w.rows] · w (+ out when accumulate): bf16Matmul's dx. */
  bf16MatmulT?(g: Buf, w: Bf16Weight, out: Buf, m: number, accumulate: boolean): void;
  /**
   * Whether bf16Pack gives a layout with a fast kernel behind it (a bf16 unit): false on the
   * reference backend and on a CPU without one, where the bf16 compute mode falls back to fp32.
   */
  bf16Fast?(): boolean;
}

/** A backend with every optional kernel present (what the tensor layer calls). */
export type FullBackend = Required<Backend>;
