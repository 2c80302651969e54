// Backend conformance: every op on every available backend (reference always; native when the
// addon loads), in float32, against the reference backend in float64 on the same values:
// forward outputs and the gradients of every input, with a stated per-op tolerance.
//
// Error measure: max |ours − f64 reference| / max(1, max |f64 reference|) over the tensor.
// Tolerances (TOL below) allow float32 rounding, float32 accumulation over long sums
// (matmul, attention, vocabulary reductions) and vectorised exp/log approximations on native.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { nativeStatus } from '../../src/backend/index.js';
import { Rng } from '../../src/util/rng.js';

const TOL = {
  elementwise: 1e-5,
  transcendental: 5e-5,
  layout: 0,
  reduce: 5e-5,
  matmul: 1e-4,
  rows: 5e-5,
  attention: 1e-4,
  vocab: 1e-4,
  block: 5e-4,
} as const;

/** Worst error seen per backend and op (printed with RL4QE_CONFORMANCE_REPORT=1). */
const worstSeen = new Map<string, number>();
function note(backend: string, name: string, err: number): void {
  const key = `${backend.padEnd(10)} ${name.split(' ')[0].padEnd(14)}`;
  worstSeen.set(key, Math.max(worstSeen.get(key) ?? 0, err));
}
after(() => {
  if (process.env.RL4QE_CONFORMANCE_REPORT !== '1') return;
  const lines = [...worstSeen].map(([k, v]) => `${k} ${v.toExponential(2)}`).sort();
  console.log(
    `worst relative error per backend and op (forward and gradients):\n${lines.join('\n')}`,
  );
});

const backends: T.BackendName[] = ['reference'];
if (nativeStatus().backend) backends.push('native');

interface Spec {
  shape: number[];
  lo?: number;
  hi?: number;
  grad?: boolean;
}

interface Case {
  name: string;
  tol: number;
  specs: Spec[];
  f: (xs: T.Tensor[]) => T.Tensor;
}

/** Odd and small sizes: edge tiles and remainders of vectorised kernels. */
const SIZES = [1, 2, 3, 7, 13, 33];

function pick(rng: Rng): number {
  return SIZES[rng.int(SIZES.length)];
}

function relErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = ours[i];
    const b = ref[i];
    if (a === b) continue;
    err = Math.max(err, Number.isFinite(a - b) ? Math.abs(a - b) / scale : Infinity);
  }
  return err;
}

function run(
  backend: T.BackendName,
  dtype: 'f32' | 'f64',
  c: Case,
  values: number[][],
  R: number[] | null,
): { out: number[]; grads: (number[] | null)[]; R: number[] } {
  T.setBackend(backend);
  const xs = c.specs.map((s, i) =>
    T.tensor(values[i], s.shape, { dtype, requiresGrad: s.grad ?? true }),
  );
  const y = c.f(xs);
  const r =
    R ?? Array.from({ length: y.size }, (_, i) => Math.fround(Math.sin(i * 12.9898 + 1) * 0.9));
  const out = y.toArray();
  y.backward(T.tensor(r, y.shape, { dtype }));
  const grads = xs.map((x) => (x.grad ? x.grad.toArray() : null));
  y.release();
  for (const x of xs) x.release();
  return { out, grads, R: r };
}

function check(backend: T.BackendName, c: Case, seed: number): void {
  const rng = new Rng(seed);
  const values = c.specs.map((s) =>
    Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () =>
      // Round to float32 so both dtypes see identical inputs.
      Math.fround(rng.uniform(s.lo ?? -1, s.hi ?? 1)),
    ),
  );
  const ref = run('reference', 'f64', c, values, null);
  const ours = run(backend, 'f32', c, values, ref.R);
  const where = `${c.name} on ${backend} (shapes ${c.specs.map((s) => `[${s.shape}]`).join(' ')})`;
  assert.equal(ours.out.length, ref.out.length, `${where}: output size`);
  const fe = relErr(ours.out, ref.out);
  note(backend, c.name, fe);
  assert.ok(fe <= c.tol, `${where}: forward error ${fe.toExponential(2)} > ${c.tol}`);
  ref.grads.forEach((g, i) => {
    if (g === null) return;
    // A check against all-zero gradients would pass vacuously.
    assert.ok(
      g.some((v) => v !== 0) || c.name === 'relu' || c.name === 'dropout',
      `${where}: reference gradient ${i} is all zero`,
    );
    const og = ours.grads[i];
    assert.ok(og, `${where}: no gradient for input ${i}`);
    const be = relErr(og, g);
    note(backend, c.name, be);
    assert.ok(be <= c.tol, `${where}: gradient ${i} error ${be.toExponential(2)} > ${c.tol}`);
  });
}

/** Cases with seeded random shapes: `make` is called once per seed. */
function cases(rng: Rng): Case[] {
  const out: Case[] = [];
  const [m, k, n, b] = [pick(rng), pick(rng), pick(rng), pick(rng)];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const aS = transA ? [k, m] : [m, k];
      const bS = transB ? [n, k] : [k, n];
      const f = ([x, y]: T.Tensor[]) => T.matmul(x, y, { transA, transB });
      const tag = `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
      out.push({
        name: `matmul ${tag}`,
        tol: TOL.matmul,
        specs: [{ shape: aS }, { shape: bS }],
        f,
      });
      out.push({
        name: `matmul batched ${tag}`,
        tol: TOL.matmul,
        specs: [{ shape: [b, ...aS] }, { shape: [b, ...bS] }],
        f,
      });
      out.push({
        name: `matmul shared-b ${tag}`,
        tol: TOL.matmul,
        specs: [{ shape: [b, 2, ...aS] }, { shape: bS }],
        f,
      });
    }
  }
  const sa = [b, m, n];
  const sb = [rng.int(2) === 0 ? 1 : m, n];
  const bin: [string, (x: T.Tensor, y: T.Tensor) => T.Tensor][] = [
    ['add', T.add],
    ['sub', T.sub],
    ['mul', T.mul],
    ['maximum', T.maximum],
  ];
  for (const [name, f] of bin) {
    out.push({
      name,
      tol: TOL.elementwise,
      specs: [{ shape: sa }, { shape: sb }],
      f: ([x, y]) => f(x, y),
    });
  }
  out.push({
    name: 'div',
    tol: TOL.elementwise,
    specs: [{ shape: sa }, { shape: sb, lo: 0.5, hi: 2 }],
    f: ([x, y]) => T.div(x, y),
  });
  out.push({
    name: 'scale',
    tol: TOL.elementwise,
    specs: [{ shape: sa }],
    f: ([x]) => T.scale(x, -1.7),
  });
  out.push({
    name: 'addScalar',
    tol: TOL.elementwise,
    specs: [{ shape: sa }],
    f: ([x]) => T.addScalar(x, 0.3),
  });
  const un: [string, (x: T.Tensor) => T.Tensor, number, number][] = [
    ['exp', T.exp, -3, 3],
    ['log', T.log, 0.1, 3],
    ['sqrt', T.sqrt, 0.1, 3],
    ['rsqrt', T.rsqrt, 0.1, 3],
    ['sigmoid', T.sigmoid, -8, 8],
    ['silu', T.silu, -8, 8],
    ['tanh', T.tanh, -3, 3],
    ['relu', T.relu, -1, 1],
    ['neg', T.neg, -1, 1],
    ['square', T.square, -2, 2],
    ['abs', T.abs, -1, 1],
    ['recip', T.recip, 0.5, 2],
  ];
  for (const [name, f, lo, hi] of un) {
    out.push({ name, tol: TOL.transcendental, specs: [{ shape: sa, lo, hi }], f: ([x]) => f(x) });
  }
  out.push({
    name: 'reshape',
    tol: TOL.layout,
    specs: [{ shape: sa }],
    f: ([x]) => T.reshape(x, [-1, n]),
  });
  out.push({
    name: 'transpose',
    tol: TOL.layout,
    specs: [{ shape: sa }],
    f: ([x]) => T.transpose(x, 0, 2),
  });
  out.push({
    name: 'permute',
    tol: TOL.layout,
    specs: [{ shape: [b, m, 2, n] }],
    f: ([x]) => T.permute(x, [0, 2, 1, 3]),
  });
  const s0 = rng.int(m);
  out.push({
    name: 'slice',
    tol: TOL.layout,
    specs: [{ shape: sa }],
    f: ([x]) => T.slice(x, 1, s0, m),
  });
  out.push({
    name: 'concat',
    tol: TOL.layout,
    specs: [{ shape: [b, m, n] }, { shape: [b, k, n] }],
    f: ([x, y]) => T.concat([x, y], 1),
  });
  out.push({
    name: 'expand',
    tol: TOL.reduce,
    specs: [{ shape: [m, 1] }],
    f: ([x]) => T.expand(x, [b, m, n]),
  });
  out.push({ name: 'sum all', tol: TOL.reduce, specs: [{ shape: sa }], f: ([x]) => T.sum(x) });
  out.push({
    name: 'sum axes',
    tol: TOL.reduce,
    specs: [{ shape: sa }],
    f: ([x]) => T.sum(x, [0, 2], true),
  });
  out.push({ name: 'mean', tol: TOL.reduce, specs: [{ shape: sa }], f: ([x]) => T.mean(x, 1) });
  out.push({ name: 'max', tol: TOL.reduce, specs: [{ shape: sa }], f: ([x]) => T.max(x, 1) });
  out.push({
    name: 'softmax',
    tol: TOL.rows,
    specs: [{ shape: sa, lo: -4, hi: 4 }],
    f: ([x]) => T.softmax(x),
  });
  out.push({
    name: 'logSoftmax',
    tol: TOL.rows,
    specs: [{ shape: sa, lo: -4, hi: 4 }],
    f: ([x]) => T.logSoftmax(x),
  });
  out.push({
    name: 'rmsNorm',
    tol: TOL.rows,
    specs: [{ shape: sa }, { shape: [n] }],
    f: ([x, w]) => T.rmsNorm(x, w, 1e-6),
  });
  const D = 2 * pick(rng);
  const H = pick(rng) > 7 ? 4 : 2;
  const KVH = rng.int(2) === 0 ? H : 1;
  const Tq = Math.min(pick(rng), 13);
  const Tk = Tq + rng.int(4);
  const table = T.ropeTable({ headDim: D, theta: 10000, maxPositions: 64 });
  const positions = Int32Array.from({ length: 2 * Tq }, () => rng.int(64));
  out.push({
    name: 'rope',
    tol: TOL.transcendental,
    specs: [{ shape: [2, Tq, H, D] }],
    f: ([x]) => T.rope(x, table, positions),
  });
  const keyStart = new Int32Array([0, rng.int(Tk)]);
  for (const causal of [true, false]) {
    out.push({
      name: `attention causal=${causal} H=${H} KVH=${KVH}`,
      tol: TOL.attention,
      specs: [
        { shape: [2, Tq, H, D], lo: -2, hi: 2 },
        { shape: [2, Tk, KVH, D], lo: -2, hi: 2 },
        { shape: [2, Tk, KVH, D] },
      ],
      f: ([q, kk, v]) => T.attention(q, kk, v, { causal, keyStart }),
    });
  }
  const V = 3 * pick(rng) + 5;
  const N = pick(rng);
  const ids = Int32Array.from({ length: N }, () => rng.int(V));
  out.push({
    name: 'embedding',
    tol: TOL.reduce,
    specs: [{ shape: [V, k] }],
    f: ([t]) => T.embedding(t, ids),
  });
  const targets = Int32Array.from({ length: N }, (_, i) => (i === 0 && N > 1 ? -1 : rng.int(V)));
  out.push({
    name: 'tokenLogProbs',
    tol: TOL.vocab,
    specs: [{ shape: [N, k], lo: -2, hi: 2 }, { shape: [V, k] }],
    f: ([h, w]) => T.tokenLogProbs(h, w, targets, { chunkRows: 1 + rng.int(4) }),
  });
  out.push({
    name: 'crossEntropy',
    tol: TOL.vocab,
    specs: [{ shape: [N, k] }, { shape: [V, k], grad: false }],
    f: ([h, w]) => T.crossEntropy(h, w, targets),
  });
  const dseed = rng.nextU32();
  out.push({
    name: 'dropout',
    tol: TOL.elementwise,
    specs: [{ shape: sa }],
    f: ([x]) => T.dropout(x, 0.25, new Rng(dseed), true),
  });
  return out;
}

for (const backend of backends) {
  test(`every op on ${backend} vs reference float64 (seeded random shapes)`, () => {
    for (let seed = 1; seed <= 8; seed++) {
      for (const c of cases(new Rng(seed))) check(backend, c, seed * 1000 + c.name.length);
    }
  });

  test(`larger matmuls on ${backend} (edge tiles)`, () => {
    const shapes: [number, number, number][] = [
      [65, 130, 47],
      [1, 257, 33],
      [97, 31, 129],
    ];
    for (const [m, k, n] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          check(
            backend,
            {
              name: `matmul ${m}x${k}x${n} ${transA}${transB}`,
              tol: TOL.matmul,
              specs: [{ shape: transA ? [k, m] : [m, k] }, { shape: transB ? [n, k] : [k, n] }],
              f: ([a, b]) => T.matmul(a, b, { transA, transB }),
            },
            m + k + n,
          );
        }
      }
    }
  });

  test(`a Llama-style block (RMSNorm, RoPE, GQA attention, SwiGLU) on ${backend}`, () => {
    const [B, S, H, KVH, D, F] = [2, 7, 4, 2, 8, 24];
    const d = H * D;
    const table = T.ropeTable({ headDim: D, theta: 10000, maxPositions: 16 });
    const positions = Int32Array.from({ length: B * S }, (_, i) => i % S);
    const block = ([x, wn, wq, wk, wv, wo, wg, wu, wd]: T.Tensor[]) => {
      const h = T.rmsNorm(x, wn, 1e-6);
      const q = T.rope(
        T.reshape(T.matmul(h, wq, { transB: true }), [B, S, H, D]),
        table,
        positions,
      );
      const k = T.rope(
        T.reshape(T.matmul(h, wk, { transB: true }), [B, S, KVH, D]),
        table,
        positions,
      );
      const v = T.reshape(T.matmul(h, wv, { transB: true }), [B, S, KVH, D]);
      const a = T.reshape(T.attention(q, k, v, { causal: true }), [B, S, d]);
      const r = T.add(x, T.matmul(a, wo, { transB: true }));
      const h2 = T.rmsNorm(r, wn, 1e-6);
      const g = T.silu(T.matmul(h2, wg, { transB: true }));
      const u = T.matmul(h2, wu, { transB: true });
      return T.add(r, T.matmul(T.mul(g, u), wd, { transB: true }));
    };
    check(
      backend,
      {
        name: 'block',
        tol: TOL.block,
        specs: [
          { shape: [B, S, d] },
          { shape: [d], lo: 0.5, hi: 1.5 },
          { shape: [d, d], lo: -0.3, hi: 0.3 },
          { shape: [KVH * D, d], lo: -0.3, hi: 0.3 },
          { shape: [KVH * D, d], lo: -0.3, hi: 0.3 },
          { shape: [d, d], lo: -0.3, hi: 0.3 },
          { shape: [F, d], lo: -0.3, hi: 0.3 },
          { shape: [F, d], lo: -0.3, hi: 0.3 },
          { shape: [d, F], lo: -0.3, hi: 0.3 },
        ],
        f: block,
      },
      7,
    );
  });

  test(`adamw kernel on ${backend} vs reference float64`, () => {
    T.setBackend(backend);
    const be = T.getBackend();
    const rng = new Rng(3);
    const n = 37;
    const init = () => Array.from({ length: n }, () => Math.fround(rng.uniform(-1, 1)));
    const [p0, g0, m0] = [init(), init(), init()];
    const v0 = init().map((x) => Math.fround(Math.abs(x)));
    const f32 = [p0, g0, m0, v0].map((a) => Float32Array.from(a));
    const f64 = [p0, g0, m0, v0].map((a) => Float64Array.from(a));
    const params = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 };
    be.adamw(f32[0], f32[1], f32[2], f32[3], params);
    T.setBackend('reference');
    T.getBackend().adamw(f64[0], f64[1], f64[2], f64[3], params);
    for (const i of [0, 2, 3]) assert.ok(relErr(f32[i], f64[i]) <= 1e-5, `adamw buffer ${i}`);
  });
}

test('reference float32 agrees with reference float64 on a hand-computed value', () => {
  // softmax([0, ln 3]) = [1/4, 3/4]; matmul of known matrices.
  T.setBackend('reference');
  const s = T.softmax(T.tensor([0, Math.log(3)], [1, 2]));
  assert.ok(Math.abs(s.data[0] - 0.25) < 1e-7 && Math.abs(s.data[1] - 0.75) < 1e-7);
  const c = T.matmul(T.tensor([1, 2, 3, 4], [2, 2]), T.tensor([5, 6, 7, 8], [2, 2]));
  assert.deepEqual(c.toArray(), [19, 22, 43, 50]);
  const ct = T.matmul(T.tensor([1, 2, 3, 4], [2, 2]), T.tensor([5, 6, 7, 8], [2, 2]), {
    transA: true,
    transB: true,
  });
  assert.deepEqual(ct.toArray(), [23, 31, 34, 46]);
});

for (const backend of backends) {
  test(`Llama-style block with LoRA r=8 on q, k, v, o: loss and LoRA gradients on ${backend}`, () => {
    // Frozen base weights; trainable LoRA A [r, in] and B [out, r] (B non-zero so every
    // gradient is exercised); loss = crossEntropy of the block output against targets.
    const [B, S, H, KVH, D, F, r, V] = [1, 9, 4, 2, 8, 24, 8, 19];
    const d = H * D;
    const scaleL = 16 / r;
    const table = T.ropeTable({ headDim: D, theta: 10000, maxPositions: 16 });
    const positions = Int32Array.from({ length: B * S }, (_, i) => i);
    const targets = Int32Array.from({ length: B * S }, (_, i) => (i * 5) % V);
    const lora = (x: T.Tensor, w: T.Tensor, a: T.Tensor, b: T.Tensor) =>
      T.add(
        T.matmul(x, w, { transB: true }),
        T.scale(T.matmul(T.matmul(x, a, { transB: true }), b, { transB: true }), scaleL),
      );
    const f = (xs: T.Tensor[]) => {
      const [x, wn, wq, wk, wv, wo, wg, wu, wd, head, ...ab] = xs;
      const [aq, bq, ak, bk, av, bv, ao, bo] = ab;
      const h = T.rmsNorm(x, wn, 1e-6);
      const q = T.rope(T.reshape(lora(h, wq, aq, bq), [B, S, H, D]), table, positions);
      const k = T.rope(T.reshape(lora(h, wk, ak, bk), [B, S, KVH, D]), table, positions);
      const v = T.reshape(lora(h, wv, av, bv), [B, S, KVH, D]);
      const att = T.reshape(T.attention(q, k, v, { causal: true }), [B, S, d]);
      const res = T.add(x, lora(att, wo, ao, bo));
      const h2 = T.rmsNorm(res, wn, 1e-6);
      const mlp = T.matmul(
        T.mul(T.silu(T.matmul(h2, wg, { transB: true })), T.matmul(h2, wu, { transB: true })),
        wd,
        { transB: true },
      );
      const out = T.reshape(T.add(res, mlp), [B * S, d]);
      return T.reshape(T.crossEntropy(out, head, targets, { chunkRows: 4 }), [1]);
    };
    const frozen = (shape: number[], lo = -0.3, hi = 0.3) => ({ shape, lo, hi, grad: false });
    const train = (shape: number[]) => ({ shape, lo: -0.2, hi: 0.2 });
    check(
      backend,
      {
        name: 'LoRA block loss',
        tol: TOL.block,
        specs: [
          frozen([B, S, d], -1, 1),
          frozen([d], 0.5, 1.5),
          frozen([d, d]),
          frozen([KVH * D, d]),
          frozen([KVH * D, d]),
          frozen([d, d]),
          frozen([F, d]),
          frozen([F, d]),
          frozen([d, F]),
          frozen([V, d], -1, 1),
          train([r, d]),
          train([d, r]),
          train([r, d]),
          train([KVH * D, r]),
          train([r, d]),
          train([KVH * D, r]),
          train([r, d]),
          train([d, r]),
        ],
        f,
      },
      21,
    );
  });
}
