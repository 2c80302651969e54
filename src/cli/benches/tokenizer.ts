// rl4qe bench tokenizer: encoding throughput on the DS-1000 prompts and vocabulary load time from
// GGUF, for each offline test model, against transformers (AutoTokenizer with gguf_file, one
// call per prompt as rl4qe encodes) timed in the same run on the same texts (ratio
// `transformers`; the Rust backend called directly is kept in `extra`).
import { spawnSync } from 'node:child_process';
import { defaultDataDir } from '../../data/paths.js';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '../../tokenizer/index.js';
import { NotFoundError } from '../../util/errors.js';
import {
  machineInfo,
  median,
  timeMedian,
  type BenchCase,
  type BenchReport,
} from '../../util/bench.js';
import { cachePaths } from '../../util/paths.js';
import type { BenchOptions } from './index.js';

const MODELS = [
  { id: 'smollm2-135m', file: 'smollm2-135m-instruct-q4_1.gguf' },
  { id: 'qwen2.5-coder-0.5b', file: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf' },
];

const PY = String.raw`
import json, os, sys, time, statistics, warnings
warnings.filterwarnings("ignore")
from transformers import AutoTokenizer
d, f, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
prompts = json.load(sys.stdin)
t0 = time.perf_counter(); tok = AutoTokenizer.from_pretrained(d, gguf_file=f); load = time.perf_counter() - t0
def timed(fn):
    ts = []
    for _ in range(runs + 1):
        t0 = time.perf_counter(); n = fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts[1:]), n
enc, n = timed(lambda: sum(len(tok(p)["input_ids"]) for p in prompts))
bt = tok.backend_tokenizer
rust, _ = timed(lambda: sum(len(bt.encode(p).ids) for p in prompts))
print(json.dumps({"load": load, "encode": enc, "rust": rust, "tokens": n}))
`;

/** DS-1000 prompts: $RL4QE_DATA_DIR, else the repository's data/, else shared/data upwards. */
function ds1000Prompts(): string[] {
  const dirs: string[] = [];
  if (process.env.RL4QE_DATA_DIR) dirs.push(path.resolve(process.env.RL4QE_DATA_DIR));
  dirs.push(defaultDataDir());
  for (let d = process.cwd(); ; d = path.dirname(d)) {
    dirs.push(path.join(d, 'shared', 'data'));
    if (path.dirname(d) === d) break;
  }
  for (const d of dirs) {
    const f = path.join(d, 'ds1000.jsonl.gz');
    if (!existsSync(f)) continue;
    return gunzipSync(readFileSync(f))
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  }
  throw new NotFoundError('DS-1000 not found', {
    where: dirs.map((d) => path.join(d, 'ds1000.jsonl.gz')).join(', '),
    hint: 'set RL4QE_DATA_DIR to the folder holding ds1000.jsonl.gz',
  });
}

export async function benchTokenizer(opts: BenchOptions): Promise<BenchReport> {
  const all = ds1000Prompts();
  const prompts = opts.quick ? all.slice(0, 100) : all;
  const chars = prompts.reduce((a, p) => a + p.length, 0);
  const runs = opts.quick ? 2 : 5;
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  const cases: BenchCase[] = [];
  // Quick mode (smoke tests): the small model only, 100 prompts; transformers takes ~15 s to load it.
  for (const m of opts.quick ? MODELS.slice(0, 1) : MODELS) {
    const file = path.join(cachePaths.testModels(), m.file);
    if (!existsSync(file)) {
      opts.log(`${m.id}: ${file} missing (node scripts/fetch-test-models.mjs); skipped`);
      continue;
    }
    const loads: number[] = [];
    let tok: Tokenizer | undefined;
    for (let i = 0; i < (opts.quick ? 1 : 3); i++) {
      const t0 = performance.now();
      tok = Tokenizer.fromGgufFile(file);
      loads.push((performance.now() - t0) / 1000);
    }
    const load = median(loads);
    let tokens = 0;
    const enc = await timeMedian(() => {
      tokens = 0;
      for (const p of prompts) tokens += tok!.encode(p).length;
    }, runs);
    opts.log(`${m.id}: load ${load.toFixed(2)} s, ${(tokens / enc).toFixed(0)} tokens/s`);

    let base: { load: number; encode: number; rust: number; tokens: number } | undefined;
    if (existsSync(py)) {
      opts.log(`${m.id}: timing transformers (${py})`);
      const r = spawnSync(py, ['-c', PY, cachePaths.testModels(), m.file, String(runs)], {
        input: JSON.stringify(prompts),
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      if (r.status === 0) base = JSON.parse(r.stdout.trim().split('\n').pop()!) as typeof base;
      else opts.log(`transformers baseline failed: ${r.stderr.slice(-500)}`);
    } else opts.log(`no oracle venv at ${py}: reporting rl4qe numbers only`);

    const encodeCase: BenchCase = {
      case: `${m.id}/encode-ds1000`,
      value: tokens / enc,
      unit: 'tokens/s',
      ratios: {},
      extra: { prompts: prompts.length, chars, tokens, seconds: enc, mbPerSec: chars / enc / 1e6 },
    };
    const loadCase: BenchCase = {
      case: `${m.id}/load-gguf-vocab`,
      value: load,
      unit: 's',
      ratios: {},
    };
    if (base) {
      if (base.tokens !== tokens)
        opts.log(`WARNING: token counts differ (${tokens} vs ${base.tokens})`);
      encodeCase.ratios.transformers = base.encode / enc;
      encodeCase.extra!.transformersTokensPerSec = base.tokens / base.encode;
      encodeCase.extra!.rustTokenizersTokensPerSec = base.tokens / base.rust;
      encodeCase.extra!.vsRustTokenizers = base.rust / enc;
      loadCase.ratios.transformers = base.load / load;
      loadCase.extra = { transformersSeconds: base.load };
    }
    cases.push(encodeCase, loadCase);
  }
  return { bench: 'tokenizer', machine: machineInfo(), cases };
}
