// Memory and data movement of the reference backend.
//
// Buffers are ordinary typed arrays on the JavaScript heap. release() detaches the ArrayBuffer
// (by transferring it away), so a later use of a released buffer sees length 0 instead of stale
// data, exactly as the native backend behaves, and the memory goes back to the GC at once.
// liveBytes counts alloc() minus release(): a tensor layer that forgets to release shows up here.
import type { Buf, DType } from '../backend.js';

const owned = new WeakSet<ArrayBufferLike>();
let live = 0;

export function alloc(dtype: DType, length: number): Buf {
  const buf = dtype === 'f64' ? new Float64Array(length) : new Float32Array(length);
  owned.add(buf.buffer);
  live += buf.byteLength;
  return buf;
}

export function release(buf: Buf): void {
  const ab = buf.buffer;
  // Only buffers from alloc() are freed; a second release, or a foreign buffer, is a no-op.
  if (!owned.has(ab)) return;
  owned.delete(ab);
  live -= ab.byteLength;
  structuredClone(ab, { transfer: [ab as ArrayBuffer] });
}

export function liveBytes(): number {
  return live;
}

export function fill(out: Buf, value: number): void {
  out.fill(value);
}

/** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides] for every index i of shape. */
export function copyStrided(
  src: Buf,
  srcOffset: number,
  srcStrides: readonly number[],
  dst: Buf,
  dstOffset: number,
  dstStrides: readonly number[],
  shape: readonly number[],
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[dstOffset] = src[srcOffset];
    return;
  }
  for (const d of shape) if (d === 0) return;
  // Walk every index but the last with a counter; the last axis is the inner loop.
  const last = rank - 1;
  const n = shape[last];
  const ss = srcStrides[last];
  const ds = dstStrides[last];
  const idx = new Array<number>(rank).fill(0);
  let so = srcOffset;
  let dOff = dstOffset;
  for (;;) {
    for (let i = 0; i < n; i++) dst[dOff + i * ds] = src[so + i * ss];
    // Advance the counter over axes last-1 .. 0.
    let ax = last - 1;
    while (ax >= 0) {
      idx[ax]++;
      so += srcStrides[ax];
      dOff += dstStrides[ax];
      if (idx[ax] < shape[ax]) break;
      so -= srcStrides[ax] * shape[ax];
      dOff -= dstStrides[ax] * shape[ax];
      idx[ax] = 0;
      ax--;
    }
    if (ax < 0) return;
  }
}
