// The native addon itself: loading and its failure path, memory (alloc/release/detach), and the
// GEMM of every kernel set this CPU can run against float64 loops over all layouts, strides,
// alpha and accumulate. Kernel-by-kernel agreement with the reference backend is in
// test/native-conformance.test.ts.
//
// Without a built addon these tests FAIL with the command to build it; RL4QE_SKIP_NATIVE=1 (the
// switch that also skips the install-time build) turns them into visible skips.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ShapeError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import type { Backend, MatmulParams } from '../backend.js';
import { loadNative, loadNativeFrom, nativeAddonPath } from './index.js';

/** The repository root (where package.json and scripts/ are), from dist/src/backend/native/. */
function repoRoot(): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  while (!existsSync(path.join(dir, 'binding.gyp'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('binding.gyp not found above ' + dir);
    dir = up;
  }
  return dir;
}

const skip = process.env.RL4QE_SKIP_NATIVE === '1' ? 'RL4QE_SKIP_NATIVE=1' : false;

function native(): NonNullable<ReturnType<typeof loadNative>> & { backend: Backend } {
  const r = loadNative();
  if (!r.backend || !r.tools) {
    assert.fail(
      `the native addon did not load: ${r.reason}\n` +
        'build it with `node scripts/build-native.mjs` (or set RL4QE_SKIP_NATIVE=1 to skip these tests)',
    );
  }
  return r as ReturnType<typeof loadNative> & { backend: Backend };
}

test('a missing addon gives backend null and a reason that says how to build it', () => {
  const r = loadNativeFrom(path.join(os.tmpdir(), 'rl4qe-no-such-dir', 'rl4qe_native.node'));
  assert.equal(r.backend, null);
  assert.equal(r.kernel, 'none');
  assert.match(r.reason, /not built/);
  assert.match(r.reason, /build-native\.mjs/);
});

test('a file that is not a loadable addon gives backend null and the loader error', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-native-'));
  const bogus = path.join(dir, 'rl4qe_native.node');
  writeFileSync(bogus, 'not a shared object');
  const r = loadNativeFrom(bogus);
  assert.equal(r.backend, null);
  assert.match(r.reason, /failed to load/);
});

test('a stale build that lacks kernels is refused with the missing names and the rebuild command', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-native-'));
  // A CommonJS module with only part of the addon's surface, as an older build would export.
  const stale = path.join(dir, 'stale.cjs');
  writeFileSync(
    stale,
    'const f = () => 0; module.exports = { info: f, matmul: f, alloc: f, release: f };',
  );
  const r = loadNativeFrom(stale);
  assert.equal(r.backend, null);
  assert.match(r.reason, /stale build/);
  assert.match(r.reason, /qmatmul/);
  assert.match(r.reason, /build-native\.mjs/);
  const other = path.join(dir, 'other.cjs');
  writeFileSync(other, 'module.exports = { hello: () => 1 };');
  assert.match(loadNativeFrom(other).reason, /not the rl4qe native addon/);
});

test("OpenMP's spin setting is written by the main thread only, never over the user's", () => {
  // libgomp reads the real environment, which a worker thread's process.env copy never reaches:
  // applyOmpDefaults must act in the main thread (before a worker loads the addon) and nowhere else.
  const index = new URL('./index.js', import.meta.url).href;
  const script = `
    import { Worker } from 'node:worker_threads';
    import { applyOmpDefaults } from ${JSON.stringify(index)};
    const inWorker = await new Promise((resolve) => {
      const w = new Worker(
        'import { parentPort } from "node:worker_threads";' +
          'const { applyOmpDefaults } = await import(' + JSON.stringify(${JSON.stringify(index)}) + ');' +
          'applyOmpDefaults(); parentPort.postMessage(process.env.GOMP_SPINCOUNT ?? null);',
        { eval: true },
      );
      w.on('message', resolve);
    });
    applyOmpDefaults();
    console.log(JSON.stringify({ inWorker, main: process.env.GOMP_SPINCOUNT ?? null }));
  `;
  const run = (env: Record<string, string>): { inWorker: string | null; main: string | null } => {
    const clean = { ...process.env };
    delete clean.GOMP_SPINCOUNT;
    delete clean.OMP_WAIT_POLICY;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...clean, ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      inWorker: string | null;
      main: string | null;
    };
  };
  assert.deepEqual(run({}), { inWorker: null, main: '2000' });
  assert.deepEqual(run({ GOMP_SPINCOUNT: '7' }), { inWorker: '7', main: '7' });
  assert.deepEqual(run({ OMP_WAIT_POLICY: 'passive' }), { inWorker: null, main: null });
});

test('the install hook never fails: no compiler gives exit 0 and one warning with the fix', () => {
  const root = repoRoot();
  const status = path.join(root, 'build', 'rl4qe-native-build.json');
  const saved = existsSync(status) ? readFileSync(status, 'utf8') : null;
  try {
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CXX: '/nonexistent/c++', RL4QE_SKIP_NATIVE: '' },
    });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /WARNING: the native addon was not built: no C\+\+ compiler/);
    assert.match(r.stderr, /To fix: install one/);
    assert.equal(r.stderr.match(/WARNING/g)?.length, 1);
    const j = JSON.parse(readFileSync(status, 'utf8')) as { ok: boolean; reason: string };
    assert.equal(j.ok, false);
    assert.match(j.reason, /no C\+\+ compiler/);
  } finally {
    if (saved !== null) writeFileSync(status, saved);
    else rmSync(status, { force: true });
  }
});

test('RL4QE_NATIVE_PATH chooses where the addon is looked for', () => {
  const before = process.env.RL4QE_NATIVE_PATH;
  try {
    process.env.RL4QE_NATIVE_PATH = '/nowhere/rl4qe_native.node';
    assert.equal(nativeAddonPath(), '/nowhere/rl4qe_native.node');
    assert.equal(loadNativeFrom(nativeAddonPath()).backend, null);
  } finally {
    if (before === undefined) delete process.env.RL4QE_NATIVE_PATH;
    else process.env.RL4QE_NATIVE_PATH = before;
  }
});

test('loadNative reports features, kernel set and threads', { skip }, () => {
  const r = native();
  const info = r.tools!.info();
  assert.equal(r.kernel, info.kernel);
  assert.ok(info.kernels.includes(r.kernel), `${r.kernel} not in ${info.kernels.join(',')}`);
  assert.ok(info.kernels.includes('generic'));
  assert.ok(r.threads >= 1);
  assert.ok(Array.isArray(r.features));
  if (process.arch === 'x64') assert.ok(r.features.includes('sse4.2') || r.kernel === 'generic');
  assert.match(r.reason, /^loaded .*rl4qe_native\.node/);
  assert.equal(r.backend.supports('f32'), true);
  assert.equal(r.backend.supports('f64'), false);
});

test(
  'alloc gives zeroed 64-byte aligned memory; release frees it now and detaches',
  { skip },
  () => {
    const { backend, tools } = native();
    const before = tools!.liveBytes();
    const bufs = [0, 1, 3, 17, 1000, 4097].map((n) => backend.alloc('f32', n) as Float32Array);
    for (const b of bufs) {
      assert.ok(b instanceof Float32Array);
      assert.ok(b.every((x) => x === 0));
      assert.equal(tools!.alignment(b), 0);
      assert.equal(tools!.isNative(b), b.length > 0);
    }
    assert.ok(tools!.liveBytes() > before);
    const b = bufs[4];
    b.fill(3);
    backend.release(b);
    assert.equal(b.length, 0, 'a released buffer reads length 0');
    assert.equal(b[0], undefined);
    assert.equal(tools!.isNative(b), false);
    backend.release(b); // a second release is a no-op, not a double free
    backend.release(new Float32Array(4)); // so is a JS-owned buffer
    // Using it is a typed error naming the op, never a crash.
    const x = backend.alloc('f32', 4);
    assert.throws(
      () =>
        backend.matmul(b, x, x, {
          batch: 1,
          m: 2,
          k: 2,
          n: 2,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideOut: 0,
        }),
      (e: unknown) =>
        e instanceof ShapeError && /released/.test(e.message) && /matmul/.test(e.message),
    );
    assert.throws(() => backend.softmax(b, 2, 2, x, false), ShapeError);
    assert.throws(() => backend.unary('exp', x, b), ShapeError);
    for (const buf of [...bufs, x]) backend.release(buf);
    assert.equal(tools!.liveBytes(), before);
  },
);

test('released memory is reused: alloc zero-fills it again, allocUninit does not', { skip }, () => {
  const { backend, tools } = native();
  const before = tools!.liveBytes();
  const n = 300_000; // large enough that a fresh block would be mmap'd
  for (let round = 0; round < 3; round++) {
    const a = backend.alloc('f32', n) as Float32Array;
    assert.ok(
      a.every((x) => x === 0),
      `round ${round}: alloc is zero-filled`,
    );
    a.fill(7);
    backend.release(a);
    const u = backend.allocUninit!('f32', n) as Float32Array;
    assert.equal(u.length, n);
    assert.equal(tools!.alignment(u), 0);
    assert.equal(tools!.isNative(u), true);
    u.fill(5);
    backend.release(u);
    assert.equal(tools!.liveBytes(), before, 'pooled blocks are not live');
  }
});

test('trimPool frees the pooled blocks and reports their bytes', { skip }, () => {
  const { backend } = native();
  backend.trimPool!();
  const n = 300_000;
  const a = backend.alloc('f32', n) as Float32Array;
  backend.release(a);
  // The released block is pooled, so a trim frees at least its bytes, and a second trim nothing.
  assert.ok(backend.trimPool!() >= n * 4);
  assert.equal(backend.trimPool!(), 0);
  // The pool still works after a trim.
  const b = backend.alloc('f32', n) as Float32Array;
  assert.ok(b.every((x) => x === 0));
  backend.release(b);
});

test('out-of-range arguments are ShapeErrors, not memory errors', { skip }, () => {
  const { backend } = native();
  const t = backend.alloc('f32', 12);
  const o = backend.alloc('f32', 8);
  assert.throws(() => backend.embedding(t, Int32Array.from([0, 3]), 4, o), /outside the table/);
  assert.throws(() => backend.embedding(t, Int32Array.from([-1]), 4, o), ShapeError);
  assert.throws(
    () => backend.copyStrided(t, 10, [1], o, 0, [1], [4]),
    (e: unknown) => e instanceof ShapeError && /offsets/.test(e.message),
  );
  assert.throws(() => backend.binary('add', t, [1], o, [1], o, [12]), ShapeError);
  const pos = Int32Array.from([0, 5]);
  const cs = backend.alloc('f32', 4); // 2 positions × headDim/2 = 2
  assert.throws(
    () =>
      backend.rope(o, o, {
        batch: 1,
        seq: 2,
        heads: 1,
        headDim: 4,
        positions: pos,
        cos: cs,
        sin: cs,
        inverse: false,
      }),
    /outside the rope table/,
  );
  for (const b of [t, o, cs]) backend.release(b);
});

// ---- GEMM against float64 loops --------------------------------------------------------------

function naiveMatmul(a: Float32Array, b: Float32Array, out0: Float32Array, p: MatmulParams) {
  const out = Float64Array.from(out0);
  const alpha = p.alpha ?? 1;
  for (let bt = 0; bt < p.batch; bt++) {
    const ao = bt * p.strideA;
    const bo = bt * p.strideB;
    const oo = bt * p.strideOut;
    for (let i = 0; i < p.m; i++)
      for (let j = 0; j < p.n; j++) {
        let s = 0;
        for (let q = 0; q < p.k; q++) {
          const av = p.transA ? a[ao + q * p.m + i] : a[ao + i * p.k + q];
          const bv = p.transB ? b[bo + j * p.k + q] : b[bo + q * p.n + j];
          s += av * bv;
        }
        const prev = p.accumulate || (p.strideOut === 0 && bt > 0) ? out[oo + i * p.n + j] : 0;
        out[oo + i * p.n + j] = prev + alpha * s;
      }
  }
  return out;
}

function checkGemm(backend: Backend, rng: Rng, p: MatmulParams, label: string): void {
  const sizeA = (p.batch - 1) * p.strideA + p.m * p.k;
  const sizeB = (p.batch - 1) * p.strideB + p.k * p.n;
  const sizeO = (p.batch - 1) * p.strideOut + p.m * p.n;
  const a = backend.alloc('f32', sizeA) as Float32Array;
  const b = backend.alloc('f32', sizeB) as Float32Array;
  const o = backend.alloc('f32', sizeO) as Float32Array;
  for (let i = 0; i < sizeA; i++) a[i] = rng.uniform(-1, 1);
  for (let i = 0; i < sizeB; i++) b[i] = rng.uniform(-1, 1);
  for (let i = 0; i < sizeO; i++) o[i] = rng.uniform(-1, 1);
  const want = naiveMatmul(a, b, o, p);
  backend.matmul(a, b, o, p);
  let worst = 0;
  for (let i = 0; i < sizeO; i++) {
    const err = Math.abs(o[i] - want[i]) / (1 + Math.abs(want[i]));
    worst = Math.max(worst, err);
  }
  // fp32 accumulation over k terms of size ≤ 1: relative error grows like √k·2⁻²⁴.
  const tol = 1e-5 * Math.sqrt(Math.max(p.k, 1)) + 1e-6;
  assert.ok(worst <= tol, `${label}: max relative error ${worst} > ${tol}`);
  for (const x of [a, b, o]) backend.release(x);
}

test(
  'GEMM of every kernel set matches float64 loops (layouts, odd sizes, batches, alpha, accumulate)',
  { skip },
  () => {
    const { backend, tools } = native();
    const info = tools!.info();
    const rng = new Rng(7);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 37, 5],
      [13, 7, 33],
      [12, 256, 32],
      [25, 300, 70],
      [50, 1, 49],
      [2, 300, 70],
      [4, 129, 33],
      [5, 64, 40],
      [97, 513, 65],
      [130, 260, 34],
      // Narrow C (n ≤ 16, m ≥ 16: LoRA's rank-r products).
      [300, 77, 8],
      [33, 40, 13],
      [16, 5, 16],
      [57, 576, 1],
      // Short k (k ≤ 8, m ≥ 16: LoRA's up-projection).
      [40, 8, 70],
      [300, 5, 17],
      // Narrow and short-k products large enough to be split over the threads.
      [600, 300, 8],
      [1000, 8, 100],
      // Few rows with Aᵀ (LoRA's dA = dYᵀ·X), through the narrow path transposed, and split.
      [8, 700, 100],
      // The small-M (decoding) path: up to 16 rows of A, row blocks of 4 with tails, k tails.
      [3, 17, 6],
      [7, 37, 9],
      [8, 64, 40],
      [9, 15, 5],
      [16, 33, 18],
      [17, 40, 7],
    ];
    try {
      for (const kernel of info.kernels) {
        tools!.setKernel(kernel);
        for (const [m, k, n] of shapes)
          for (const transA of [false, true])
            for (const transB of [false, true]) {
              const accumulate = rng.next() < 0.5;
              const alpha = rng.next() < 0.5 ? 1 : -0.75;
              checkGemm(
                backend,
                rng,
                {
                  batch: 1,
                  m,
                  k,
                  n,
                  transA,
                  transB,
                  strideA: 0,
                  strideB: 0,
                  strideOut: 0,
                  alpha,
                  accumulate,
                },
                `${kernel} ${m}x${k}x${n} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} alpha=${alpha} acc=${accumulate}`,
              );
            }
        // Batched: padded strides, a shared (stride 0) weight, and many small products (the
        // one-product-per-thread path).
        checkGemm(
          backend,
          rng,
          {
            batch: 3,
            m: 17,
            k: 29,
            n: 40,
            transA: false,
            transB: true,
            strideA: 17 * 29 + 5,
            strideB: 0,
            strideOut: 17 * 40 + 3,
          },
          `${kernel} batched shared B`,
        );
        checkGemm(
          backend,
          rng,
          {
            batch: 9,
            m: 64,
            k: 32,
            n: 64,
            transA: false,
            transB: true,
            strideA: 64 * 32,
            strideB: 64 * 32,
            strideOut: 64 * 64,
            alpha: 0.125,
          },
          `${kernel} batched attention-sized`,
        );
        checkGemm(
          backend,
          rng,
          {
            batch: 4,
            m: 9,
            k: 11,
            n: 7,
            transA: true,
            transB: false,
            strideA: 99,
            strideB: 77,
            strideOut: 0,
          },
          `${kernel} batched into one output (strideOut 0 sums)`,
        );
        // B wider than the packing budget (a vocabulary projection): several column blocks.
        checkGemm(
          backend,
          rng,
          {
            batch: 1,
            m: 3,
            k: 64,
            n: 80_003,
            transA: false,
            transB: true,
            strideA: 0,
            strideB: 0,
            strideOut: 0,
          },
          `${kernel} wide B (column blocks)`,
        );
        // k = 0: out = 0 (or unchanged when accumulating).
        checkGemm(
          backend,
          rng,
          {
            batch: 1,
            m: 5,
            k: 0,
            n: 6,
            transA: false,
            transB: false,
            strideA: 0,
            strideB: 0,
            strideOut: 0,
          },
          `${kernel} k=0`,
        );
        checkGemm(
          backend,
          rng,
          {
            batch: 1,
            m: 5,
            k: 0,
            n: 6,
            transA: false,
            transB: false,
            strideA: 0,
            strideB: 0,
            strideOut: 0,
            accumulate: true,
          },
          `${kernel} k=0 accumulate`,
        );
      }
    } finally {
      tools!.setKernel(info.kernel);
    }
  },
);

test('narrow, short-k and attention results do not depend on the thread count', { skip }, () => {
  const { backend, tools } = native();
  const threads = tools!.info().threads;
  const rng = new Rng(4);
  const fill = (n: number): Float32Array => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = rng.uniform(-1, 1);
    return x;
  };
  const gemms = [
    { m: 700, k: 576, n: 8, transA: false, transB: true }, // narrow, split over threads
    { m: 700, k: 8, n: 576, transA: false, transB: true }, // short k, split over threads
    { m: 8, k: 700, n: 300, transA: true, transB: false }, // few rows with Aᵀ, split
  ];
  const ap = { batch: 2, seqQ: 100, seqK: 100, heads: 4, kvHeads: 2, headDim: 32 };
  const attn = { ...ap, scale: 0.2, causal: true };
  const nq = ap.batch * ap.seqQ * ap.heads * ap.headDim;
  const nk = ap.batch * ap.seqK * ap.kvHeads * ap.headDim;
  const [q, kk, v, g] = [fill(nq), fill(nk), fill(nk), fill(nq)];
  const ins = gemms.map((p) => ({ a: fill(p.m * p.k), b: fill(p.k * p.n) }));
  const results: Float32Array[][] = [];
  try {
    for (const t of [1, 2, 3]) {
      tools!.setThreads(t);
      const res: Float32Array[] = [];
      gemms.forEach((p, i) => {
        const o = new Float32Array(p.m * p.n);
        backend.matmul(ins[i]!.a, ins[i]!.b, o, {
          ...p,
          batch: 1,
          strideA: 0,
          strideB: 0,
          strideOut: 0,
        });
        res.push(o);
      });
      const o = new Float32Array(nq);
      const lse = new Float32Array(ap.batch * ap.heads * ap.seqQ);
      backend.attention(q, kk, v, o, lse, attn);
      const gq = new Float32Array(nq);
      const gk = new Float32Array(nk);
      const gv = new Float32Array(nk);
      backend.attentionBackward(q, kk, v, o, lse, g, gq, gk, gv, attn);
      res.push(o, lse, gq, gk, gv);
      results.push(res);
    }
  } finally {
    tools!.setThreads(threads);
  }
  for (let t = 1; t < results.length; t++)
    results[t]!.forEach((r, i) =>
      assert.deepEqual(r, results[0]![i], `output ${i}, ${t + 1} threads`),
    );
});

test('GEMM results do not depend on the thread count', { skip }, () => {
  const { backend, tools } = native();
  const threads = tools!.info().threads;
  const rng = new Rng(3);
  // Large enough (≥ 4M multiply-adds) that the product is split across threads.
  const m = 130;
  const k = 300;
  const n = 150;
  const a = backend.alloc('f32', m * k) as Float32Array;
  const b = backend.alloc('f32', k * n) as Float32Array;
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform(-1, 1);
  for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-1, 1);
  const outs: Float32Array[] = [];
  try {
    for (const t of [1, 2, 3]) {
      tools!.setThreads(t);
      const o = backend.alloc('f32', m * n) as Float32Array;
      backend.matmul(a, b, o, {
        batch: 1,
        m,
        k,
        n,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: 0,
        strideOut: 0,
      });
      outs.push(o);
    }
  } finally {
    tools!.setThreads(threads);
  }
  // Each C tile is summed in the same order whoever computes it: results are bit-identical.
  assert.deepEqual(outs[1], outs[0]);
  assert.deepEqual(outs[2], outs[0]);
  for (const x of [a, b, ...outs]) backend.release(x);
});
