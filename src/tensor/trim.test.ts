// trimActivations (tensor.ts) and the `reads` declarations of rules.ts: every differentiable
// primitive, with every combination of inputs needing a gradient, run with its inputs and its
// output as trimmable intermediates, gives the same gradients as without trimming (a rule that
// reads a buffer it did not declare throws ReleasedTensorError here); and the lifetime rules:
// what is freed, what stays (views that are read, kept tensors, the result, escaped tensors),
// tidy and backward after trimming, no leak.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from './index.js';
import { nativeStatus } from '../backend/index.js';
import { ReleasedTensorError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

const backends: T.BackendName[] = ['reference'];
if (nativeStatus().backend) backends.push('native');

type Tensor = T.Tensor;

interface Case {
  name: string;
  /** Input values and shapes (leaves; which of them require grad varies). */
  inputs: { shape: number[]; lo?: number; hi?: number }[];
  /** Only these subsets of inputs may need a gradient (default: every non-empty subset). */
  needs?: boolean[][];
  op: (xs: Tensor[]) => Tensor;
}

const table = T.ropeTable({ headDim: 4, theta: 10000, maxPositions: 8 });
const pos = Int32Array.from([0, 1, 2, 0, 1, 2]);
const ids = Int32Array.from([1, 0, 2, 2]);
const targets = Int32Array.from([3, -1, 0]);

const unaryOps: [string, (x: Tensor) => Tensor, number, number][] = [
  ['exp', T.exp, -1, 1],
  ['log', T.log, 0.5, 2],
  ['sqrt', T.sqrt, 0.5, 2],
  ['rsqrt', T.rsqrt, 0.5, 2],
  ['sigmoid', T.sigmoid, -2, 2],
  ['silu', T.silu, -2, 2],
  ['tanh', T.tanh, -2, 2],
  ['relu', T.relu, -2, 2],
  ['neg', T.neg, -2, 2],
  ['square', T.square, -2, 2],
  ['abs', T.abs, -2, 2],
  ['recip', T.recip, 0.5, 2],
];

const cases: Case[] = [
  ...(
    [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const
  ).map(([transA, transB]): Case => ({
    name: `matmul ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} (shared b)`,
    inputs: [{ shape: transA ? [2, 5, 3] : [2, 3, 5] }, { shape: transB ? [4, 5] : [5, 4] }],
    op: ([a, b]) => T.matmul(a as Tensor, b as Tensor, { transA, transB }),
  })),
  {
    name: 'matmul batched b',
    inputs: [{ shape: [2, 3, 5] }, { shape: [2, 5, 4] }],
    op: ([a, b]) => T.matmul(a as Tensor, b as Tensor),
  },
  ...(
    [
      ['add', T.add],
      ['sub', T.sub],
      ['mul', T.mul],
      ['div', T.div],
      ['maximum', T.maximum],
    ] as const
  ).map(([name, f]): Case => ({
    name: `${name} (broadcast)`,
    inputs: [
      { shape: [3, 4], lo: 0.5, hi: 2 },
      { shape: [4], lo: 0.5, hi: 2 },
    ],
    op: ([a, b]) => f(a as Tensor, b as Tensor),
  })),
  { name: 'scale', inputs: [{ shape: [3, 4] }], op: ([x]) => T.scale(x as Tensor, 1.5) },
  ...unaryOps.map(([name, f, lo, hi]): Case => ({
    name,
    inputs: [{ shape: [3, 4], lo, hi }],
    op: ([x]) => f(x as Tensor),
  })),
  { name: 'reshape', inputs: [{ shape: [3, 4] }], op: ([x]) => T.reshape(x as Tensor, [2, 6]) },
  {
    name: 'permute',
    inputs: [{ shape: [2, 3, 4] }],
    op: ([x]) => T.permute(x as Tensor, [2, 0, 1]),
  },
  { name: 'slice', inputs: [{ shape: [3, 5] }], op: ([x]) => T.slice(x as Tensor, 1, 1, 4) },
  {
    name: 'concat',
    inputs: [{ shape: [2, 3] }, { shape: [2, 2] }],
    op: (xs) => T.concat(xs, 1),
  },
  { name: 'expand', inputs: [{ shape: [1, 4] }], op: ([x]) => T.expand(x as Tensor, [3, 4]) },
  { name: 'sum', inputs: [{ shape: [3, 4] }], op: ([x]) => T.sum(x as Tensor, 1) },
  { name: 'max', inputs: [{ shape: [3, 4] }], op: ([x]) => T.max(x as Tensor, 1) },
  { name: 'softmax', inputs: [{ shape: [3, 4] }], op: ([x]) => T.softmax(x as Tensor) },
  { name: 'logSoftmax', inputs: [{ shape: [3, 4] }], op: ([x]) => T.logSoftmax(x as Tensor) },
  {
    name: 'rmsNorm',
    inputs: [{ shape: [3, 4] }, { shape: [4], lo: 0.5, hi: 1.5 }],
    op: ([x, w]) => T.rmsNorm(x as Tensor, w as Tensor, 1e-5),
  },
  {
    name: 'rope',
    inputs: [{ shape: [2, 3, 2, 4] }],
    op: ([x]) => T.rope(x as Tensor, table, pos),
  },
  {
    name: 'attention (GQA, causal)',
    inputs: [{ shape: [2, 3, 2, 4] }, { shape: [2, 3, 1, 4] }, { shape: [2, 3, 1, 4] }],
    op: ([q, k, v]) => T.attention(q as Tensor, k as Tensor, v as Tensor, { causal: true }),
  },
  {
    name: 'embedding',
    inputs: [{ shape: [3, 4] }],
    op: ([t]) => T.embedding(t as Tensor, ids, [2, 2]),
  },
  {
    name: 'tokenLogProbs (2-row chunks)',
    inputs: [{ shape: [3, 4] }, { shape: [5, 4] }],
    op: ([h, w]) => T.tokenLogProbs(h as Tensor, w as Tensor, targets, { chunkRows: 2 }),
  },
  {
    name: 'dropout',
    inputs: [{ shape: [3, 4] }],
    op: ([x]) => T.dropout(x as Tensor, 0.5, new Rng(3), true),
  },
  {
    name: 'cast f32 → f64 → f32',
    inputs: [{ shape: [3, 4] }],
    op: ([x]) => T.cast(T.cast(x as Tensor, 'f64'), 'f32'),
  },
];

function subsets(n: number): boolean[][] {
  const out: boolean[][] = [];
  for (let m = 1; m < 1 << n; m++)
    out.push(Array.from({ length: n }, (_, i) => (m & (1 << i)) !== 0));
  return out;
}

/**
 * loss = Σ op(clone(x_i)) ⊙ R, with the op's inputs (the clones) and its output as intermediates
 * of one trimActivations scope (off: plain); returns the loss and the gradient of every leaf.
 */
function run(c: Case, needs: boolean[], trim: boolean, seed: number): (number[] | null)[] {
  const rng = new Rng(seed);
  const leaves = c.inputs.map((s, i) =>
    T.uniform(s.shape, s.lo ?? -1, s.hi ?? 1, rng, { requiresGrad: needs[i] === true }),
  );
  T.setTrimActivations(trim);
  try {
    return T.tidy(() => {
      let r: Tensor | null = null;
      const loss = T.trimActivations(() => {
        const xs = leaves.map((x) => T.clone(x));
        const y = c.op(xs);
        r = T.uniform([...y.shape], -1, 1, rng);
        // mul reads r only (for y's gradient): y is trimmable unless the op's backward reads it.
        return T.sum(T.mul(y, r));
      });
      loss.backward();
      const grads = leaves.map((x) => (x.grad ? x.grad.toArray() : null));
      for (const x of leaves) x.release();
      return [[loss.item()], ...grads];
    });
  } finally {
    T.setTrimActivations(true);
  }
}

for (const backend of backends) {
  test(`every rule's reads (${backend}): gradients with trimming equal those without, for every needs`, () => {
    T.setBackend(backend);
    try {
      let seed = 1;
      for (const c of cases) {
        for (const needs of c.needs ?? subsets(c.inputs.length)) {
          seed++;
          const off = run(c, needs, false, seed);
          let on: (number[] | null)[];
          try {
            on = run(c, needs, true, seed);
          } catch (e) {
            assert.fail(`${c.name} needs [${needs.join(', ')}]: ${(e as Error).message}`);
          }
          assert.deepEqual(on, off, `${c.name} needs [${needs.join(', ')}]`);
        }
      }
    } finally {
      T.setBackend('reference');
    }
  });

  test(`trimActivations (${backend}): what goes, what stays, and the error on a freed buffer`, () => {
    T.setBackend(backend);
    try {
      const rng = new Rng(7);
      const x = T.uniform([3, 4], -1, 1, rng, { requiresGrad: true });
      const w = T.uniform([4, 4], -1, 1, rng); // frozen
      const live0 = T.backendInfo().liveBytes;
      const seen: Record<string, Tensor> = {};
      let escaped: Tensor | null = null;
      const out = T.trimActivations(() => {
        const h = T.clone(x); // read by the matmul? no: w is frozen, dA reads only w
        const p = T.matmul(h, w, { transB: true }); // feeds add: never read
        const s = T.add(p, x); // its view v is read by mul
        const v = T.reshape(s, [4, 3]);
        const kept = T.scale(v, 2).keep(); // kept: stays though add reads nothing
        const m = T.mul(v, v);
        escaped = T.scale(h, 3); // consumed by no node: may have escaped, stays
        const y = T.add(T.reshape(m, [3, 4]), T.reshape(kept, [3, 4]));
        Object.assign(seen, { h, p, s, v, kept, m, y });
        return y;
      });
      const t = seen as Record<'h' | 'p' | 's' | 'v' | 'kept' | 'm' | 'y', Tensor>;
      assert.equal(t.h.released, true, 'matmul with a frozen b does not read a');
      assert.equal(t.p.released, true, 'add reads neither input');
      assert.equal(t.s.released, true, 'the base tensor of a view goes…');
      assert.equal(t.v.released, false, '…but the storage stays with the view that mul reads');
      assert.ok(Number.isFinite(t.v.data[0] as number));
      assert.equal(t.kept.released, false, 'kept tensors stay');
      assert.equal(t.m.released, true);
      assert.equal(out.released, false, 'the result stays');
      assert.equal((escaped as unknown as Tensor).released, false, 'unconsumed tensors stay');
      assert.throws(
        () => t.p.data,
        (e: unknown) =>
          e instanceof ReleasedTensorError && /trimActivations freed its buffer/.test(e.message),
      );
      // The graph still runs through the freed tensors.
      const loss = T.sum(out);
      loss.backward();
      assert.ok(x.grad && x.grad.toArray().some((g) => g !== 0));
      // backward's own release and a later release tolerate the freed buffers: no leak.
      loss.release();
      t.kept.release();
      (escaped as unknown as Tensor).release();
      for (const u of Object.values(t)) u.release();
      x.zeroGrad();
      const live1 = T.backendInfo().liveBytes;
      if (Number.isFinite(live0)) assert.equal(live1, live0, 'every buffer was freed exactly once');
      x.release();
      w.release();
    } finally {
      T.setBackend('reference');
    }
  });

  test(`trimActivations (${backend}): off under noGrad, off by setTrimActivations, inside tidy`, () => {
    T.setBackend(backend);
    try {
      const rng = new Rng(8);
      const x = T.uniform([2, 3], -1, 1, rng, { requiresGrad: true });
      let a: Tensor | null = null;
      T.noGrad(() =>
        T.trimActivations(() => {
          a = T.add(x, x);
          return T.add(a, x);
        }),
      );
      assert.equal((a as unknown as Tensor).released, false, 'no tape: nothing to trim');
      T.setTrimActivations(false);
      const y = T.trimActivations(() => {
        a = T.add(x, x);
        return T.add(a, x);
      });
      T.setTrimActivations(true);
      assert.equal((a as unknown as Tensor).released, false, 'switched off');
      y.release();
      const live0 = T.backendInfo().liveBytes;
      T.tidy(() => {
        const z = T.trimActivations(() => T.add(T.add(x, x), x));
        T.sum(z).backward();
      });
      x.zeroGrad();
      if (Number.isFinite(live0)) assert.equal(T.backendInfo().liveBytes, live0);
      x.release();
    } finally {
      T.setBackend('reference');
    }
  });
}
