// GGUF reader: typed metadata (fixture written by gguf-py), v2 files, writer round trip, and a
// typed FormatError naming file and key/tensor for each class of malformed header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, NotFoundError, UnsupportedError } from '../../util/errors.js';
import { GgufFile } from './reader.js';
import { encodeGguf, kv, writeGguf, type GgufWriteSpec } from './writer.js';
import { GgmlType, GgufValueType } from './types.js';

const FIXTURE = fileURLToPath(
  new URL('../../../../test/fixtures/io/gguf/dequant.gguf', import.meta.url),
);

test('typed metadata of every value type (file written by gguf-py)', () => {
  using f = GgufFile.open(FIXTURE);
  assert.equal(f.version, 3);
  assert.equal(f.alignment, 32);
  assert.equal(f.architecture, 'fixture');
  assert.equal(f.getNumber('test.u8'), 200);
  assert.equal(f.getNumber('test.i8'), -100);
  assert.equal(f.getNumber('test.u16'), 60000);
  assert.equal(f.getNumber('test.i16'), -30000);
  assert.equal(f.getNumber('test.u32'), 4000000000);
  assert.equal(f.getNumber('test.i32'), -2000000000);
  assert.equal(f.getNumber('test.f32'), 1.5);
  assert.equal(f.getBool('test.bool'), true);
  assert.equal(f.getString('test.string'), 'héllo ✓ 🙂');
  assert.equal(f.getKV('test.u64')?.value, 2n ** 40n + 3n);
  assert.equal(f.getNumber('test.u64'), 2 ** 40 + 3);
  assert.equal(f.getNumber('test.i64'), -(2 ** 40) - 3);
  assert.equal(f.getNumber('test.f64'), 0.1);
  assert.deepEqual([...f.getNumberArray('test.arr_i32')], [1, -2, 3]);
  assert.deepEqual(f.getStringArray('test.arr_str'), ['a', '', 'ü']);
  assert.deepEqual([...f.getNumberArray('test.arr_f32')], [0.5, -0.25]);
  assert.equal(f.getNumber('missing.key', 7), 7);
  assert.throws(() => f.getNumber('missing.key'), NotFoundError);
  assert.throws(
    () => f.getString('test.u8'),
    (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, /dequant\.gguf: test\.u8/);
      assert.equal(e.expected, 'STRING');
      assert.equal(e.found, 'UINT8');
      return true;
    },
  );
  const t = f.tensor('Q4_K.model.q');
  assert.equal(t.typeName, 'Q4_K');
  assert.deepEqual(t.dims, [1024, 1]);
  assert.deepEqual(t.shape, [1, 1024]);
  assert.equal(t.offset % 32, 0);
  assert.throws(() => f.tensor('nope'), NotFoundError);
});

test('a v2 file reads like v3 (same layout)', () => {
  const buf = new Uint8Array(fs.readFileSync(FIXTURE));
  buf[4] = 2;
  const f = GgufFile.fromBuffer(buf, 'v2.gguf');
  assert.equal(f.version, 2);
  assert.equal(f.getString('general.name'), 'rl4qe dequant fixture');
  assert.equal(f.readTensorF32('F32.rand.q').length, 256);
});

function spec(): GgufWriteSpec {
  const a = Float32Array.from({ length: 64 * 3 }, (_, i) => Math.sin(i) * 3);
  return {
    metadata: [
      ['general.architecture', kv.str('llama')],
      ['general.type', kv.str('adapter')],
      ['adapter.type', kv.str('lora')],
      ['adapter.lora.alpha', kv.f32(16)],
      ['x.u64', kv.u64(2n ** 60n)],
      ['x.strs', kv.strArray(['<s>', 'é'])],
      ['x.ids', kv.i32Array([1, 2, -3])],
    ],
    tensors: [
      { name: 'blk.0.attn_q.weight.lora_a', shape: [3, 64], type: GgmlType.F32, data: a },
      { name: 'blk.0.attn_q.weight.lora_b', shape: [3, 64], type: GgmlType.F16, data: a },
      { name: 'bf', shape: [64, 3], type: GgmlType.BF16, data: a },
    ],
  };
}

test('writer round trip: F32 exact, F16/BF16 within their precision, metadata typed', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-gguf-'));
  const file = path.join(dir, 'adapter.gguf');
  const s = spec();
  writeGguf(file, s);
  using f = GgufFile.open(file);
  assert.equal(f.getString('adapter.type'), 'lora');
  assert.equal(f.getNumber('adapter.lora.alpha'), 16);
  assert.equal(f.getKV('x.u64')?.value, 2n ** 60n);
  assert.deepEqual(f.getStringArray('x.strs'), ['<s>', 'é']);
  const a = s.tensors[0].data!;
  assert.deepEqual(f.readTensorF32('blk.0.attn_q.weight.lora_a'), a);
  const h = f.readTensorF32('blk.0.attn_q.weight.lora_b');
  const b = f.readTensorF32('bf');
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(h[i] - a[i]) <= 2 ** -11 * Math.abs(a[i]) + 1e-7, `f16 ${i}`);
    assert.ok(Math.abs(b[i] - a[i]) <= 2 ** -8 * Math.abs(a[i]) + 1e-30, `bf16 ${i}`);
  }
  assert.deepEqual(f.tensor('bf').dims, [3, 64]);
  const rows = f.readRowsF32('blk.0.attn_q.weight.lora_a', 1, 2);
  assert.deepEqual(rows, a.subarray(64, 192));
  assert.equal(fs.existsSync(`${file}.partial`), false);
  fs.rmSync(dir, { recursive: true });
});

test('writer rejects bad input with typed errors', () => {
  const s = spec();
  s.tensors[1].name = s.tensors[0].name;
  assert.throws(() => encodeGguf(s), /duplicate tensor name/);
  const s2 = spec();
  s2.tensors[0].shape = [4, 64];
  assert.throws(() => encodeGguf(s2), /data length does not match/);
  const s3 = spec();
  s3.metadata = [['k', kv.u8(300)]];
  assert.throws(() => encodeGguf(s3), /does not fit its type/);
});

// Offsets inside the encoded spec() file, for targeted corruption.
function image(): Buffer {
  return Buffer.from(encodeGguf(spec()));
}

function expectFormat(
  buf: Uint8Array,
  re: RegExp,
  cls: typeof FormatError | typeof UnsupportedError = FormatError,
): void {
  assert.throws(
    () => GgufFile.fromBuffer(buf, 'bad.gguf'),
    (e: unknown) => {
      assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
      assert.match((e as Error).message, /^bad\.gguf/);
      assert.match((e as Error).message, re);
      return true;
    },
  );
}

test('malformed headers give FormatError naming file, key or tensor, expected and found', () => {
  const good = image();
  GgufFile.fromBuffer(good); // sanity
  let b = Buffer.from(good);
  b.write('GGUX', 0, 'latin1');
  expectFormat(b, /not a GGUF file[\s\S]*expected: magic/);
  b = Buffer.from(good);
  b.writeUInt32LE(1, 4);
  expectFormat(b, /GGUF v1/, UnsupportedError);
  b = Buffer.from(good);
  b.writeUInt32LE(0x03000000, 4);
  expectFormat(b, /big-endian/, UnsupportedError);
  b = Buffer.from(good);
  b.writeUInt32LE(9, 4);
  expectFormat(b, /unsupported GGUF version/);
  b = Buffer.from(good);
  b.writeBigUInt64LE(2n ** 40n, 8);
  expectFormat(b, /tensor count exceeds/);
  b = Buffer.from(good);
  b.writeBigUInt64LE(2n ** 63n, 16);
  expectFormat(b, /too large/);
  expectFormat(good.subarray(0, 300), /truncated/);
  expectFormat(good.subarray(0, good.length - 8), /bf: tensor data outside the file/);
  // duplicate key: rename the 2nd key (general.type) to general.architecture's spelling length-wise
  b = Buffer.from(good);
  const at = b.indexOf('general.type');
  b.write('general.arch', at, 'latin1'); // 12 bytes, same length: now a new unique key
  GgufFile.fromBuffer(b);
  b = Buffer.from(good);
  const k2 = b.indexOf('adapter.type');
  b.write('general.type', k2, 'latin1');
  expectFormat(b, /general\.type: duplicate metadata key/);
  // unknown tensor type: the type field follows the dims of the first tensor
  b = Buffer.from(good);
  const n0 = b.indexOf('blk.0.attn_q.weight.lora_a') + 'blk.0.attn_q.weight.lora_a'.length;
  b.writeUInt32LE(5, n0 + 4 + 16);
  expectFormat(b, /lora_a: unknown tensor type/);
  b = Buffer.from(good);
  b.writeUInt32LE(7, n0); // n_dims
  expectFormat(b, /too many tensor dimensions/);
  b = Buffer.from(good);
  b.writeBigUInt64LE(3n, n0 + 4 + 16 + 4); // misaligned offset
  expectFormat(b, /not aligned/);
  b = Buffer.from(good);
  const n1 = b.indexOf('blk.0.attn_q.weight.lora_b') + 'blk.0.attn_q.weight.lora_b'.length;
  b.writeBigUInt64LE(0n, n1 + 4 + 16 + 4); // lora_b at offset 0: overlaps lora_a
  expectFormat(b, /overlaps/);
  b = Buffer.from(good);
  b.writeUInt32LE(GgufValueType.ARRAY, b.indexOf('general.type') + 12);
  expectFormat(b, /./);
});
