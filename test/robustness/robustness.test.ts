// Bad input and lifetimes: typed errors naming op, argument and shapes; use after release;
// NaN/Inf detection; the debug compare switch; no memory growth over thousands of steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as T from '../../src/tensor/index.js';
import { compareBackend, referenceBackend, type FullBackend } from '../../src/backend/index.js';
import {
  NumericError,
  ReleasedTensorError,
  Rl4qeError,
  ShapeError,
} from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

T.setBackend('reference');

function throwsWith(
  fn: () => unknown,
  cls: new (...a: never[]) => Error,
  ...parts: string[]
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    for (const p of parts)
      assert.ok((e as Error).message.includes(p), `message lacks '${p}':\n${(e as Error).message}`);
    return true;
  });
}

test('shape and dtype mismatches name the op, the argument and the shapes', () => {
  const a = T.zeros([2, 3]);
  const b = T.zeros([4, 5]);
  throwsWith(() => T.matmul(a, b), ShapeError, 'matmul', '[2, 3]', '[4, 5]');
  throwsWith(() => T.add(a, b), ShapeError, 'add', '[2, 3]', '[4, 5]');
  throwsWith(() => T.mul(a, T.zeros([2, 3], { dtype: 'f64' })), ShapeError, 'mul: b', 'f64', 'f32');
  throwsWith(() => T.reshape(a, [4, -1]), ShapeError, 'reshape: shape', '[4, -1]', '6 elements');
  throwsWith(() => T.rmsNorm(a, T.zeros([2]), 1e-6), ShapeError, 'rmsNorm: weight', '[2]', '[3]');
  throwsWith(
    () => T.embedding(a, new Int32Array([0, 2])),
    ShapeError,
    'embedding: ids',
    '2 at index 1',
  );
  throwsWith(
    () => T.tokenLogProbs(a, b, new Int32Array([0, 0])),
    ShapeError,
    'tokenLogProbs: weight',
    '[4, 5]',
  );
  throwsWith(
    () =>
      T.attention(T.zeros([1, 2, 3, 4]), T.zeros([1, 2, 2, 4]), T.zeros([1, 2, 2, 4]), {
        causal: true,
      }),
    ShapeError,
    'attention: k',
    'kvHeads',
  );
  throwsWith(() => T.concat([a, b], 0), ShapeError, 'concat: xs[1]', '[4, 5]');
  throwsWith(() => T.slice(a, 1, 2, 5), ShapeError, 'slice', '2..5');
  throwsWith(() => T.permute(a, [0, 0]), ShapeError, 'permute: perm');
  throwsWith(() => T.tensor([1, 2, 3], [2, 2]), ShapeError, 'tensor', '4 values');
  throwsWith(() => T.sum(a).backward(), Rl4qeError, 'does not require grad');
  throwsWith(() => T.zeros([3]).item(), ShapeError, 'item', 'size 3');
});

test('use after release is a ReleasedTensorError, never a crash', () => {
  const x = T.randn([3, 4], new Rng(1));
  const buf = x.data;
  x.release();
  x.release(); // idempotent
  assert.equal(buf.length, 0, 'the reference backend detaches a released buffer');
  throwsWith(() => x.data, ReleasedTensorError, 'tensor used after release()');
  throwsWith(() => T.exp(x), ReleasedTensorError, 'exp');
  throwsWith(() => T.matmul(x, x, { transB: true }), ReleasedTensorError, 'matmul');
  throwsWith(() => x.toArray(), ReleasedTensorError);
});

test('backward releases intermediates, keeps kept ones and the root, refuses a second pass', () => {
  const w = T.randn([4, 4], new Rng(2), { requiresGrad: true });
  const x = T.randn([2, 4], new Rng(3));
  const h = T.matmul(x, w);
  const kept = T.tanh(h).keep();
  const y = T.sum(T.square(kept));
  y.backward();
  assert.ok(h.released, 'an intermediate is released by backward()');
  assert.equal(kept.released, false);
  assert.equal(kept.shape.length, 2);
  assert.ok(Number.isFinite(y.item()));
  throwsWith(() => h.toArray(), ReleasedTensorError, 'keep()');
  throwsWith(() => y.backward(), Rl4qeError, 'backward() called twice');
  // What survives a consumed graph is a constant: using it again records no gradient into it.
  assert.equal(kept.requiresGrad, false);
  assert.equal(T.exp(y).node, null);
  assert.ok(w.grad && !w.grad.released);
  // Views share storage: releasing one keeps the other valid.
  const z = T.tensor([1, 2, 3, 4], [2, 2]);
  const v = T.reshape(z, [4]);
  z.release();
  assert.deepEqual(v.toArray(), [1, 2, 3, 4]);
  // fromBuf never frees the caller's buffer.
  const mine = new Float32Array([1, 2]);
  T.fromBuf(mine, [2]).release();
  assert.equal(mine.length, 2);
  for (const t of [w, x, kept, y, v]) t.release();
});

test('gradients accumulate across backward calls; zeroGrad frees them', () => {
  const w = T.tensor([1, 2], [2], { requiresGrad: true });
  T.sum(T.scale(w, 3)).backward();
  T.sum(T.mul(w, w)).backward();
  assert.deepEqual(w.grad?.toArray(), [3 + 2, 3 + 4]);
  const g = w.grad!;
  w.zeroGrad();
  assert.equal(w.grad, null);
  assert.ok(g.released);
});

test('noGrad records nothing, also across await', async () => {
  const w = T.tensor([1, 2], [2], { requiresGrad: true });
  const y = T.noGrad(() => T.exp(w));
  assert.equal(y.node, null);
  assert.equal(y.requiresGrad, false);
  const z = await T.noGrad(async () => {
    await new Promise((r) => setTimeout(r, 1));
    assert.equal(T.isGradEnabled(), false);
    return T.exp(w);
  });
  assert.equal(z.node, null);
  assert.equal(T.isGradEnabled(), true);
  assert.ok(T.exp(w).node, 'recording resumes after the scope');
});

test('RL4QE_CHECK_NAN: NumericError names the first op that produced NaN/Inf', () => {
  T.setCheckNan(true);
  try {
    const x = T.tensor([1, -1], [2]);
    const y = T.scale(x, 2); // fine
    throwsWith(() => T.log(y), NumericError, 'NaN produced by op log');
    throwsWith(() => T.div(x, T.zeros([2])), NumericError, 'op div');
    // A gradient that overflows is named as the op's backward.
    const w = T.tensor([0], [1], { requiresGrad: true });
    throwsWith(() => T.sum(T.sqrt(w)).backward(), NumericError, 'sqrt (backward)');
  } finally {
    T.setCheckNan(false);
  }
  // The environment variable turns it on in a fresh process.
  const script = `
    const T = await import(${JSON.stringify(new URL('../../src/tensor/index.js', import.meta.url).href)});
    try { T.log(T.tensor([-1], [1])); console.log('no error'); }
    catch (e) { console.log(e.name + ': ' + e.message.split('\\n')[0]); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, RL4QE_CHECK_NAN: '1', RL4QE_BACKEND: 'reference' },
    encoding: 'utf8',
  });
  assert.match(r.stdout, /NumericError: .*NaN produced by op log/);
});

test('debug compare: a wrong kernel throws NumericError naming it; a right one passes', () => {
  const wrong: FullBackend = {
    ...referenceBackend,
    matmul: (a, b, out, p) => {
      referenceBackend.matmul(a, b, out, p);
      out[0] += 0.5;
    },
  };
  const cmp = compareBackend(wrong);
  const a = new Float32Array([1, 2, 3, 4]);
  const out = new Float32Array(4);
  const p = {
    batch: 1,
    m: 2,
    k: 2,
    n: 2,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideOut: 0,
  };
  throwsWith(
    () => cmp.matmul(a, a, out, p),
    NumericError,
    'kernel matmul disagrees',
    'buffer argument 2',
  );
  const ok = compareBackend(referenceBackend);
  ok.matmul(a, a, out, p);
  assert.deepEqual(Array.from(out), [7, 10, 15, 22]);
  // In-place kernels (out === x) stay in place on the oracle side too.
  const rows = new Float32Array([1, 2, 3, 4]);
  ok.softmax(rows, 2, 2, rows, false);
  ok.binary('mul', rows, [2, 1], rows, [2, 1], rows, [2, 2]);
  assert.ok(Math.abs(rows[1] - (Math.exp(1) / (1 + Math.exp(1))) ** 2) < 1e-6);
  // Through the environment variable, for a whole forward/backward.
  const script = `
    const T = await import(${JSON.stringify(new URL('../../src/tensor/index.js', import.meta.url).href)});
    const w = T.tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    T.sum(T.softmax(T.matmul(w, w))).backward();
    console.log(JSON.stringify({ compare: T.backendInfo().debugCompare, grad: w.grad.toArray().length }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, RL4QE_DEBUG_COMPARE: '1', RL4QE_BACKEND: 'reference' },
    encoding: 'utf8',
  });
  assert.equal(r.stdout.trim(), '{"compare":true,"grad":4}', r.stderr);
});

test('tidy releases temporaries and keeps results, parameters and gradients', () => {
  const be = T.getBackend();
  const w = T.randn([3, 3], new Rng(4), { requiresGrad: true });
  const before = be.liveBytes();
  const out = T.tidy(() => {
    const x = T.randn([2, 3], new Rng(5));
    const loss = T.sum(T.square(T.matmul(x, w)));
    loss.backward();
    return { loss: loss.item(), keep: T.exp(x) };
  });
  assert.ok(Number.isFinite(out.loss));
  assert.equal(out.keep.released, false);
  assert.ok(w.grad && !w.grad.released);
  const live = be.liveBytes() - before;
  assert.equal(live, (6 + 9) * 4, 'only the returned tensor and the gradient stay allocated');
  out.keep.release();
  w.release();
});

test('thousands of forward/backward steps do not grow live memory', () => {
  const be = T.getBackend();
  const rng = new Rng(9);
  const [d, r, V, N] = [16, 4, 11, 6];
  const base = T.randn([d, d], rng, { std: 0.3 });
  const A = T.randn([r, d], rng, { std: 0.3, requiresGrad: true });
  const B = T.zeros([d, r], { requiresGrad: true });
  const norm = T.ones([d]);
  const head = T.randn([V, d], rng, { std: 0.3 });
  const table = T.ropeTable({ headDim: 4, theta: 10000, maxPositions: 8 });
  const positions = Int32Array.from({ length: N }, (_, i) => i);
  const targets = Int32Array.from({ length: N }, (_, i) => (i * 7) % V);
  const step = (): number => {
    const x = T.randn([N, d], rng); // an input outside the graph: released by hand
    const h = T.rmsNorm(x, norm, 1e-6);
    const lora = T.matmul(T.matmul(h, A, { transB: true }), B, { transB: true });
    const y = T.add(T.matmul(h, base, { transB: true }), lora);
    const q = T.rope(T.reshape(y, [1, N, 4, 4]), table, positions);
    const att = T.reshape(T.attention(q, q, q, { causal: true }), [N, d]);
    const loss = T.crossEntropy(T.silu(att), head, targets, { chunkRows: 4 });
    loss.backward();
    const v = loss.item();
    loss.release();
    x.release();
    A.zeroGrad();
    B.zeroGrad();
    return v;
  };
  step();
  const after1 = be.liveBytes();
  const heap1 = process.memoryUsage().heapUsed;
  for (let i = 0; i < 2000; i++) {
    step();
    assert.ok(
      be.liveBytes() <= after1,
      `live bytes grew at step ${i}: ${be.liveBytes()} > ${after1}`,
    );
  }
  assert.equal(be.liveBytes(), after1);
  // The JS heap may fluctuate with GC, but must not grow with the step count.
  const heapGrowth = process.memoryUsage().heapUsed - heap1;
  assert.ok(heapGrowth < 64 * 2 ** 20, `heap grew by ${heapGrowth} bytes over 2000 steps`);
  for (const t of [base, A, B, norm, head]) t.release();
});

test('backend selection: one warning without the addon; RL4QE_BACKEND=native without it is a clear error', () => {
  const url = JSON.stringify(new URL('../../src/tensor/index.js', import.meta.url).href);
  const script = `
    const T = await import(${url});
    for (let i = 0; i < 3; i++) T.exp(T.tensor([1, 2], [2])).release();
    console.log(JSON.stringify(T.backendInfo()));`;
  const env: NodeJS.ProcessEnv = { ...process.env, RL4QE_LOG: 'info' };
  delete env.RL4QE_BACKEND;
  delete env.RL4QE_DEBUG_COMPARE;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
  });
  const info = JSON.parse(r.stdout.trim()) as T.BackendInfo;
  const warnings = r.stderr.split('\n').filter((l) => l.includes('reference backend')).length;
  if (info.nativeAvailable) {
    assert.equal(info.name, 'native');
    assert.equal(warnings, 0, r.stderr);
  } else {
    assert.equal(info.name, 'reference');
    assert.equal(warnings, 1, `exactly one warning:\n${r.stderr}`);
    assert.match(r.stderr, /build-native/);
    const n = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...env, RL4QE_BACKEND: 'native' },
      encoding: 'utf8',
    });
    assert.notEqual(n.status, 0);
    assert.match(n.stderr, /NotFoundError|native backend is not available/);
  }
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...env, RL4QE_BACKEND: 'cuda' },
    encoding: 'utf8',
  });
  assert.match(bad.stderr, /RL4QE_BACKEND names no backend/);
});

test('tokenLogProbs never holds N×V logits; attention never allocates a Tq×Tk matrix', () => {
  const be = T.getBackend();
  const origAlloc = be.alloc;
  let largest = 0;
  be.alloc = (dtype, length) => {
    largest = Math.max(largest, length);
    return origAlloc(dtype, length);
  };
  try {
    const rng = new Rng(11);
    const [N, d, V] = [64, 8, 300];
    const h = T.randn([N, d], rng, { requiresGrad: true });
    const w = T.randn([V, d], rng, { requiresGrad: true });
    largest = 0;
    const loss = T.crossEntropy(
      h,
      w,
      Int32Array.from({ length: N }, (_, i) => i % V),
      {
        chunkRows: 4,
      },
    );
    loss.backward();
    // The weight gradient [V, d] is the largest buffer; a chunk is 4 × V; N × V would be 19200.
    assert.ok(largest <= Math.max(V * d, 4 * V), `largest allocation ${largest}`);
    const Tn = 96;
    const q = T.randn([1, Tn, 2, 4], rng, { requiresGrad: true });
    const k = T.randn([1, Tn, 1, 4], rng, { requiresGrad: true });
    largest = 0;
    T.sum(T.attention(q, k, k, { causal: true })).backward();
    assert.ok(largest < Tn * Tn, `largest allocation ${largest} (Tq×Tk = ${Tn * Tn})`);
    for (const t of [h, w, loss, q, k]) t.release();
  } finally {
    be.alloc = origAlloc;
  }
});
