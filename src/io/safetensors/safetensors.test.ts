// safetensors: files written by Python safetensors / huggingface_hub read to the same float32
// values as torch gives; our files round-trip and (when the oracle venv exists) read in Python;
// malformed headers give typed errors naming file and tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, NotFoundError, UnsupportedError } from '../../util/errors.js';
import { cachePaths } from '../../util/paths.js';
import { SafetensorsFile, encodeSafetensors, writeSafetensors } from './safetensors.js';
import { SafetensorsCheckpoint, writeSafetensorsCheckpoint } from './checkpoint.js';

const FIX = fileURLToPath(new URL('../../../../test/fixtures/io/safetensors/', import.meta.url));
const REGEN = '/root/.cache/rl4qe/oracle/bin/python scripts/fixtures_safetensors.py';
const SCRIPT = fileURLToPath(
  new URL('../../../../scripts/fixtures_safetensors.py', import.meta.url),
);

test('reads a file written by Python safetensors: F32/F16/BF16 equal torch .float()', () => {
  using f = SafetensorsFile.open(path.join(FIX, 'single.safetensors'));
  assert.deepEqual(f.metadata, { format: 'pt', note: 'rl4qe' });
  for (const [name, dtype, shape] of [
    ['w32', 'F32', [3, 5]],
    ['w16', 'F16', [4, 2]],
    ['wbf', 'BF16', [2, 3, 2]],
    ['scalar', 'F32', []],
    ['empty', 'F32', [0, 4]],
  ] as const) {
    const t = f.tensor(name);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, shape, name);
    assert.deepEqual(f.readF32(name), f.readF32(`${name}.as_f32`), `${name}; regenerate: ${REGEN}`);
  }
  assert.equal(f.tensor('ids').dtype, 'I64');
  assert.deepEqual([...new BigInt64Array(f.readBytes('ids').buffer)], [1n, -2n, 3n]);
  assert.throws(() => f.readF32('ids'), UnsupportedError);
  assert.throws(() => f.tensor('nope'), NotFoundError);
});

test('reads a sharded checkpoint written by huggingface_hub (index + 2 shards)', () => {
  using ck = SafetensorsCheckpoint.open(path.join(FIX, 'sharded'));
  using ex = SafetensorsFile.open(path.join(FIX, 'sharded', 'expected.safetensors'));
  assert.equal(ck.tensorNames.length, 5);
  const files = new Set(ck.tensorNames.map((n) => path.basename(ck.info(n).file)));
  assert.equal(files.size, 2);
  for (const n of ck.tensorNames) assert.deepEqual(ck.readF32(n), ex.readF32(n), n);
  assert.equal(ck.info('embed.weight').dtype, 'BF16');
});

function sample() {
  const a = Float32Array.from({ length: 24 }, (_, i) => (i - 10) * 0.37);
  return {
    metadata: { format: 'pt' },
    tensors: [
      { name: 'a.f32', shape: [2, 3, 4], dtype: 'F32' as const, data: a },
      { name: 'a.f16', shape: [24], dtype: 'F16' as const, data: a },
      { name: 'a.bf16', shape: [4, 6], dtype: 'BF16' as const, data: a },
    ],
  };
}

test('write then read round trip, single and sharded', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-st-'));
  const s = sample();
  const file = path.join(dir, 'x.safetensors');
  writeSafetensors(file, s);
  const raw = fs.readFileSync(file);
  assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0, 'header padded to 8 bytes');
  {
    using f = SafetensorsFile.open(file);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(f.readF32('a.f32'), s.tensors[0].data);
    const h = f.readF32('a.f16');
    const b = f.readF32('a.bf16');
    for (let i = 0; i < 24; i++) {
      assert.ok(Math.abs(h[i] - s.tensors[0].data[i]) <= 2 ** -11 * Math.abs(s.tensors[0].data[i]));
      assert.ok(Math.abs(b[i] - s.tensors[0].data[i]) <= 2 ** -8 * Math.abs(s.tensors[0].data[i]));
    }
  }
  const names = writeSafetensorsCheckpoint(path.join(dir, 'ck'), s, { maxShardBytes: 100 });
  assert.deepEqual(names, [
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  ]);
  using ck = SafetensorsCheckpoint.open(path.join(dir, 'ck'));
  assert.deepEqual(ck.readF32('a.f32'), s.tensors[0].data);
  assert.equal(ck.tensorNames.length, 3);
  fs.rmSync(dir, { recursive: true });
});

test('Python safetensors reads our output (oracle venv)', (t) => {
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  if (!fs.existsSync(py)) {
    t.skip(`oracle venv missing (${py}); see scripts/fixtures_safetensors.py`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-st-'));
  const file = path.join(dir, 'ours.safetensors');
  const s = sample();
  writeSafetensors(file, s);
  const r = spawnSync(py, [SCRIPT, '--read', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as {
    metadata: Record<string, string>;
    tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
  };
  assert.deepEqual(got.metadata, { format: 'pt' });
  using f = SafetensorsFile.open(file);
  for (const [name, dtype] of [
    ['a.f32', 'float32'],
    ['a.f16', 'float16'],
    ['a.bf16', 'bfloat16'],
  ]) {
    assert.equal(got.tensors[name].dtype, dtype);
    assert.deepEqual(got.tensors[name].shape, f.tensor(name).shape);
    assert.deepEqual(Float32Array.from(got.tensors[name].values), f.readF32(name), name);
  }
  fs.rmSync(dir, { recursive: true });
});

function withHeader(json: string, dataLen = 16): Uint8Array {
  const hb = Buffer.from(json);
  const b = Buffer.alloc(8 + hb.length + dataLen);
  b.writeBigUInt64LE(BigInt(hb.length));
  hb.copy(b, 8);
  return b;
}

function bad(buf: Uint8Array, re: RegExp): void {
  assert.throws(
    () => SafetensorsFile.fromBuffer(buf, 'bad.safetensors'),
    (e: unknown) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.match(e.message, /^bad\.safetensors/);
      assert.match(e.message, re);
      return true;
    },
  );
}

test('malformed safetensors give FormatError naming file, tensor, expected and found', () => {
  bad(new Uint8Array(4), /too short/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 40n);
  bad(huge, /header length too large/);
  const past = Buffer.alloc(16);
  past.writeBigUInt64LE(100n);
  bad(past, /header length outside the file/);
  bad(withHeader('[1,2]'), /not a JSON object/);
  bad(withHeader('{"a": '), /not valid UTF-8 JSON/);
  bad(withHeader('{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}'), /a: unknown dtype/);
  bad(
    withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}'),
    /a: byte range does not match/,
  );
  bad(
    withHeader('{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}'),
    /a: data_offsets outside/,
  );
  bad(
    withHeader('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}'),
    /a: invalid tensor entry/,
  );
  bad(
    withHeader(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
    ),
    /b: tensor data overlaps/,
  );
  bad(withHeader('{"__metadata__":{"x":1}}'), /__metadata__ must map strings/);
  const good = encodeSafetensors(sample());
  SafetensorsFile.fromBuffer(good);
  bad(good.subarray(0, good.length - 1), /a\.bf16: data_offsets outside/);
});

test('checkpoint: missing shard and escaping shard names are typed errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-st-'));
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { w: 'model-00001-of-00002.safetensors' } }),
  );
  assert.throws(() => SafetensorsCheckpoint.open(dir), /shard listed in the index is missing/);
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { w: '../etc/passwd' } }),
  );
  assert.throws(() => SafetensorsCheckpoint.open(dir), /not a plain file name/);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": 3}');
  assert.throws(() => SafetensorsCheckpoint.open(dir), /invalid safetensors index/);
  assert.throws(() => SafetensorsCheckpoint.open(path.join(dir, 'nope')), NotFoundError);
  fs.rmSync(dir, { recursive: true });
});
