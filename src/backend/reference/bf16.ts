// Reference kernels on bf16 frozen weights (Bf16Weight): the definition of the bf16 compute mode.
// A value is rounded to bf16 the way vcvtne2ps2bf16 does it (round to nearest even on the upper
// 16 bits of the float32, a float32 subnormal flushed to a signed zero, NaN kept quiet); a
// product rounds both operands so, multiplies them exactly (a bf16 × bf16 product fits a float32)
// and sums in float64, as the reference matmul does. The fast kernels sum in fp32, in their own
// order: they agree with this to within fp32 summation error, which the tests bound.
import type { Bf16Weight, Buf } from '../backend.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bit pattern of x (x read as float32 first). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0)
    return ((b >>> 16) | 0x40) & 0xffff;
  // Exponent 0: zero or subnormal, which the hardware conversion treats as zero.
  if ((b & 0x7f800000) === 0) return (b >>> 16) & 0x8000;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The float value of bf16 bits h. */
export function bf16Value(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** x rounded to the nearest bf16 (ties to even), as a number. */
export function roundBf16(x: number): number {
  return bf16Value(bf16Bits(x));
}

/** W [rows, cols] → layout 'rows': row-major, two values per word, low half first. */
export function bf16Pack(w: Float32Array, rows: number, cols: number): Bf16Weight {
  const cw = Math.ceil(cols / 2);
  const data = new Uint32Array(rows * cw);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const h = bf16Bits(w[r * cols + c]);
      data[r * cw + (c >> 1)] |= (c & 1) === 0 ? h : h << 16;
    }
  }
  return { rows, cols, layout: 'rows', data };
}

// native/gemm_bf16.cc's panels: op(B) (k × n) in panels of NR columns; word
// [j / NR][p / 2][j % NR] holds (op(B)[p][j], op(B)[p + 1][j]) for even p, low half first.
const NR = 32;

/** The bf16 half-word of op(B)[p][j] in a panel packing of (k × n). */
function panelHalf(data: Uint32Array, k: number, p: number, j: number): number {
  const kp = Math.ceil(k / 2);
  const word = data[Math.floor(j / NR) * kp * NR + (p >> 1) * NR + (j % NR)];
  return (p & 1) === 0 ? word & 0xffff : word >>> 16;
}

/** Every value of w as float32, row-major [rows, cols], whatever its layout. */
export function bf16Values(w: Bf16Weight): Float32Array {
  const { rows, cols } = w;
  const out = new Float32Array(rows * cols);
  if (w.layout === 'rows') {
    const cw = Math.ceil(cols / 2);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const word = w.data[r * cw + (c >> 1)];
        out[r * cols + c] = bf16Value((c & 1) === 0 ? word & 0xffff : word >>> 16);
      }
    }
  } else {
    // op(B) = Wᵀ: k = cols, n = rows; W[r][c] = op(B)[c][r].
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[r * cols + c] = bf16Value(panelHalf(w.data, cols, c, r));
    }
  }
  return out;
}

/** Every value of a packing of W itself (k = rows, n = cols: dataT), row-major [rows, cols]. */
export function bf16ValuesT(w: Bf16Weight): Float32Array {
  if (!w.dataT) throw new Error('bf16ValuesT: the weight has no transposed packing');
  const { rows, cols } = w;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = bf16Value(panelHalf(w.dataT, rows, r, c));
  }
  return out;
}

function checkSizes(
  op: string,
  w: Bf16Weight,
  a: Buf,
  aCols: number,
  out: Buf,
  outCols: number,
  m: number,
): void {
  if (a.length < m * aCols || out.length < m * outCols) {
    throw new Error(
      `${op}: expected ${m} × ${aCols} inputs and ${m} × ${outCols} outputs for a [${w.rows}, ${w.cols}] weight, found ${a.length} and ${out.length} elements`,
    );
  }
}

/** out [m, rows] = bf16(x) [m, cols] · wᵀ (+ out). */
export function bf16Matmul(x: Buf, w: Bf16Weight, out: Buf, m: number, accumulate: boolean): void {
  const { rows: n, cols: k } = w;
  checkSizes('bf16Matmul', w, x, k, out, n, m);
  const W = bf16Values(w);
  const xr = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let q = 0; q < k; q++) xr[q] = roundBf16(x[i * k + q]);
    for (let j = 0; j < n; j++) {
      let s = 0;
      const wo = j * k;
      for (let q = 0; q < k; q++) s += xr[q] * W[wo + q];
      out[i * n + j] = accumulate ? out[i * n + j] + s : s;
    }
  }
}

/** out [m, cols] = bf16(g) [m, rows] · w (+ out). */
export function bf16MatmulT(g: Buf, w: Bf16Weight, out: Buf, m: number, accumulate: boolean): void {
  const { rows: n, cols: k } = w;
  checkSizes('bf16MatmulT', w, g, n, out, k, m);
  const W = bf16Values(w);
  const acc = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let j = 0; j < n; j++) {
      const gij = roundBf16(g[i * n + j]);
      if (gij === 0) continue;
      const wo = j * k;
      for (let q = 0; q < k; q++) acc[q] += gij * W[wo + q];
    }
    for (let q = 0; q < k; q++) out[i * k + q] = accumulate ? out[i * k + q] + acc[q] : acc[q];
  }
}

/** The reference layout has no fast kernel behind it. */
export function bf16Fast(): boolean {
  return false;
}
