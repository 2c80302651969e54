// The ops on quantised frozen weights (QTensor) against the same ops on the float32 matrix they
// stand for (dequantizeWeight): forward, the input gradient, embedding rows, logits and chunked
// token log-probs, on every backend; and the errors for malformed or released weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from './index.js';
import { nativeStatus } from '../backend/index.js';
import { f32ToF16Bits } from '../util/half.js';
import { Rng } from '../util/rng.js';

const backends: T.BackendName[] = ['reference'];
if (nativeStatus().backend) backends.push('native');

/** rows × cols of Q8_0 (type 8: f16 scale + 32 int8 per block) or Q4_1 (type 3: f16 d, f16 m,
 * 16 bytes of nibbles) with random finite scales. */
function randomQuant(type: 3 | 8, rows: number, cols: number, rng: Rng): T.QuantWeight {
  const bs = type === 8 ? 34 : 20;
  const nb = (rows * cols) / 32;
  const data = new Uint8Array(nb * bs);
  for (let b = 0; b < nb; b++) {
    const p = b * bs;
    const d = f32ToF16Bits(rng.uniform(0.01, 0.06));
    data[p] = d & 0xff;
    data[p + 1] = d >> 8;
    if (type === 3) {
      const m = f32ToF16Bits(rng.uniform(-0.3, 0));
      data[p + 2] = m & 0xff;
      data[p + 3] = m >> 8;
    }
    for (let j = type === 8 ? 2 : 4; j < bs; j++) data[p + j] = rng.int(256);
  }
  return { type, rows, cols, data };
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

for (const be of backends) {
  for (const type of [8, 3] as const) {
    test(`${be}: qlinear, its input gradient, qembedding and logits equal the float32 ops on dequant(w) (ggml type ${type})`, () => {
      T.setBackend(be);
      const rng = new Rng(type);
      const [n, k] = [37, 96];
      const w = new T.QTensor(randomQuant(type, n, k, rng), 'w');
      const wf = T.dequantizeWeight(w); // [n, k]
      assert.deepEqual(wf.shape, [n, k]);
      for (const m of [1, 3, 8, 17, 40]) {
        const x = T.randn([m, k], rng, { requiresGrad: true });
        const y = T.qlinear(x, w);
        const yf = T.matmul(x, wf, { transB: true });
        assert.deepEqual(y.shape, [m, n]);
        assert.ok(maxRelErr(y.data, yf.data) < 1e-5, `forward m=${m}`);
        // Backward through a weighted sum: gx = g · dequant(w).
        const g = T.randn([m, n], rng);
        T.sum(T.mul(y, g)).backward();
        const gq = Float32Array.from(x.grad!.data);
        x.grad = null;
        T.sum(T.mul(yf, g)).backward();
        assert.ok(maxRelErr(gq, x.grad!.data) < 1e-5, `input gradient m=${m}`);
      }
      // A leading batch shape folds into rows.
      const x3 = T.randn([2, 3, k], rng);
      const y3 = T.noGrad(() => T.qlinear(x3, w));
      assert.deepEqual(y3.shape, [2, 3, n]);
      const ids = Int32Array.from([0, 36, 5, 5, 17]);
      const e = T.qembedding(w, ids, [5]);
      const ef = T.embedding(wf, ids, [5]);
      assert.deepEqual(Array.from(e.data), Array.from(ef.data));
      const h = T.randn([4, k], rng);
      assert.ok(maxRelErr(T.logits(h, w).data, T.logits(h, wf).data) < 1e-5, 'logits');
    });

    test(`${be}: tokenLogProbs with a quantised head equals the float32 head, values and hidden gradient (type ${type})`, () => {
      T.setBackend(be);
      const rng = new Rng(10 + type);
      const [V, d, N] = [130, 64, 9];
      const w = new T.QTensor(randomQuant(type, V, d, rng));
      const wf = T.dequantizeWeight(w);
      const targets = Int32Array.from([3, 129, -1, 0, 77, 5, 5, 100, 64]);
      const h1 = T.randn([N, d], rng, { requiresGrad: true });
      const h2 = T.tensor(Float32Array.from(h1.data), [N, d], { requiresGrad: true });
      const a = T.tokenLogProbs(h1, w, targets, { chunkRows: 4 });
      const b = T.tokenLogProbs(h2, wf, targets, { chunkRows: 4 });
      assert.ok(maxRelErr(a.data, b.data) < 1e-5);
      T.sum(a).backward();
      T.sum(b).backward();
      assert.ok(maxRelErr(h1.grad!.data, h2.grad!.data) < 1e-5);
    });
  }
}

test('QTensor: malformed blocks, wrong shapes and released weights are typed errors naming the tensor', () => {
  T.setBackend('reference');
  const rng = new Rng(1);
  const good = randomQuant(8, 4, 64, rng);
  assert.throws(
    () => new T.QTensor({ ...good, data: good.data.subarray(1) }, 'blk.0.w'),
    (e: Error) => /data size/.test(e.message) && /blk\.0\.w/.test(String(e)),
  );
  assert.throws(() => new T.QTensor({ ...good, cols: 48, rows: 4 }), /whole number of blocks/);
  assert.throws(() => new T.QTensor({ ...good, type: 99 }), /block format/);
  const w = new T.QTensor(good, 'w');
  assert.throws(() => T.qlinear(T.randn([2, 63], rng), w), /qlinear/);
  assert.throws(() => T.qembedding(w, Int32Array.from([4])), /ids/);
  w.release();
  assert.throws(() => T.qlinear(T.randn([2, 64], rng), w), /released/);
});
