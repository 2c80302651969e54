import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, mul, noGrad, randn, sum, tensor, type Tensor } from '../tensor/index.js';
import { Linear, linear } from './linear.js';
import { AdamW, clipGradNorm } from './optim.js';
import { Rng } from '../util/rng.js';

test('LoRA init: B is zero, A ~ U(−1/√in, 1/√in) like PEFT; the adapted layer starts equal', () => {
  const lin = new Linear({ inFeatures: 400, outFeatures: 30 });
  (lin.weight as Tensor).data.set(randn([30, 400], new Rng(1)).data);
  const x = randn([2, 5, 400], new Rng(2));
  const before = noGrad(() => Float32Array.from(lin.forward(x).data));
  const a = lin.addLora({ r: 8, alpha: 16, rng: new Rng(3) });
  assert.ok(a.b.data.every((v) => v === 0));
  const bound = 1 / Math.sqrt(400);
  const av = a.a.data;
  assert.ok(av.every((v) => Math.abs(v) <= bound));
  // Uniform on [−b, b]: variance b²/3; 3200 samples, so within ±10 %.
  let s2 = 0;
  for (const v of av) s2 += v * v;
  assert.ok(Math.abs(s2 / av.length / ((bound * bound) / 3) - 1) < 0.1);
  assert.equal(a.scaling, 2);
  const after = noGrad(() => lin.forward(x).data);
  assert.deepEqual(Array.from(after), Array.from(before));
});

test('linear(): y = xWᵀ + b + (α/r)·x·Aᵀ·Bᵀ, and dropout applies only to the adapter input in training', () => {
  const lin = new Linear({ inFeatures: 3, outFeatures: 2, bias: true });
  (lin.weight as Tensor).data.set([1, 0, 0, 0, 1, 0]);
  lin.bias!.data.set([0.5, -0.5]);
  const l = lin.addLora({ r: 1, alpha: 2, dropout: 0.5, rng: new Rng(0) });
  l.a.data.set([1, 1, 1]);
  l.b.data.set([1, 2]);
  const x = tensor([1, 2, 3], [1, 3]);
  const y = noGrad(() => linear(x, lin).data);
  // base [1.5, 1.5] + 2·6·[1, 2]
  assert.deepEqual(Array.from(y), [13.5, 25.5]);
  const outs = new Set<string>();
  for (let s = 0; s < 20; s++) {
    outs.add(
      Array.from(noGrad(() => linear(x, lin, { training: true, rng: new Rng(s) }).data)).join(','),
    );
  }
  assert.ok(outs.size > 1, 'dropout changes the output in training');
  assert.throws(() => linear(x, lin, { training: true }), /rng/);
});

test('AdamW: state saves and restores exactly; clipGradNorm follows torch', () => {
  const make = (): { p: ReturnType<typeof tensor>; opt: AdamW } => {
    const p = tensor([0.1, -0.2, 0.3, 0.4], [4], { requiresGrad: true });
    return { p, opt: new AdamW([p], { lr: 0.1, weightDecay: 0.1 }) };
  };
  const g = tensor([1, -2, 3, -4], [4]);
  const lossStep = (p: ReturnType<typeof tensor>, opt: AdamW): void => {
    opt.zeroGrad();
    sum(mul(p, g)).backward();
    opt.update();
  };
  const a = make();
  lossStep(a.p, a.opt);
  lossStep(a.p, a.opt);
  const saved = a.opt.state();
  const savedP = Float32Array.from(a.p.data);
  lossStep(a.p, a.opt);
  const b = make();
  b.p.data.set(savedP);
  b.opt.loadState(saved);
  lossStep(b.p, b.opt);
  assert.deepEqual(Array.from(b.p.data), Array.from(a.p.data));
  assert.equal(b.opt.step, 3);
  // First step of Adam moves every coordinate by lr·sign(g) (plus decay).
  const c = make();
  lossStep(c.p, c.opt);
  const expected = [0.1, -0.2, 0.3, 0.4].map(
    (v, i) => v * (1 - 0.01) - 0.1 * Math.sign([1, -2, 3, -4][i]!),
  );
  c.p.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6));
  assert.throws(() => c.opt.loadState({ ...saved, m: [] }), /does not match/);

  const q = tensor([3, 4], [2], { requiresGrad: true });
  mean(mul(q, q)).backward(); // grad = q = [3, 4], norm 5
  const n = clipGradNorm([q], 1);
  assert.ok(Math.abs(n - 5) < 1e-6);
  const gq = q.grad!.data;
  assert.ok(Math.abs(gq[0]! - 0.6) < 1e-6 && Math.abs(gq[1]! - 0.8) < 1e-6);
});
