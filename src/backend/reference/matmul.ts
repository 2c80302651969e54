// Reference matrix product. The loop order follows the storage of b so the innermost loop walks
// contiguous memory (a naive i-j-k triple loop strides through b by n and is slower):
//   b stored [k, n]  i-k-j: row i of out += a(i, q) · row q of b
//   b stored [n, k]  i-j-k: out(i, j) = Σ_q a(i, q) · b[j, q], the row of b contiguous
// a(i, q) is read through two strides, so a stored transposed costs nothing in the inner loop.
// Both take four steps of the middle loop at a time (four rows of b per pass over the output
// row, or four dot products per pass over a row of a): each value loaded in the inner loop is
// then used four times, which is most of the speed plain JavaScript can get here.
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
      const arow = ao + i * ai;
      if (!transB) {
        acc.fill(0);
        let q = 0;
        for (; q + 4 <= k; q += 4) {
          const a0 = a[arow + q * aq];
          const a1 = a[arow + (q + 1) * aq];
          const a2 = a[arow + (q + 2) * aq];
          const a3 = a[arow + (q + 3) * aq];
          const b0 = bo + q * n;
          const b1 = b0 + n;
          const b2 = b1 + n;
          const b3 = b2 + n;
          for (let j = 0; j < n; j++) {
            acc[j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
          }
        }
        for (; q < k; q++) {
          const aiq = a[arow + q * aq];
          const brow = bo + q * n;
          for (let j = 0; j < n; j++) acc[j] += aiq * b[brow + j];
        }
      } else {
        let j = 0;
        for (; j + 4 <= n; j += 4) {
          const b0 = bo + j * k;
          const b1 = b0 + k;
          const b2 = b1 + k;
          const b3 = b2 + k;
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          for (let q = 0; q < k; q++) {
            const x = a[arow + q * aq];
            s0 += x * b[b0 + q];
            s1 += x * b[b1 + q];
            s2 += x * b[b2 + q];
            s3 += x * b[b3 + q];
          }
          acc[j] = s0;
          acc[j + 1] = s1;
          acc[j + 2] = s2;
          acc[j + 3] = s3;
        }
        for (; j < n; j++) {
          const brow = bo + j * k;
          let s = 0;
          for (let q = 0; q < k; q++) s += a[arow + q * aq] * b[brow + q];
          acc[j] = s;
        }
      }
      const orow = oo + i * n;
      if (accumulate) for (let j = 0; j < n; j++) out[orow + j] += alpha * acc[j];
      else for (let j = 0; j < n; j++) out[orow + j] = alpha * acc[j];
    }
  }
}
