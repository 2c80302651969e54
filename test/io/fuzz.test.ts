// Fuzz: flip, overwrite and truncate bytes of real GGUF and safetensors files (written by gguf-py
// and Python safetensors) thousands of times. Every outcome must be either a file that opens and
// whose every tensor and metadata value then reads without error, or a typed rl4qe error — never
// a RangeError/TypeError (a crash), a hang, or a read outside the file after validation passed.
// RL4QE_LONG=1 runs 25× more iterations. Seeded: a failure prints the seed and iteration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rl4qeError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import path from 'node:path';
import { cachePaths } from '../../src/util/paths.js';
import {
  GgufFile,
  GgufValueType,
  canDequantize,
  encodeGguf,
  type GgufKV,
  type GgufTensorInput,
} from '../../src/io/gguf/index.js';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';

const LONG = process.env.RL4QE_LONG === '1';
const ITER = LONG ? 50_000 : 2_000;
const fixture = (p: string) =>
  new Uint8Array(
    fs.readFileSync(fileURLToPath(new URL(`../../../test/fixtures/io/${p}`, import.meta.url))),
  );

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0xffffffff, 2 ** 31, 2 ** 32 - 32];

/** One random corruption of `src`, mostly inside its first `hot` bytes (the header). */
function mutate(src: Uint8Array, rng: Rng, hot: number): Uint8Array {
  const kind = rng.int(10);
  if (kind === 0) return src.slice(0, rng.int(src.length)); // truncate anywhere
  if (kind === 1) return src.slice(0, rng.int(Math.min(hot, src.length))); // truncate in header
  const b = src.slice();
  const at = () => (rng.next() < 0.85 ? rng.int(Math.min(hot, b.length)) : rng.int(b.length));
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    const p = at();
    if (kind < 6)
      b[p] ^= 1 << rng.int(8); // bit flip
    else if (kind < 8)
      b[p] = rng.int(256); // random byte
    else {
      // an interesting little-endian u32 or u64 (huge counts, lengths, offsets)
      const v = INTERESTING[rng.int(INTERESTING.length)];
      const dv = new DataView(b.buffer);
      if (p + 8 <= b.length) {
        dv.setUint32(p, v >>> 0, true);
        dv.setUint32(p + 4, rng.next() < 0.5 ? 0 : 0xffffffff, true);
      }
    }
  }
  return b;
}

function checkTyped(e: unknown, ctx: string): void {
  if (!(e instanceof Rl4qeError)) {
    assert.fail(
      `${ctx}: untyped error ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`,
    );
  }
}

function fuzzGguf(src: Uint8Array, seed: number, iterations: number): void {
  const clean = GgufFile.fromBuffer(src);
  const hot = clean.dataOffset + 64;
  const ITER = iterations;
  const rng = new Rng(seed);
  let opened = 0;
  const classes = new Map<string, number>();
  for (let i = 0; i < ITER; i++) {
    const buf = mutate(src, rng, hot);
    const ctx = `seed ${seed} iteration ${i}`;
    let f: GgufFile;
    try {
      f = GgufFile.fromBuffer(buf, 'fuzz.gguf');
    } catch (e) {
      checkTyped(e, ctx);
      const name = (e as Error).name;
      classes.set(name, (classes.get(name) ?? 0) + 1);
      continue;
    }
    opened++;
    // Validation passed: everything in the file must now read without any error.
    for (const t of f.tensors) {
      if (canDequantize(t.type)) {
        const x = f.readTensorF32(t);
        assert.equal(x.length, t.nElements, ctx);
      } else {
        assert.equal(f.readTensorBytes(t).length, t.nBytes, ctx);
      }
    }
    for (const [k, v] of f.metadata) assert.ok(v !== undefined, `${ctx}: ${k}`);
  }
  console.log(
    `# gguf fuzz: ${ITER} cases, ${opened} still valid, errors ${JSON.stringify([...classes])}`,
  );
  assert.ok(opened > 0 && opened < ITER, 'the mutations exercise both outcomes');
}

test(`GGUF fuzz: ${ITER} corruptions of a gguf-py file give typed errors only`, () => {
  fuzzGguf(fixture('gguf/dequant.gguf'), 20251125, ITER);
});

test(`GGUF fuzz: ${ITER / 4} corruptions of a file rebuilt from SmolLM2's header`, () => {
  // Every metadata key of the real model (arrays cut to 2000 items to keep each parse fast) and
  // three of its tensors (F32, Q4_1, the first rows of the Q8_0 embedding), re-encoded with our
  // writer.
  const p = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
  if (!fs.existsSync(p)) assert.fail(`missing ${p}; run: node scripts/fetch-test-models.mjs`);
  using m = GgufFile.open(p);
  const metadata: [string, GgufKV][] = [...m.metadata].map(([k, v]) =>
    v.type === GgufValueType.ARRAY
      ? [k, { ...v, value: v.value.slice(0, 2000) as typeof v.value }]
      : [k, v],
  );
  const tensors: GgufTensorInput[] = ['blk.0.attn_norm.weight', 'blk.0.attn_k.weight'].map((n) => {
    const t = m.tensor(n);
    return { name: n, shape: t.shape, type: t.type, raw: m.readTensorBytes(t) };
  });
  const emb = m.tensor('token_embd.weight');
  const rowBytes = emb.nBytes / emb.shape[0];
  const raw = m.readTensorBytes(emb).slice(0, 4 * rowBytes);
  tensors.push({ name: 'token_embd.weight', shape: [4, emb.shape[1]], type: emb.type, raw });
  fuzzGguf(encodeGguf({ metadata, tensors }), 4242, ITER / 4);
});

test(`safetensors fuzz: ${ITER} corruptions of a Python-written file give typed errors only`, () => {
  const src = fixture('safetensors/single.safetensors');
  const clean = SafetensorsFile.fromBuffer(src);
  const hot = clean.dataOffset;
  const seed = 77;
  const rng = new Rng(seed);
  let opened = 0;
  for (let i = 0; i < ITER; i++) {
    const buf = mutate(src, rng, hot);
    const ctx = `seed ${seed} iteration ${i}`;
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.fromBuffer(buf, 'fuzz.safetensors');
    } catch (e) {
      checkTyped(e, ctx);
      continue;
    }
    opened++;
    for (const t of f.tensors) {
      if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') {
        assert.equal(f.readF32(t).length, t.nElements, ctx);
      } else {
        assert.equal(f.readBytes(t).length, t.nBytes, ctx);
      }
    }
  }
  console.log(`# safetensors fuzz: ${ITER} cases, ${opened} still valid`);
  assert.ok(opened > 0 && opened < ITER);
});
