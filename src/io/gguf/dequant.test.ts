// Dequantisation parity with gguf-py (the outside oracle): every `<T>.<source>.q` tensor of the
// fixture, dequantised by us, must equal the `<T>.<source>.f32` tensor gguf-py computed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { GgufFile } from './reader.js';
import { dequantize, canDequantize } from './dequant.js';
import { GGML_TYPES, GgmlType } from './types.js';
import { QUANT_BLOCKS } from '../../backend/quant.js';
import { f32ToBf16Bits, f32ToF16Bits, bf16ToF32, f16ToF32Table } from '../../util/half.js';

const FIXTURE = fileURLToPath(
  new URL('../../../../test/fixtures/io/gguf/dequant.gguf', import.meta.url),
);
const REGEN = '/root/.cache/rl4qe/oracle/bin/python scripts/fixtures_gguf.py';

test('dequantize matches gguf-py for every supported type and source', () => {
  using f = GgufFile.open(FIXTURE);
  const pairs = f.tensors.filter((t) => t.name.endsWith('.q'));
  const types = new Set<string>();
  assert.ok(pairs.length >= 20, `fixture has ${pairs.length} pairs`);
  for (const t of pairs) {
    const base = t.name.slice(0, -2);
    const expected = f.readTensorF32(`${base}.f32`);
    const got = f.readTensorF32(t);
    assert.equal(got.length, expected.length, base);
    let maxErr = 0;
    let maxAbs = 0;
    for (let i = 0; i < got.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(got[i] - expected[i]));
      maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
    }
    // Bit-exact: we round intermediates to float32 in the same order as ggml / gguf-py.
    assert.ok(
      maxErr === 0,
      `${base}: max |ours - gguf-py| = ${maxErr} (max |x| ${maxAbs}); regenerate: ${REGEN}`,
    );
    types.add(t.typeName);
  }
  for (const name of [
    'F32',
    'F16',
    'BF16',
    'Q8_0',
    'Q4_0',
    'Q4_1',
    'Q5_0',
    'Q5_1',
    'Q4_K',
    'Q5_K',
    'Q6_K',
  ]) {
    assert.ok(types.has(name), `fixture covers ${name}`);
  }
});

test('dequantize rejects unsupported types and short buffers with typed errors', () => {
  assert.equal(canDequantize(GgmlType.Q2_K), false);
  assert.throws(
    () => dequantize({ type: GgmlType.Q2_K, src: new Uint8Array(84), n: 256 }),
    /cannot dequantize ggml type Q2_K/,
  );
  assert.throws(
    () => dequantize({ type: GgmlType.Q8_0, src: new Uint8Array(33), n: 32 }),
    /source buffer too small/,
  );
  assert.throws(
    () => dequantize({ type: GgmlType.Q8_0, src: new Uint8Array(34), n: 31 }),
    /multiple of the Q8_0 block size/,
  );
});

test('half conversions round-trip and round to nearest even', () => {
  const t = f16ToF32Table();
  for (let h = 0; h < 65536; h++) {
    const x = t[h];
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToF16Bits(x), h, `f16 bits ${h}`);
  }
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16Bits(70000), 0x7c00);
  assert.equal(bf16ToF32(f32ToBf16Bits(1.5)), 1.5);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
});

test("the backend's block table (QuantWeight formats) agrees with the GGUF type table", () => {
  for (const [type, b] of QUANT_BLOCKS) {
    const g = GGML_TYPES.get(type);
    assert.ok(g, `type ${type}`);
    assert.equal(b.blockSize, g.blockSize, `${g.name} block size`);
    assert.equal(b.typeSize, g.typeSize, `${g.name} bytes per block`);
    assert.ok(canDequantize(type), g.name);
  }
});
