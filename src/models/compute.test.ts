// The compute modes (models/compute.ts) on the tiny Llama and Qwen2 fixtures with LoRA on every
// projection:
//  - bf16 on the native kernels equals bf16 on the reference kernels (the definition): loss
//    within 2e-4 relative, every LoRA gradient at cosine ≥ 0.99995 and max |Δ| ≤ 5e-3 of its
//    max |g|. Not fp32-exact: a difference at the level of fp32 summation order can move an
//    activation across a bf16 rounding boundary (one bf16 step is 2⁻⁸ relative), and the next
//    layer sees that step (measured worst: 2.0e-3 of max |g|, cosine 0.999998; each single
//    product is tested to 1e-5 of Σ|x·w| in src/tensor/btensor.test.ts);
//  - bf16 is not fp32 (the rounding is real), but close: loss within 1 %, LoRA gradients at
//    cosine ≥ 0.99 (these random 2-layer models are less smooth than trained ones: worst
//    measured 0.9951; the real-model bounds are in test/models/bf16-compute.test.ts);
//  - without a bf16 unit nothing is converted and the note says why (the reference backend in
//    process; a CPU that hides avx512bf16 in a child process), never an illegal instruction;
//  - an unknown mode is a ConfigError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  BTensor,
  reshape,
  scale,
  setBackend,
  sum,
  tokenLogProbs,
  type BackendName,
  type Tensor,
} from '../tensor/index.js';
import { bf16Support, nativeStatus } from '../backend/index.js';
import { loadSafetensorsModel } from './load.js';
import { addLora, type CausalLM } from './model.js';
import { applyCompute, useBf16Compute } from './compute.js';
import { Rng } from '../util/rng.js';

const FIXTURES = path.join('test', 'fixtures', 'models');
const NAMES = ['tiny-llama', 'tiny-qwen2'] as const;
const B = 2;
const T = 24;
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % 256);
const targets = Int32Array.from({ length: B * T }, (_, i) =>
  i % T === T - 1 ? -1 : (ids[i + 1] as number),
);

interface Run {
  loss: number;
  grads: Map<string, Float32Array>;
}

function load(
  name: string,
  backend: BackendName,
): { model: CausalLM; params: Map<string, Tensor> } {
  setBackend(backend);
  const { model } = loadSafetensorsModel(path.join(FIXTURES, name));
  const params = addLora(model, {
    r: 4,
    alpha: 8,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    rng: new Rng(0),
  });
  // B non-zero so that every A gets a gradient.
  const r = new Rng(1);
  for (const [n, t] of params)
    if (n.endsWith('lora_B.weight'))
      for (let i = 0; i < t.size; i++) t.data[i] = r.uniform(-0.05, 0.05);
  return { model, params };
}

function step(model: CausalLM, params: Map<string, Tensor>): Run {
  for (const p of params.values()) p.zeroGrad();
  const hidden = model.forward({ ids, shape: [B, T] }); // [B, T, D]
  const flat = reshape(hidden, [B * T, model.config.hiddenSize]); // [B·T, D]
  const loss = scale(sum(tokenLogProbs(flat, model.headWeight(), targets)), -1 / (B * (T - 1)));
  const value = loss.item();
  loss.backward();
  loss.release();
  const grads = new Map<string, Float32Array>();
  for (const [n, p] of params) grads.set(n, Float32Array.from(p.grad?.data ?? []));
  return { loss: value, grads };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    x += a[i] * a[i];
    y += b[i] * b[i];
  }
  return d / Math.sqrt(x * y);
}

const nativeSkip = !nativeStatus().backend
  ? `no native addon: ${nativeStatus().reason}`
  : !nativeStatus().tools?.bf16
    ? `no bf16 unit: ${nativeStatus().tools?.info().bf16 ?? 'unknown'}`
    : false;

for (const name of NAMES) {
  test(`${name}: bf16 on the reference kernels is close to fp32 and is not fp32`, () => {
    const { model, params } = load(name, 'reference');
    try {
      const f = step(model, params);
      const report = useBf16Compute(model, { allowReference: true, where: 'test' });
      assert.equal(report.used, 'bf16');
      assert.equal(report.converted, [...model.linears()].filter(([n]) => n !== 'lm_head').length);
      for (const [n, lin] of model.linears()) {
        if (n === 'lm_head') continue;
        assert.ok(lin.weight instanceof BTensor && lin.weight.layout === 'rows', n);
      }
      const b = step(model, params);
      assert.notEqual(b.loss, f.loss, 'bf16 rounding changes the loss');
      assert.ok(
        Math.abs(b.loss - f.loss) <= 0.01 * Math.abs(f.loss),
        `loss ${b.loss} vs ${f.loss}`,
      );
      for (const [n, g] of f.grads) {
        const c = cosine(g, b.grads.get(n)!);
        assert.ok(c >= 0.99, `${n}: cosine ${c}`);
      }
    } finally {
      model.release();
    }
  });

  test(
    `${name}: bf16 on vdpbf16ps equals bf16 on the reference kernels (loss, LoRA gradients)`,
    { skip: nativeSkip },
    () => {
      const ref = load(name, 'reference');
      useBf16Compute(ref.model, { allowReference: true });
      const r = step(ref.model, ref.params);
      ref.model.release();
      const nat = load(name, 'native');
      try {
        const report = useBf16Compute(nat.model);
        assert.equal(report.used, 'bf16');
        assert.match(report.units, /vdpbf16ps/);
        const n = step(nat.model, nat.params);
        assert.ok(
          Math.abs(n.loss - r.loss) <= 2e-4 * Math.abs(r.loss),
          `loss ${n.loss} vs ${r.loss}`,
        );
        for (const [k, g] of r.grads) {
          const h = n.grads.get(k)!;
          let err = 0;
          let mx = 0;
          for (let i = 0; i < g.length; i++) {
            err = Math.max(err, Math.abs(g[i] - h[i]));
            mx = Math.max(mx, Math.abs(g[i]));
          }
          assert.ok(mx > 0, `${k} has a gradient`);

          const c = cosine(g, h);
          assert.ok(c >= 0.99995, `${k}: cosine ${c}`);
          assert.ok(err <= 5e-3 * mx, `${k}: max |Δ| ${err} vs max |g| ${mx}`);
        }
      } finally {
        nat.model.release();
      }
    },
  );
}

test('bf16 without a unit: the reference backend converts nothing and says why', () => {
  const { model } = load('tiny-llama', 'reference');
  try {
    assert.equal(bf16Support().available, false);
    const report = useBf16Compute(model);
    assert.equal(report.used, 'fp32');
    assert.equal(report.converted, 0);
    assert.match(
      report.note,
      /^bf16 compute unavailable \(the active backend is reference.*\): running fp32$/,
    );
    for (const [, lin] of model.linears()) assert.ok(!(lin.weight instanceof BTensor));
  } finally {
    model.release();
  }
});

test(
  'bf16 on a CPU without avx512bf16 (hidden): fp32 with a one-line note, no illegal instruction',
  { skip: nativeStatus().backend ? false : 'no native addon' },
  () => {
    const code = `
    import { setBackend } from './dist/src/tensor/index.js';
    import { loadSafetensorsModel } from './dist/src/models/load.js';
    import { useBf16Compute } from './dist/src/models/compute.js';
    setBackend('native');
    const { model } = loadSafetensorsModel('test/fixtures/models/tiny-llama');
    const r = useBf16Compute(model);
    console.log(JSON.stringify({ used: r.used, converted: r.converted, note: r.note }));
  `;
    const p = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      env: { ...process.env, RL4QE_HIDE_FEATURES: 'avx512bf16' },
      encoding: 'utf8',
    });
    assert.equal(p.status, 0, p.stderr);
    const r = JSON.parse(p.stdout.trim().split('\n').pop() ?? '{}') as {
      used: string;
      converted: number;
      note: string;
    };
    assert.equal(r.used, 'fp32');
    assert.equal(r.converted, 0);
    assert.match(r.note, /^bf16 compute unavailable \(the CPU lacks avx512bf16\): running fp32$/);
  },
);

test('applyCompute: an unknown mode is a ConfigError naming where it came from', () => {
  const { model } = load('tiny-qwen2', 'reference');
  try {
    assert.throws(
      () => applyCompute(model, 'fp16' as 'fp32', { where: 'refiner.compute' }),
      /refiner\.compute: unknown compute mode[\s\S]*'fp32' or 'bf16'[\s\S]*fp16/,
    );
  } finally {
    model.release();
  }
});
