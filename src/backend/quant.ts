// The ggml block formats a QuantWeight may hold, decoded to float32: the definition of their
// values (transcribed from ggml-quants.c, dequantize_row_*), used by the reference backend's
// quantised kernels and by the GGUF reader (src/io/gguf/dequant.ts). Plain typed-array loops;
// intermediate products are rounded to float32 with Math.fround where ggml computes in float, so
// results match ggml and gguf-py to the last ulp or so (checked against gguf-py on fixtures in
// src/io/gguf/dequant.test.ts). The native kernels (native/quant.h) are tested against these.
import { decodeBf16Array, decodeF16Array, f16ToF32Table } from '../util/half.js';

const fr = Math.fround;

/** Block layout (elements, bytes) of every type decodeBlocks understands, by ggml type id
 * (F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14, BF16 30:
 * the numbering of ggml.h; src/io/gguf/types.ts has the full table and a test keeps them equal). */
export const QUANT_BLOCKS: ReadonlyMap<number, { blockSize: number; typeSize: number }> = new Map(
  (
    [
      [0, 1, 4],
      [1, 1, 2],
      [2, 32, 18],
      [3, 32, 20],
      [6, 32, 22],
      [7, 32, 24],
      [8, 32, 34],
      [12, 256, 144],
      [13, 256, 176],
      [14, 256, 210],
      [30, 1, 2],
    ] as const
  ).map(([t, blockSize, typeSize]) => [t, { blockSize, typeSize }]),
);

/**
 * Decode n elements (a multiple of the block size) of ggml type `type` from src[0..] into
 * out[y..]. The caller checks sizes (src holds the blocks, out has room).
 */
export function decodeBlocks(
  type: number,
  src: Uint8Array,
  n: number,
  out: Float32Array,
  y = 0,
): void {
  const info = QUANT_BLOCKS.get(type);
  if (!info) throw new Error(`decodeBlocks: ggml type ${type} is not a supported block format`);
  const nb = n / info.blockSize;
  switch (type) {
    case 0: {
      if ((src.byteOffset & 3) === 0) {
        out.set(new Float32Array(src.buffer, src.byteOffset, n), y);
      } else {
        new Uint8Array(out.buffer, out.byteOffset + 4 * y, 4 * n).set(src.subarray(0, 4 * n));
      }
      return;
    }
    case 1:
      return decodeF16Array(src, 0, n, out, y);
    case 30:
      return decodeBf16Array(src, 0, n, out, y);
    case 8:
      return q8_0(src, nb, out, y);
    case 2:
      return q4_0(src, nb, out, y);
    case 3:
      return q4_1(src, nb, out, y);
    case 6:
      return q5_0(src, nb, out, y);
    case 7:
      return q5_1(src, nb, out, y);
    case 12:
      return q4_k(src, nb, out, y);
    case 13:
      return q5_k(src, nb, out, y);
    case 14:
      return q6_k(src, nb, out, y);
  }
}

function h(t: Float32Array, b: Uint8Array, p: number): number {
  return t[b[p] | (b[p + 1] << 8)];
}

// block_q8_0 { half d; int8 qs[32]; }  y = qs * d
function q8_0(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 34;
    const d = h(t, b, p);
    for (let j = 0; j < 32; j++) out[y++] = ((b[p + 2 + j] << 24) >> 24) * d;
  }
}

// block_q4_0 { half d; uint8 qs[16]; }  low nibbles -> y[0..15], high -> y[16..31]; (q - 8) * d
function q4_0(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 18;
    const d = h(t, b, p);
    for (let j = 0; j < 16; j++) {
      const q = b[p + 2 + j];
      out[y + j] = ((q & 0xf) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
    y += 32;
  }
}

// block_q4_1 { half d; half m; uint8 qs[16]; }  q * d + m
function q4_1(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 20;
    const d = h(t, b, p);
    const m = h(t, b, p + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[p + 4 + j];
      out[y + j] = fr((q & 0xf) * d) + m;
      out[y + j + 16] = fr((q >> 4) * d) + m;
    }
    y += 32;
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }  5th bit from qh; (q - 16) * d
function q5_0(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 22;
    const d = h(t, b, p);
    const qh = (b[p + 2] | (b[p + 3] << 8) | (b[p + 4] << 16) | (b[p + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 6 + j];
      const xh0 = ((qh >>> j) << 4) & 0x10;
      const xh1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = (((q & 0xf) | xh0) - 16) * d;
      out[y + j + 16] = (((q >> 4) | xh1) - 16) * d;
    }
    y += 32;
  }
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }  q * d + m
function q5_1(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 24;
    const d = h(t, b, p);
    const m = h(t, b, p + 2);
    const qh = (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 8 + j];
      const xh0 = ((qh >>> j) << 4) & 0x10;
      const xh1 = (qh >>> (j + 12)) & 0x10;
      out[y + j] = fr(((q & 0xf) | xh0) * d) + m;
      out[y + j + 16] = fr(((q >> 4) | xh1) * d) + m;
    }
    y += 32;
  }
}

// 6-bit scales and mins of the K-quants, packed in 12 bytes (get_scale_min_k4).
function scaleMin(b: Uint8Array, s: number, j: number, sm: Int32Array): void {
  if (j < 4) {
    sm[0] = b[s + j] & 63;
    sm[1] = b[s + j + 4] & 63;
  } else {
    sm[0] = (b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4);
    sm[1] = (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4);
  }
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }  256 elements, 8 sub-blocks
function q4_k(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  const sm = new Int32Array(2);
  for (let i = 0; i < nb; i++) {
    const p = i * 144;
    const d = h(t, b, p);
    const dmin = h(t, b, p + 2);
    const s = p + 4;
    let q = p + 16;
    for (let is = 0; is < 8; is += 2) {
      scaleMin(b, s, is, sm);
      const d1 = fr(d * sm[0]);
      const m1 = fr(dmin * sm[1]);
      scaleMin(b, s, is + 1, sm);
      const d2 = fr(d * sm[0]);
      const m2 = fr(dmin * sm[1]);
      for (let l = 0; l < 32; l++) out[y + l] = fr(d1 * (b[q + l] & 0xf)) - m1;
      for (let l = 0; l < 32; l++) out[y + 32 + l] = fr(d2 * (b[q + l] >> 4)) - m2;
      q += 32;
      y += 64;
    }
  }
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
function q5_k(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  const sm = new Int32Array(2);
  for (let i = 0; i < nb; i++) {
    const p = i * 176;
    const d = h(t, b, p);
    const dmin = h(t, b, p + 2);
    const s = p + 4;
    const qh = p + 16;
    let ql = p + 48;
    let u1 = 1;
    let u2 = 2;
    for (let is = 0; is < 8; is += 2) {
      scaleMin(b, s, is, sm);
      const d1 = fr(d * sm[0]);
      const m1 = fr(dmin * sm[1]);
      scaleMin(b, s, is + 1, sm);
      const d2 = fr(d * sm[0]);
      const m2 = fr(dmin * sm[1]);
      for (let l = 0; l < 32; l++) {
        out[y + l] = fr(d1 * ((b[ql + l] & 0xf) + (b[qh + l] & u1 ? 16 : 0))) - m1;
      }
      for (let l = 0; l < 32; l++) {
        out[y + 32 + l] = fr(d2 * ((b[ql + l] >> 4) + (b[qh + l] & u2 ? 16 : 0))) - m2;
      }
      ql += 32;
      y += 64;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }
function q6_k(b: Uint8Array, nb: number, out: Float32Array, y: number): void {
  const t = f16ToF32Table();
  for (let i = 0; i < nb; i++) {
    const p = i * 210;
    const d = h(t, b, p + 208);
    let ql = p;
    let qh = p + 128;
    let sc = p + 192;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = b[qh + l];
        const q1 = ((b[ql + l] & 0xf) | ((hb & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        out[y + l] = fr(d * ((b[sc + is] << 24) >> 24)) * q1;
        out[y + l + 32] = fr(d * ((b[sc + is + 2] << 24) >> 24)) * q2;
        out[y + l + 64] = fr(d * ((b[sc + is + 4] << 24) >> 24)) * q3;
        out[y + l + 96] = fr(d * ((b[sc + is + 6] << 24) >> 24)) * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}
