// Row-wise fused kernels of the reference backend: softmax, log-softmax, logsumexp, RMSNorm.
// Every row is [cols] contiguous; sums are taken in float64.
import type { Buf } from '../backend.js';

export function softmax(x: Buf, rows: number, cols: number, out: Buf, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) if (x[o + c] > mx) mx = x[o + c];
    if (mx === -Infinity) mx = 0; // an all −∞ row gives NaN below, as in PyTorch; avoid ∞ − ∞ here
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[o + c] - mx);
    if (log) {
      const lse = mx + Math.log(s);
      for (let c = 0; c < cols; c++) out[o + c] = x[o + c] - lse;
    } else {
      for (let c = 0; c < cols; c++) out[o + c] = Math.exp(x[o + c] - mx) / s;
    }
  }
}

export function softmaxBackward(
  y: Buf,
  gy: Buf,
  rows: number,
  cols: number,
  gx: Buf,
  log: boolean,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    if (log) {
      // y = log softmax: gx = gy − softmax · Σ gy
      let s = 0;
      for (let c = 0; c < cols; c++) s += gy[o + c];
      for (let c = 0; c < cols; c++) gx[o + c] = gy[o + c] - Math.exp(y[o + c]) * s;
    } else {
      // y = softmax: gx = y · (gy − Σ gy·y)
      let s = 0;
      for (let c = 0; c < cols; c++) s += gy[o + c] * y[o + c];
      for (let c = 0; c < cols; c++) gx[o + c] = y[o + c] * (gy[o + c] - s);
    }
  }
}

export function logsumexp(x: Buf, rows: number, cols: number, out: Buf): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) if (x[o + c] > mx) mx = x[o + c];
    if (mx === -Infinity) {
      out[r] = -Infinity;
      continue;
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[o + c] - mx);
    out[r] = mx + Math.log(s);
  }
}

export function rmsnorm(
  x: Buf,
  w: Buf,
  rows: number,
  cols: number,
  eps: number,
  out: Buf,
  rstd: Buf,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[o + c] * x[o + c];
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) out[o + c] = x[o + c] * rs * w[c];
  }
}

/**
 * y_c = x_c · r · w_c with r = (mean x² + eps)^(-1/2).
 * gx_c = r · (gy_c w_c − x_c · r² · (Σ_j gy_j w_j x_j) / cols);  gw_c += Σ_rows gy_c · x_c · r.
 */
export function rmsnormBackward(
  x: Buf,
  w: Buf,
  rstd: Buf,
  gy: Buf,
  rows: number,
  cols: number,
  gx: Buf,
  gw: Buf | null,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rs = rstd[r];
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += gy[o + c] * w[c] * x[o + c];
    const k = (rs * rs * rs * dot) / cols;
    for (let c = 0; c < cols; c++) gx[o + c] = rs * gy[o + c] * w[c] - k * x[o + c];
    if (gw) for (let c = 0; c < cols; c++) gw[c] += gy[o + c] * x[o + c] * rs;
  }
}
