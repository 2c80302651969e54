// KV cache for incremental decoding: per layer, keys and values [B, capacity, KVH, Dh] in
// preallocated float32 buffers. append() writes this step's rows after the stored ones (in place)
// and hands the attention op a contiguous [B, Tk, KVH, Dh] tensor. For B = 1 the stored rows
// already are that tensor: a view of the cache, no copy (the cache keeps ownership; release()
// of the view frees nothing). For B > 1 the rows of each sequence are C apart, so they are
// copied into one [B, Tk, KVH, Dh] tensor per layer and step.
import { fromBuf, zeros, type Tensor } from '../tensor/index.js';
import type { KvCacheLike } from '../nn/attention.js';
import { ShapeError } from '../util/errors.js';

export interface KvCacheOptions {
  numLayers: number;
  batch: number;
  kvHeads: number;
  headDim: number;
  /** Most tokens (prompt + generated) a sequence can hold. */
  capacity: number;
}

export class KvCache implements KvCacheLike {
  opts: KvCacheOptions;
  private k: Float32Array[];
  private v: Float32Array[];
  private readonly lens: number[];

  constructor(opts: KvCacheOptions) {
    this.opts = opts;
    const n = opts.batch * opts.capacity * opts.kvHeads * opts.headDim;
    this.k = Array.from({ length: opts.numLayers }, () => new Float32Array(n));
    this.v = Array.from({ length: opts.numLayers }, () => new Float32Array(n));
    this.lens = new Array<number>(opts.numLayers).fill(0);
  }

  /** Tokens stored (per sequence; every row of the batch has the same count, left-padded). */
  get length(): number {
    return this.lens[0] ?? 0;
  }

  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const { batch: B, capacity: C, kvHeads: KVH, headDim: Dh } = this.opts;
    const [kb, T, kh, kd] = k.shape as [number, number, number, number];
    if (kb !== B || kh !== KVH || kd !== Dh) {
      throw new ShapeError('KV cache append shape mismatch', {
        where: `KvCache.append (layer ${layer})`,
        expected: `[${B}, T, ${KVH}, ${Dh}]`,
        found: `[${k.shape.join(', ')}]`,
      });
    }
    const past = this.lens[layer] as number;
    if (past + T > C) {
      throw new ShapeError('KV cache is full', {
        where: `KvCache.append (layer ${layer})`,
        expected: `at most ${C} tokens`,
        found: `${past + T}`,
        hint: 'create the cache with a larger capacity (prompt length + max new tokens)',
      });
    }
    const row = KVH * Dh;
    const total = past + T;
    if (B === 1) {
      const ck = this.k[layer] as Float32Array;
      const cv = this.v[layer] as Float32Array;
      ck.set(k.data.subarray(0, T * row), past * row);
      cv.set(v.data.subarray(0, T * row), past * row);
      this.lens[layer] = total;
      return {
        k: fromBuf(ck.subarray(0, total * row), [1, total, KVH, Dh]), // [1, Tk, KVH, Dh]
        v: fromBuf(cv.subarray(0, total * row), [1, total, KVH, Dh]), // [1, Tk, KVH, Dh]
      };
    }
    const outK = zeros([B, total, KVH, Dh]); // [B, Tk, KVH, Dh]
    const outV = zeros([B, total, KVH, Dh]); // [B, Tk, KVH, Dh]
    const kd_ = k.data;
    const vd_ = v.data;
    const ck = this.k[layer] as Float32Array;
    const cv = this.v[layer] as Float32Array;
    const ok = outK.data;
    const ov = outV.data;
    for (let b = 0; b < B; b++) {
      const base = b * C * row;
      ck.set(kd_.subarray(b * T * row, (b + 1) * T * row), base + past * row);
      cv.set(vd_.subarray(b * T * row, (b + 1) * T * row), base + past * row);
      ok.set(ck.subarray(base, base + total * row), b * total * row);
      ov.set(cv.subarray(base, base + total * row), b * total * row);
    }
    this.lens[layer] = total;
    return { k: outK, v: outV };
  }

  /**
   * Keeps only the given batch rows (in that order), e.g. to drop finished sequences from a
   * decoding batch so they cost nothing more.
   */
  keepRows(rows: readonly number[]): void {
    const { batch: B, capacity: C, kvHeads: KVH, headDim: Dh } = this.opts;
    const rowSize = C * KVH * Dh;
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= B) {
        throw new ShapeError('KV cache row out of range', {
          where: 'KvCache.keepRows',
          expected: `rows in [0, ${B})`,
          found: String(r),
        });
      }
    }
    const pick = (bufs: Float32Array[]): Float32Array[] =>
      bufs.map((buf) => {
        const out = new Float32Array(rows.length * rowSize);
        rows.forEach((r, i) => out.set(buf.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
        return out;
      });
    this.k = pick(this.k);
    this.v = pick(this.v);
    this.opts = { ...this.opts, batch: rows.length };
  }
}
