// rl4qe bench generate: greedy generation tokens/s (prefill of a PROMPT-token prompt + NEW new
// tokens, EOS ignored, whole-call wall time) for SmolLM2-135M and Qwen2.5-Coder-0.5B from their
// GGUF files at batch 1 and batch 8, with ratios measured in the same run against
//   transformers: generate() on CPU float32 on the same GGUF dequantised
//                 (scripts/bench_generate_torch.py in the oracle venv), same threads;
//   llama.cpp:    node-llama-cpp on the same GGUF (its own quantised kernels), same threads,
//                 batch 8 as 8 parallel sequences of one context (evaluated in one batch).
// Also model load time from GGUF and peak RSS as a multiple of (float32 weights + KV cache).
// Every engine/model/batch runs in its own child process (generate-worker.ts), so peak RSS and
// timings never mix. An unavailable baseline is skipped with a note, never fails the bench.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo } from '../../tensor/index.js';
import { nativeStatus } from '../../backend/index.js';
import { cachePaths } from '../../util/paths.js';
import { assertNodeLlamaCppInstalled } from '../../generators/node-llama-cpp.js';
import { machineInfo, type BenchCase, type BenchReport } from '../../util/bench.js';
import type { WorkerJob, WorkerResult } from './generate-worker.js';
import type { BenchOptions } from './index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../../..');
const WORKER = path.join(HERE, 'generate-worker.js');

const MODELS = [
  { id: 'smollm2-135m', file: 'smollm2-135m-instruct-q4_1.gguf' },
  { id: 'qwen2.5-coder-0.5b', file: 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf' },
];

type Weights = 'float32' | 'quantized';
const suffix = (w: Weights): string => (w === 'quantized' ? '/quantized' : '');

function runChild(job: WorkerJob, log: (l: string) => void): WorkerResult | string {
  const r = spawnSync(process.execPath, [WORKER, JSON.stringify(job)], {
    encoding: 'utf8',
    timeout: 3_600_000,
    maxBuffer: 1 << 24,
  });
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-3).join(' | ');
    return `${job.engine} worker failed (exit ${r.status}): ${why}`;
  }
  const res = JSON.parse(last) as WorkerResult;
  log(
    `generate: ${job.engine} ${path.basename(job.model)} batch ${job.batch}${job.weights ? ` (${job.weights})` : ''}: ${res.tokensPerS.toFixed(2)} tok/s (runs ${res.runsS.map((s) => s.toFixed(2)).join(', ')} s)`,
  );
  return res;
}

interface TorchResult {
  load_s: number;
  cases: Record<string, { median_s: number; tokens_per_s: number; first_tokens: number[] }>;
}

function runTorch(
  model: string,
  batches: number[],
  job: Omit<WorkerJob, 'engine' | 'model' | 'batch'>,
): TorchResult | string {
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  if (!existsSync(py)) return `transformers ratio skipped: no oracle venv at ${py}`;
  const script = path.join(ROOT, 'scripts', 'bench_generate_torch.py');
  const r = spawnSync(
    py,
    [
      script,
      '--model',
      model,
      '--batches',
      batches.join(','),
      '--prompt',
      String(job.prompt),
      '--new',
      String(job.newTokens),
      '--runs',
      String(job.runs),
      '--threads',
      String(job.threads),
    ],
    { encoding: 'utf8', timeout: 3_600_000, maxBuffer: 1 << 24 },
  );
  const last = r.stdout?.trim().split('\n').slice(-1)[0] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0] ?? '';
    return `transformers ratio skipped: ${path.basename(script)} failed (${why})`;
  }
  return JSON.parse(last) as TorchResult;
}

/** Null when node-llama-cpp resolves from here (our node_modules or any parent's), else why not. */
function llamaCppAvailable(): string | null {
  try {
    assertNodeLlamaCppInstalled();
    return null;
  } catch {
    return 'node-llama-cpp is not installed (optional dependency)';
  }
}

export async function benchGenerate(opts: BenchOptions): Promise<BenchReport> {
  const info = backendInfo();
  const units = nativeStatus().tools?.info();
  const int8Available = (units?.int8MaxM ?? 0) > 0 && process.env.RL4QE_INT8_DECODING !== '0';
  const threads = info.nativeAvailable ? info.threads : 1;
  const shape = opts.quick
    ? { prompt: 32, newTokens: 8, runs: 1 }
    : {
        prompt: 512,
        newTokens: 128,
        runs: Number(process.env.RL4QE_BENCH_RUNS ?? 3),
      };
  // RL4QE_BENCH_BATCHES=1 (comma-separated) runs a subset of the batch sizes.
  const batches = (process.env.RL4QE_BENCH_BATCHES ?? '1,8')
    .split(',')
    .filter(Boolean)
    .map(Number)
    .filter((b) => Number.isInteger(b) && b > 0);
  const envWeights = process.env.RL4QE_BENCH_WEIGHTS;
  const weightModes: Weights[] =
    envWeights === 'float32' || envWeights === 'quantized'
      ? [envWeights]
      : ['float32', 'quantized'];
  // RL4QE_BENCH_MODELS=smollm2-135m (comma-separated ids) runs a subset.
  const only = process.env.RL4QE_BENCH_MODELS?.split(',').filter(Boolean);
  const models = (opts.quick ? MODELS.slice(0, 1) : MODELS).filter(
    (m) => !only || only.includes(m.id),
  );
  const notes: string[] = [];
  const note = (s: string) => {
    notes.push(s);
    opts.log(`generate: ${s}`);
  };
  if (!info.nativeAvailable) note(`native backend unavailable (${info.nativeReason})`);
  const noLlama = llamaCppAvailable();
  if (noLlama) note(`llama.cpp ratio skipped: ${noLlama}`);
  const cases: BenchCase[] = [];

  for (const m of models) {
    const file = path.join(cachePaths.testModels(), m.file);
    if (!existsSync(file)) {
      note(`${m.id} skipped: ${file} is missing (run \`node scripts/fetch-test-models.mjs\`)`);
      continue;
    }
    const base = { model: file, threads, ...shape };
    // rl4qe runs twice: float32 weights (the issue's cases) and the GGUF blocks kept as they are
    // (cases with a /quantized suffix); RL4QE_BENCH_WEIGHTS=float32 or quantized runs one.
    const ours = new Map<string, WorkerResult>();
    for (const w of weightModes) {
      for (const b of batches) {
        opts.log(`generate: rl4qe ${m.id} batch ${b} (${w} weights)`);
        const r = runChild({ ...base, engine: 'rl4qe', batch: b, weights: w }, opts.log);
        if (typeof r === 'string') note(`${m.id}/batch${b}${suffix(w)}: ${r}`);
        else ours.set(`${w}:${b}`, r);
      }
    }
    opts.log(`generate: transformers ${m.id}`);
    const torch = runTorch(file, batches, { threads, ...shape });
    if (typeof torch === 'string') note(`${m.id}: ${torch}`);
    const llama = new Map<number, WorkerResult>();
    if (!noLlama) {
      for (const b of batches) {
        opts.log(`generate: llama.cpp ${m.id} batch ${b}`);
        const r = runChild({ ...base, engine: 'llama.cpp', batch: b }, opts.log);
        if (typeof r === 'string') note(`${m.id}/batch${b}: llama.cpp ratio skipped: ${r}`);
        else llama.set(b, r);
      }
    }

    for (const [key, o] of ours) {
      const [w, bs] = key.split(':') as [Weights, string];
      const b = Number(bs);
      const ratios: Record<string, number> = {};
      const extra: Record<string, unknown> = {
        prompt: shape.prompt,
        newTokens: shape.newTokens,
        runs: shape.runs,
        threads,
        medianS: o.medianS,
        prefillS: o.prefillS,
        decodeMsPerStep:
          o.prefillS !== undefined
            ? ((o.medianS - o.prefillS) / Math.max(1, shape.newTokens - 1)) * 1000
            : undefined,
        weights: w,
        // Quantised weights decode on int8 activations where the kernel set has them.
        int8Decoding: w === 'quantized' && int8Available,
        firstTokens: o.firstTokens,
      };
      const t = typeof torch === 'string' ? undefined : torch.cases[String(b)];
      if (t) {
        ratios.transformers = o.tokensPerS / t.tokens_per_s;
        extra.transformersTokensPerS = t.tokens_per_s;
        extra.transformersFirstTokens = t.first_tokens;
      }
      const l = llama.get(b);
      if (l) {
        ratios['llama.cpp'] = o.tokensPerS / l.tokensPerS;
        extra.llamaCppTokensPerS = l.tokensPerS;
      }
      cases.push({
        case: `${m.id}/batch${b}${suffix(w)}`,
        value: o.tokensPerS,
        unit: 'tokens/s',
        ratios,
        extra,
      });
    }
    for (const w of weightModes) {
      const o1 = ours.get(`${w}:1`);
      if (!o1) continue;
      const ratios: Record<string, number> = {};
      const extra: Record<string, unknown> = {};
      if (typeof torch !== 'string') {
        ratios.transformers = (torch.load_s * 1000) / o1.loadMs;
        extra.transformersLoadMs = torch.load_s * 1000;
      }
      const l = llama.get(1);
      if (l) {
        ratios['llama.cpp'] = l.loadMs / o1.loadMs;
        extra.llamaCppLoadMs = l.loadMs;
      }
      cases.push({ case: `${m.id}/load${suffix(w)}`, value: o1.loadMs, unit: 'ms', ratios, extra });
    }
    for (const [key, o] of ours) {
      const [w, bs] = key.split(':') as [Weights, string];
      const b = Number(bs);
      const bound = (o.weightBytes ?? 0) + (o.kvBytes ?? 0);
      const extra: Record<string, unknown> = {
        peakRssMiB: o.peakRssBytes / 2 ** 20,
        float32WeightsMiB: (o.weightBytes ?? 0) / 2 ** 20,
        kvCacheMiB: (o.kvBytes ?? 0) / 2 ** 20,
        target: '≤ 1.3',
      };
      const l = llama.get(b);
      if (l) extra.llamaCppPeakRssMiB = l.peakRssBytes / 2 ** 20;
      cases.push({
        case: `${m.id}/batch${b}${suffix(w)}/peak-rss`,
        value: o.peakRssBytes / bound,
        unit: '× (float32 weights + KV cache)',
        ratios: {},
        extra,
      });
    }
  }
  return {
    bench: 'generate',
    machine: machineInfo({
      backend: info.name,
      kernel: info.kernel,
      units: units?.units,
      kernelNote: units?.note || undefined,
      int8Decoding: int8Available,
      threads,
      notes,
    }),
    cases,
  };
}
