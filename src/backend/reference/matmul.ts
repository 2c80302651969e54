// Reference matrix product. The loop order follows the storage of b so the innermost loop walks
// contiguous memory (a naive i-j-k triple loop strides through b by n and is slower):
//   b stored [k, n]  i-k-j: row i of out += a(i, q) · row q of b
//   b stored [n, k]  i-j-k: out(i, j) = Σ_q a(i, q) · b[j, q], the row of b contiguous
// a(i, q) is read through two strides, so a stored transposed costs nothing extra.
// Sums are kept in float64, then scaled by alpha and stored (or added when accumulate).
import type { Buf, MatmulParams } from '../backend.js';

export function matmul(a: Buf, b: Buf, out: Buf, p: MatmulParams): void {
  const { batch, m, k, n, transA, transB } = p;
  const alpha = p.alpha ?? 1;
  const accumulate = p.accumulate ?? false;
  // a(i, q) = a[ao + i·ai + q·aq]
  const ai = transA ? 1 : k;
  const aq = transA ? m : 1;
  const acc = new Float64Array(n);
  for (let bt = 0; bt < batch; bt++) {
    const ao = bt * p.strideA;
    const bo = bt * p.strideB;
    const oo = bt * p.strideOut;
    for (let i = 0; i < m; i++) {
      if (!transB) {
        acc.fill(0);
        for (let q = 0; q < k; q++) {
          const aiq = a[ao + i * ai + q * aq];
          const brow = bo + q * n;
          for (let j = 0; j < n; j++) acc[j] += aiq * b[brow + j];
        }
      } else {
        for (let j = 0; j < n; j++) {
          const brow = bo + j * k;
          let s = 0;
          for (let q = 0; q < k; q++) s += a[ao + i * ai + q * aq] * b[brow + q];
          acc[j] = s;
        }
      }
      const orow = oo + i * n;
      if (accumulate) for (let j = 0; j < n; j++) out[orow + j] += alpha * acc[j];
      else for (let j = 0; j < n; j++) out[orow + j] = alpha * acc[j];
    }
  }
}
