// IEEE half (F16) and bfloat16 (BF16) <-> float32 conversions, shared by GGUF and safetensors.
// Decoding uses a 65536-entry table (256 KiB, built once) because dequantising a model calls it
// hundreds of millions of times; encoding rounds to nearest even like numpy/torch do.

let f16Table: Float32Array | undefined;

/** Table of all 65536 half-precision values as float32 (index = the 16 raw bits). */
export function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = decodeF16(h);
  f16Table = t;
  return t;
}

function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32Buf = new Float32Array(1);
const u32Buf = new Uint32Array(f32Buf.buffer);

/** float32 -> half bits, round to nearest even, overflow to Inf, NaN kept. */
export function f32ToF16Bits(x: number): number {
  f32Buf[0] = x;
  const u = u32Buf[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++; // may carry into the exponent: correct
  return sign | r;
}

/** bfloat16 bits -> float32. */
export function bf16ToF32(b: number): number {
  u32Buf[0] = (b & 0xffff) << 16;
  return f32Buf[0];
}

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  f32Buf[0] = x;
  const u = u32Buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decode n little-endian F16 values from bytes[off..] into out[outOff..]. */
export function decodeF16Array(
  bytes: Uint8Array,
  off: number,
  n: number,
  out: Float32Array,
  outOff = 0,
): void {
  const t = f16ToF32Table();
  for (let i = 0; i < n; i++) {
    const p = off + 2 * i;
    out[outOff + i] = t[bytes[p] | (bytes[p + 1] << 8)];
  }
}

/** Decode n little-endian BF16 values from bytes[off..] into out[outOff..]. */
export function decodeBf16Array(
  bytes: Uint8Array,
  off: number,
  n: number,
  out: Float32Array,
  outOff = 0,
): void {
  // Writing the bits through a Uint32Array view of the output avoids a per-element conversion.
  const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < n; i++) {
    const p = off + 2 * i;
    o32[outOff + i] = ((bytes[p] | (bytes[p + 1] << 8)) << 16) >>> 0;
  }
}
