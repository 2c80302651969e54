// Reference kernels on quantised weights (QuantWeight): each row of w is decoded to float32 with
// the definition in ../quant.ts, then used like a row of a float32 matrix. Sums are kept in
// float64, as in the reference matmul.
import type { Buf, QuantWeight } from '../backend.js';
import { QUANT_BLOCKS, decodeBlocks } from '../quant.js';

export function qsupports(type: number): boolean {
  return QUANT_BLOCKS.has(type);
}

/** Bytes of one row of w. */
function rowBytes(w: QuantWeight): number {
  const info = QUANT_BLOCKS.get(w.type);
  if (!info) throw new Error(`quantised kernels: ggml type ${w.type} is not supported`);
  if (w.cols % info.blockSize !== 0) {
    throw new Error(`quantised kernels: ${w.cols} columns is not a multiple of ${info.blockSize}`);
  }
  return (w.cols / info.blockSize) * info.typeSize;
}

/** Row r of dequant(w) into dst (length ≥ w.cols). */
function decodeRow(w: QuantWeight, r: number, dst: Float32Array): void {
  const rb = rowBytes(w);
  decodeBlocks(w.type, w.data.subarray(r * rb, (r + 1) * rb), w.cols, dst, 0);
}

export function qmatmul(x: Buf, w: QuantWeight, out: Buf, m: number, accumulate: boolean): void {
  const { rows: n, cols: k } = w;
  const row = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    decodeRow(w, j, row);
    for (let i = 0; i < m; i++) {
      let s = 0;
      const xo = i * k;
      for (let q = 0; q < k; q++) s += x[xo + q] * row[q];
      out[i * n + j] = accumulate ? out[i * n + j] + s : s;
    }
  }
}

export function qmatmulT(g: Buf, w: QuantWeight, out: Buf, m: number, accumulate: boolean): void {
  const { rows: n, cols: k } = w;
  const acc = new Float64Array(m * k);
  const row = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    decodeRow(w, j, row);
    for (let i = 0; i < m; i++) {
      const gij = g[i * n + j];
      if (gij === 0) continue;
      const ao = i * k;
      for (let q = 0; q < k; q++) acc[ao + q] += gij * row[q];
    }
  }
  for (let t = 0; t < m * k; t++) out[t] = accumulate ? out[t] + acc[t] : acc[t];
}

export function qembedding(w: QuantWeight, ids: Int32Array, out: Buf): void {
  const k = w.cols;
  const row = new Float32Array(k);
  for (let i = 0; i < ids.length; i++) {
    decodeRow(w, ids[i], row);
    for (let q = 0; q < k; q++) out[i * k + q] = row[q];
  }
}
