// Reference matrix product. The loop order follows the storage so the innermost loop always walks
// contiguous memory (a naive i-j-k triple loop strides through b and is several times slower):
//   NN  i-k-j: row i of out += a[i,p] · row p of b
//   NT  i-j-k: out[i,j] = dot(row i of a, row j of b), both rows contiguous
//   TN  k-i-j: row i of out += a[p,i] · row p of b
//   TT  rare; a plain dot product over strided elements.
// Sums are kept in a float64 row, then scaled by alpha and stored (or added when accumulate).
import type { Buf, MatmulParams } from '../backend.js';

export function matmul(a: Buf, b: Buf, out: Buf, p: MatmulParams): void {
  const { batch, m, k, n, transA, transB } = p;
  const alpha = p.alpha ?? 1;
  const acc = new Float64Array(m * n);
  for (let bt = 0; bt < batch; bt++) {
    const ao = bt * p.strideA;
    const bo = bt * p.strideB;
    const oo = bt * p.strideOut;
    acc.fill(0);
    if (!transA && !transB) {
      for (let i = 0; i < m; i++) {
        const row = i * n;
        for (let q = 0; q < k; q++) {
          const aiq = a[ao + i * k + q];
          const brow = bo + q * n;
          for (let j = 0; j < n; j++) acc[row + j] += aiq * b[brow + j];
        }
      }
    } else if (!transA && transB) {
      for (let i = 0; i < m; i++) {
        const arow = ao + i * k;
        for (let j = 0; j < n; j++) {
          const brow = bo + j * k;
          let s = 0;
          for (let q = 0; q < k; q++) s += a[arow + q] * b[brow + q];
          acc[i * n + j] = s;
        }
      }
    } else if (transA && !transB) {
      for (let q = 0; q < k; q++) {
        const arow = ao + q * m;
        const brow = bo + q * n;
        for (let i = 0; i < m; i++) {
          const aqi = a[arow + i];
          const row = i * n;
          for (let j = 0; j < n; j++) acc[row + j] += aqi * b[brow + j];
        }
      }
    } else {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += a[ao + q * m + i] * b[bo + j * k + q];
          acc[i * n + j] = s;
        }
      }
    }
    if (p.accumulate) {
      for (let i = 0; i < m * n; i++) out[oo + i] += alpha * acc[i];
    } else {
      for (let i = 0; i < m * n; i++) out[oo + i] = alpha * acc[i];
    }
  }
}
