// KV cache for incremental decoding: per layer, keys and values in preallocated float32 buffers,
// head-major [B, KVH, capacity, Dh], so each head's keys are contiguous: a decoding step reads
// the whole cache, and reading one head's 256-byte rows out of every kvHeads·Dh-float token row
// (the [B, capacity, KVH, Dh] layout) ran at half the speed. append() writes this step's rows
// after the stored ones (in place) and hands attention the storage itself with keyLen = tokens
// stored and headMajor = true: attention reads the first keyLen keys of each head in place, so a
// decoding step copies only its own new rows, never the whole cache. The cache keeps ownership
// (release() of the returned views frees nothing).
import { fromBuf, getBackend, zeros, type Tensor } from '../tensor/index.js';
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
  // Backend memory (native when loaded), freed by release(): a finished generation's cache must
  // not wait for the garbage collector (several uncollected caches tripled peak RSS).
  private kt: Tensor[];
  private vt: Tensor[];
  private k: Float32Array[];
  private v: Float32Array[];
  private readonly lens: number[];

  constructor(opts: KvCacheOptions) {
    this.opts = opts;
    const n = opts.batch * opts.capacity * opts.kvHeads * opts.headDim;
    this.kt = Array.from({ length: opts.numLayers }, () => zeros([n]));
    this.vt = Array.from({ length: opts.numLayers }, () => zeros([n]));
    this.k = this.kt.map((t) => t.data as Float32Array);
    this.v = this.vt.map((t) => t.data as Float32Array);
    this.lens = new Array<number>(opts.numLayers).fill(0);
  }

  /** Tokens stored (per sequence; every row of the batch has the same count, left-padded). */
  get length(): number {
    return this.lens[0] ?? 0;
  }

  append(
    layer: number,
    k: Tensor,
    v: Tensor,
  ): { k: Tensor; v: Tensor; keyLen: number; headMajor: true } {
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
    const total = past + T;
    const ck = this.k[layer] as Float32Array;
    const cv = this.v[layer] as Float32Array;
    const kData = k.data;
    const vData = v.data;
    // k/v [B, T, KVH, Dh] → storage [B, KVH, C, Dh] at time past: one strided copy each.
    const be = getBackend();
    const srcStrides = [T * KVH * Dh, KVH * Dh, Dh, 1];
    const dstStrides = [KVH * C * Dh, Dh, C * Dh, 1];
    const shape = [B, T, KVH, Dh];
    be.copyStrided(kData, 0, srcStrides, ck, past * Dh, dstStrides, shape);
    be.copyStrided(vData, 0, srcStrides, cv, past * Dh, dstStrides, shape);
    this.lens[layer] = total;
    return {
      k: fromBuf(ck, [B, KVH, C, Dh]), // [B, KVH, C, Dh], first `total` keys of each head valid
      v: fromBuf(cv, [B, KVH, C, Dh]), // [B, KVH, C, Dh]
      keyLen: total,
      headMajor: true,
    };
  }

  /**
   * Keeps only the given batch rows (in that order), e.g. to drop finished sequences from a
   * decoding batch so they cost nothing more. A row may be named more than once: it is then
   * copied to each place (generate's shared prefill repeats each prompt's row K times).
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
    const pick = (ts: Tensor[]): Tensor[] =>
      ts.map((t) => {
        const buf = t.data as Float32Array;
        const out = zeros([Math.max(1, rows.length) * rowSize]);
        const od = out.data as Float32Array;
        rows.forEach((r, i) => od.set(buf.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
        t.release();
        return out;
      });
    this.kt = pick(this.kt);
    this.vt = pick(this.vt);
    this.k = this.kt.map((t) => t.data as Float32Array);
    this.v = this.vt.map((t) => t.data as Float32Array);
    this.opts = { ...this.opts, batch: rows.length };
  }

  /** Frees the cache's memory now (it must not be used afterwards). */
  release(): void {
    for (const t of [...this.kt, ...this.vt]) t.release();
    this.kt = [];
    this.vt = [];
    this.k = [];
    this.v = [];
  }
}
