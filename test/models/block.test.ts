// The Llama-style block (hidden 576, 9 heads, 3 KV heads, MLP 1536, LoRA r=8 on q,k,v,o):
// loss and LoRA gradients equal PyTorch+PEFT's (fixture), and agree across every available
// backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { backendInfo, setBackend } from '../../src/tensor/index.js';
import { buildBlockFixture } from '../../src/models/block-fixture.js';
import { maxAbsDiff, readSafetensorsF32, relMaxDiff, REGEN } from './fixtures.js';

const expected = JSON.parse(readFileSync('test/fixtures/models/block/expected.json', 'utf8')) as {
  loss: number;
  yRows: number[];
  block: { seq: number };
};
const tensors = readSafetensorsF32('test/fixtures/models/block/expected.safetensors');
const T = expected.block.seq;

interface Result {
  loss: number;
  grads: Map<string, Float32Array>;
  yRows: Float32Array;
}

function run(): Result {
  const f = buildBlockFixture({ seq: T });
  const y = f.forward(); // [1, T, D]
  const D = y.shape[2] as number;
  const yRows = new Float32Array(expected.yRows.length * D);
  expected.yRows.forEach((r, i) => yRows.set(y.data.subarray(r * D, (r + 1) * D), i * D));
  const loss = f.loss();
  loss.backward();
  const grads = new Map<string, Float32Array>();
  for (const [n, t] of f.lora) grads.set(n, Float32Array.from(t.grad!.data));
  return { loss: loss.item(), grads, yRows };
}

const backends: Array<'reference' | 'native'> = ['reference'];
if (backendInfo().nativeAvailable) backends.push('native');
const results = new Map<string, Result>();
const initial = backendInfo().name;

for (const be of backends) {
  test(`block on ${be}: output, loss and LoRA grads match PyTorch+PEFT (regenerate: ${REGEN})`, () => {
    setBackend(be);
    try {
      const r = run();
      results.set(be, r);
      const dy = maxAbsDiff(r.yRows, tensors.get('y_rows')!.data);
      assert.ok(dy < 1e-4, `output rows: max |Δ| ${dy}`);
      const dl = Math.abs(r.loss - expected.loss) / Math.abs(expected.loss);
      assert.ok(dl < 1e-4, `loss ${r.loss} vs ${expected.loss} (relative ${dl})`);
      for (const [n, g] of r.grads) {
        const want = tensors.get(`grad.${n}`);
        assert.ok(want, `fixture lacks grad.${n}`);
        const d = relMaxDiff(g, want.data);
        // float32 at hidden 576: differences come from summation order; 1e-3 of the largest entry.
        assert.ok(d < 1e-3, `${n}: relative max |Δgrad| ${d}`);
      }
    } finally {
      setBackend(initial);
    }
  });
}

test(`block: every backend gives the same loss and LoRA grads (${backends.join(', ')})`, () => {
  const ref = results.get('reference');
  assert.ok(ref, 'the reference run must have happened first');
  for (const be of backends.slice(1)) {
    const r = results.get(be)!;
    assert.ok(
      Math.abs(r.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss),
      `${be} loss ${r.loss} vs ${ref.loss}`,
    );
    for (const [n, g] of r.grads) {
      const d = relMaxDiff(g, ref.grads.get(n)!);
      assert.ok(d < 1e-4, `${be} ${n}: relative max |Δgrad| ${d}`);
    }
  }
  // Guard against a vacuous comparison: gradients reach both A and B of every projection.
  for (const [n, g] of ref.grads)
    assert.ok(
      g.some((x) => x !== 0),
      `${n} has an all-zero gradient`,
    );
});
