// Every differentiable op of src/tensor: backward vs central finite differences, float64, reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng } from '../../src/util/rng.js';
import { gradcheck } from '../helpers/gradcheck.js';

T.setBackend('reference');

test('matmul: NN, NT, TN, TT, batched, shared 2-D b', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const [m, k, n] = [3, 5, 4];
      const aShape = transA ? [k, m] : [m, k];
      const bShape = transB ? [n, k] : [k, n];
      gradcheck(`matmul ${transA}${transB}`, ([a, b]) => T.matmul(a, b, { transA, transB }), [
        { shape: aShape },
        { shape: bShape },
      ]);
      gradcheck(
        `matmul batched ${transA}${transB}`,
        ([a, b]) => T.matmul(a, b, { transA, transB }),
        [{ shape: [2, 3, ...aShape] }, { shape: [2, 3, ...bShape] }],
      );
      gradcheck(
        `matmul shared b ${transA}${transB}`,
        ([a, b]) => T.matmul(a, b, { transA, transB }),
        [{ shape: [2, 3, ...aShape] }, { shape: bShape }],
      );
    }
  }
});

test('broadcast binary ops', () => {
  const pairs: [number[], number[]][] = [
    [
      [3, 4],
      [3, 4],
    ],
    [[2, 3, 4], [4]],
    [
      [2, 1, 4],
      [3, 1],
    ],
    [[1], [2, 3]],
  ];
  for (const [sa, sb] of pairs) {
    gradcheck('add', ([a, b]) => T.add(a, b), [{ shape: sa }, { shape: sb }]);
    gradcheck('sub', ([a, b]) => T.sub(a, b), [{ shape: sa }, { shape: sb }]);
    gradcheck('mul', ([a, b]) => T.mul(a, b), [{ shape: sa }, { shape: sb }]);
    gradcheck('div', ([a, b]) => T.div(a, b), [{ shape: sa }, { shape: sb, lo: 0.5, hi: 2 }]);
    gradcheck('maximum', ([a, b]) => T.maximum(a, b), [{ shape: sa }, { shape: sb }]);
  }
  // The same tensor on both sides.
  gradcheck('mul(x, x)', ([a]) => T.mul(a, a), [{ shape: [3, 2] }]);
});

test('scalar ops and unary ops', () => {
  gradcheck('scale', ([x]) => T.scale(x, -2.5), [{ shape: [7] }]);
  gradcheck('addScalar', ([x]) => T.addScalar(x, 3), [{ shape: [7] }]);
  const signed = { shape: [2, 7] };
  const positive = { shape: [2, 7], lo: 0.3, hi: 2 };
  const cases: [string, (x: T.Tensor) => T.Tensor, typeof signed][] = [
    ['exp', T.exp, signed],
    ['log', T.log, positive],
    ['sqrt', T.sqrt, positive],
    ['rsqrt', T.rsqrt, positive],
    ['sigmoid', T.sigmoid, { shape: [2, 7], lo: -6, hi: 6 } as typeof signed],
    ['silu', T.silu, { shape: [2, 7], lo: -6, hi: 6 } as typeof signed],
    ['tanh', T.tanh, signed],
    ['relu', T.relu, signed],
    ['neg', T.neg, signed],
    ['square', T.square, signed],
    ['abs', T.abs, signed],
    ['recip', T.recip, positive],
  ];
  for (const [name, f, spec] of cases) gradcheck(name, ([x]) => f(x), [spec]);
});

test('layout ops', () => {
  gradcheck('reshape', ([x]) => T.mul(T.reshape(x, [4, -1]), T.reshape(x, [4, 3])), [
    { shape: [2, 6] },
  ]);
  gradcheck('transpose', ([x]) => T.transpose(x, 0, 2), [{ shape: [2, 3, 4] }]);
  gradcheck('permute', ([x]) => T.permute(x, [2, 0, 3, 1]), [{ shape: [2, 3, 1, 5] }]);
  gradcheck('slice', ([x]) => T.slice(x, 1, 1, 3), [{ shape: [2, 4, 3] }]);
  gradcheck('slice negative', ([x]) => T.slice(x, -1, -2), [{ shape: [3, 5] }]);
  gradcheck('concat', ([a, b, c]) => T.concat([a, b, c], 1), [
    { shape: [2, 1, 3] },
    { shape: [2, 4, 3] },
    { shape: [2, 2, 3], grad: false },
  ]);
  gradcheck('expand', ([x]) => T.expand(x, [2, 3, 4]), [{ shape: [3, 1] }]);
});

test('reductions', () => {
  gradcheck('sum all', ([x]) => T.sum(x), [{ shape: [3, 4] }]);
  gradcheck('sum axes', ([x]) => T.sum(x, [0, 2]), [{ shape: [2, 3, 4] }]);
  gradcheck('sum keepDims', ([x]) => T.sum(x, -1, true), [{ shape: [2, 3, 4] }]);
  gradcheck('mean', ([x]) => T.mean(x, [1]), [{ shape: [2, 3, 4] }]);
  gradcheck('max', ([x]) => T.max(x, 1), [{ shape: [2, 5, 3] }]);
  gradcheck('max keepDims', ([x]) => T.max(x, -1, true), [{ shape: [4, 7] }]);
});

test('softmax, logSoftmax, rmsNorm', () => {
  gradcheck('softmax', ([x]) => T.softmax(x), [{ shape: [3, 7], lo: -3, hi: 3 }]);
  gradcheck('logSoftmax', ([x]) => T.logSoftmax(x), [{ shape: [3, 7], lo: -3, hi: 3 }]);
  gradcheck('rmsNorm', ([x, w]) => T.rmsNorm(x, w, 1e-5), [{ shape: [2, 3, 8] }, { shape: [8] }]);
  gradcheck('rmsNorm frozen weight', ([x, w]) => T.rmsNorm(x, w, 1e-5), [
    { shape: [5, 7] },
    { shape: [7], grad: false },
  ]);
});

test('rope', () => {
  const table = T.ropeTable({ headDim: 8, theta: 10000, maxPositions: 64 });
  const positions = new Int32Array([0, 5, 9, 3, 40, 41]);
  gradcheck('rope', ([x]) => T.rope(x, table, positions), [{ shape: [2, 3, 2, 8] }]);
});

test('attention: causal, GQA, KV cache offset, left padding', () => {
  const cases = [
    { q: [1, 4, 2, 4], kv: [1, 4, 2, 4], causal: true },
    { q: [2, 3, 4, 4], kv: [2, 3, 2, 4], causal: true },
    { q: [1, 2, 3, 4], kv: [1, 5, 1, 4], causal: true },
    { q: [2, 3, 2, 8], kv: [2, 5, 1, 8], causal: false },
    { q: [2, 4, 2, 4], kv: [2, 4, 2, 4], causal: true, keyStart: new Int32Array([0, 2]) },
  ];
  for (const c of cases) {
    gradcheck(
      `attention ${JSON.stringify(c.q)} ${JSON.stringify(c.kv)}`,
      ([q, k, v]) => T.attention(q, k, v, { causal: c.causal, keyStart: c.keyStart }),
      [{ shape: c.q, lo: -2, hi: 2 }, { shape: c.kv, lo: -2, hi: 2 }, { shape: c.kv }],
    );
  }
});

test('embedding, tokenLogProbs, crossEntropy', () => {
  const ids = new Int32Array([3, 0, 3, 1, 4, 4]);
  gradcheck('embedding', ([t]) => T.embedding(t, ids, [2, 3]), [{ shape: [5, 4] }]);
  const targets = new Int32Array([1, 6, 0, -1, 2]);
  gradcheck('tokenLogProbs', ([h, w]) => T.tokenLogProbs(h, w, targets, { chunkRows: 2 }), [
    { shape: [5, 4], lo: -2, hi: 2 },
    { shape: [7, 4] },
  ]);
  gradcheck(
    'tokenLogProbs frozen head',
    ([h, w]) => T.tokenLogProbs(h, w, targets, { chunkRows: 3 }),
    [{ shape: [5, 4] }, { shape: [7, 4], grad: false }],
  );
  gradcheck('crossEntropy', ([h, w]) => T.crossEntropy(h, w, targets), [
    { shape: [5, 4] },
    { shape: [7, 4] },
  ]);
});

test('dropout with a fixed mask', () => {
  gradcheck('dropout', ([x]) => T.dropout(x, 0.3, new Rng(7), true), [{ shape: [4, 5] }]);
});

test('cast passes the gradient back in the input dtype', () => {
  const x = T.tensor([1, 2, 3], [3], { dtype: 'f64', requiresGrad: true });
  const y = T.cast(x, 'f32');
  assert.equal(y.dtype, 'f32');
  T.sum(T.scale(y, 2)).backward();
  assert.equal(x.grad?.dtype, 'f64');
  assert.deepEqual(x.grad?.toArray(), [2, 2, 2]);
});

test('a composed expression (gradients flow through a shared subexpression)', () => {
  gradcheck(
    'composed',
    ([x, w]) => {
      const h = T.silu(T.matmul(x, w, { transB: true }));
      return T.logSoftmax(T.add(h, T.scale(h, 0.5)));
    },
    [{ shape: [2, 3, 5] }, { shape: [6, 5] }],
  );
});
