// Hand-computed values for reference kernels whose semantics the other suites take for granted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from './index.js';

test('reduce over the middle axis; max propagates NaN; argmax takes the first maximum', () => {
  // x [outer 2, axis 3, inner 2]
  const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const out = new Float32Array(4);
  R.reduce('sum', x, 2, 3, 2, out);
  assert.deepEqual(Array.from(out), [9, 12, 27, 30]);
  R.reduce('max', x, 2, 3, 2, out);
  assert.deepEqual(Array.from(out), [5, 6, 11, 12]);
  const withNaN = new Float32Array([1, NaN, 3]);
  const one = new Float32Array(1);
  R.reduce('max', withNaN, 1, 3, 1, one);
  assert.ok(Number.isNaN(one[0]));
  const idx = new Int32Array(1);
  R.argmax(new Float32Array([2, 5, 5, 1]), 1, 4, 1, idx);
  assert.equal(idx[0], 1);
});

test('copyStrided transposes; binary broadcasts; release detaches and updates liveBytes', () => {
  const src = new Float64Array([1, 2, 3, 4, 5, 6]); // [2, 3]
  const dst = new Float64Array(6); // [3, 2]
  R.copyStrided(src, 0, [1, 3], dst, 0, [2, 1], [3, 2]);
  assert.deepEqual(Array.from(dst), [1, 4, 2, 5, 3, 6]);
  const out = new Float64Array(6);
  R.binary('sub', src, [3, 1], new Float64Array([10, 20]), [1, 0], out, [2, 3]);
  assert.deepEqual(Array.from(out), [-9, -8, -7, -16, -15, -14]);
  const before = R.liveBytes();
  const buf = R.alloc('f32', 10);
  assert.equal(R.liveBytes() - before, 40);
  R.release(buf);
  R.release(buf);
  assert.equal(R.liveBytes(), before);
  assert.equal(buf.length, 0);
  R.release(new Float32Array(3)); // not from alloc: ignored
  assert.equal(R.liveBytes(), before);
});

test('attention: a row with no visible key gives zeros and lse −∞', () => {
  // batch 1, seqQ = seqK = 2, one head, headDim 1, keyStart 2 masks every key.
  const q = new Float32Array([1, 1]);
  const out = new Float32Array(2).fill(7);
  const lse = new Float32Array(2);
  const p = {
    batch: 1,
    seqQ: 2,
    seqK: 2,
    heads: 1,
    kvHeads: 1,
    headDim: 1,
    scale: 1,
    causal: true,
  };
  R.attention(q, q, q, out, lse, { ...p, keyStart: new Int32Array([2]) });
  assert.deepEqual(Array.from(out), [0, 0]);
  assert.deepEqual(Array.from(lse), [-Infinity, -Infinity]);
  // Without the mask: row 0 sees key 0 only, row 1 averages keys 0 and 1 (equal scores).
  R.attention(q, q, new Float32Array([2, 4]), out, lse, p);
  assert.deepEqual(Array.from(out), [2, 3]);
  assert.ok(Math.abs(lse[1] - (1 + Math.log(2))) < 1e-6);
});
