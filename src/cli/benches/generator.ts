// rl4qe bench generator: requests/s through a local `rl4qe serve` (refine + generate on the
// offline SmolLM2 GGUF) at concurrency 1 and 8, and the latency of a generator-cache hit. Two
// servers: the default llama.cpp stack (8 sequences), and rl4qe's own engine (`--local`, refiner
// on the same model: one worker, one decode queue, so concurrent requests decode in shared
// batches). Ratios: *concurrency8.sequential = rps(8) / rps(1), measured on the same server in
// the same run (c1 and c8 alternate; the median over runs); cache_hit.naive = uncached / cached.
// The machine record carries the load average before and after: the host may be shared.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CachedGenerator,
  GenerationCache,
  OpenAIGenerator,
  defaultGgufPath,
  type GenerationRequest,
} from '../../generators/index.js';
import { machineInfo, median, type BenchCase, type BenchReport } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import type { BenchOptions } from './index.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../main.js');

async function startServe(
  args: string[],
  log: (l: string) => void,
): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) =>
      reject(
        new NotFoundError(`rl4qe serve exited (${code}) before listening`, {
          found: err.trim().split('\n').slice(-3).join(' | '),
          hint: 'node scripts/fetch-test-models.mjs fetches the default model',
        }),
      ),
    );
  });
  log(`serve ${args.join(' ')} at ${url}`);
  return { url, proc };
}

async function stopServe(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

let uniq = 0;
function request(maxTokens: number): GenerationRequest {
  // Distinct prompts so nothing is answered from a cache.
  const n = uniq++;
  return {
    id: `b${n}`,
    messages: [
      {
        role: 'user',
        content: `Write a Python function number ${n} that returns the sum of a list.`,
      },
    ],
    params: { maxTokens, temperature: 0 },
  };
}

/** Requests per second for `total` requests with `concurrency` in flight. */
async function throughput(
  client: OpenAIGenerator,
  total: number,
  concurrency: number,
  maxTokens: number,
): Promise<number> {
  const reqs = Array.from({ length: total }, () => request(maxTokens));
  let next = 0;
  let failures = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let r = reqs[next++]; r !== undefined; r = reqs[next++]) {
        const [res] = await client.generate([r]);
        if (!res?.ok) failures++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  if (failures > 0) throw new Error(`${failures} of ${total} benchmark requests failed`);
  return total / s;
}

interface ServeRates {
  c1: number;
  c8: number;
  runs1: number[];
  runs8: number[];
}

/** c1 and c8 throughput of one server, alternating, after a warm-up that loads the model. */
async function rates(
  client: OpenAIGenerator,
  opts: BenchOptions,
  label: string,
  runs: number,
  sizes: { c1: number; c8: number },
  maxTokens: number,
): Promise<ServeRates> {
  await throughput(client, 2, 1, maxTokens); // warm-up: loads the model
  await throughput(client, 8, 8, maxTokens); // and a batch of 8 (the batched code paths)
  const runs1: number[] = [];
  const runs8: number[] = [];
  for (let i = 0; i < runs; i++) {
    runs1.push(await throughput(client, sizes.c1, 1, maxTokens));
    runs8.push(await throughput(client, sizes.c8, 8, maxTokens));
    opts.log(
      `${label} run ${i + 1}/${runs}: c1 ${runs1.at(-1)?.toFixed(2)} req/s, c8 ${runs8.at(-1)?.toFixed(2)} req/s`,
    );
  }
  return { c1: median(runs1), c8: median(runs8), runs1, runs8 };
}

function rateCases(prefix: string, r: ServeRates, extra: Record<string, unknown>): BenchCase[] {
  return [
    {
      case: `${prefix}concurrency1`,
      value: r.c1,
      unit: 'req/s',
      ratios: {},
      extra: { ...extra, runs: r.runs1 },
    },
    {
      case: `${prefix}concurrency8`,
      value: r.c8,
      unit: 'req/s',
      ratios: { sequential: r.c8 / r.c1 },
      extra: { ...extra, runs: r.runs8, runRatios: r.runs8.map((x, i) => x / (r.runs1[i] ?? NaN)) },
    },
  ];
}

const client = (url: string): OpenAIGenerator =>
  new OpenAIGenerator({
    baseUrl: `${url}/v1`,
    model: 'rl4qe',
    apiKey: 'unused',
    concurrency: 8,
    timeoutMs: 600_000,
  });

export async function runGeneratorBench(opts: BenchOptions): Promise<BenchReport> {
  const runs = opts.quick ? 1 : 3;
  // Requests per measurement: c8 runs two waves of 8; c1 fewer (the rate is per request).
  const sizes = { c1: opts.quick ? 4 : 8, c8: opts.quick ? 8 : 16 };
  const maxTokens = 8;
  // Realistic lengths too: with 8 tokens a request is mostly prefill (the refine prompt is ~100
  // tokens), which batching cannot speed up; decoding is where batching pays.
  const longTokens = 32;
  const threads = String(Math.max(1, Math.min(4, os.cpus().length - 1)));
  const loadBefore = os.loadavg();
  const common = ['--threads', threads, '--concurrency', '64', '--no-cache'];
  const refine = ['--refiner-max-tokens', String(maxTokens)]; // llama.cpp case
  const model = defaultGgufPath();
  const extra = { requests: sizes, maxTokens, refineMaxTokens: maxTokens };
  const cases: BenchCase[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-bench-gen-'));
  try {
    // 1. The default stack: llama.cpp, 8 sequences.
    const llama = await startServe([...common, '--batch-size', '8', ...refine], opts.log);
    try {
      const c = client(llama.url);
      cases.push(
        ...rateCases('', await rates(c, opts, 'llama.cpp', runs, sizes, maxTokens), {
          ...extra,
          backend: 'llama.cpp',
          sequences: 8,
        }),
      );
      cases.push(await cacheHitCase(c, dir, opts.quick, maxTokens));
    } finally {
      await stopServe(llama.proc);
    }
    // 2. rl4qe's engine for refiner and generator: one worker, shared batches (at 8 tokens, and
    //    at 32 on a second server: the refinement length is a server flag).
    for (const [prefix, tokens] of [
      ['local_', maxTokens],
      ['local_long_', longTokens],
    ] as const) {
      const local = await startServe(
        [
          ...common,
          '--backend',
          'local',
          '--model',
          model,
          // float32, as the figures in docs/benchmarks.md were measured (auto would quantise).
          '--weights',
          'float32',
          '--refiner-backend',
          'local',
          '--refiner-model',
          model,
          '--refiner-weights',
          'float32',
          '--batch-size',
          '8',
          '--refiner-max-tokens',
          String(tokens),
        ],
        opts.log,
      );
      try {
        const r = await rates(client(local.url), opts, prefix + 'serve', runs, sizes, tokens);
        cases.push(
          ...rateCases(prefix, r, {
            ...extra,
            maxTokens: tokens,
            refineMaxTokens: tokens,
            backend: 'local',
            weights: 'float32',
            maxBatchSize: 8,
          }),
        );
      } finally {
        await stopServe(local.proc);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    bench: 'generator',
    machine: machineInfo({
      model: 'smollm2-135m-instruct-q4_1.gguf',
      threads: Number(threads),
      loadAverageBefore: loadBefore,
      loadAverageAfter: os.loadavg(),
    }),
    cases,
  };
}

/** Cache hit vs miss latency for the same request through the on-disk cache. */
async function cacheHitCase(
  c: OpenAIGenerator,
  dir: string,
  quick: boolean,
  maxTokens: number,
): Promise<BenchCase> {
  const cache = new GenerationCache({ file: path.join(dir, 'cache.sqlite') });
  try {
    const cached = new CachedGenerator(c, cache);
    const req = request(maxTokens);
    const t0 = performance.now();
    const [miss] = await cached.generate([req]);
    const missMs = performance.now() - t0;
    if (!miss?.ok) throw new Error(`cache warm-up request failed: ${JSON.stringify(miss)}`);
    const hits: number[] = [];
    for (let i = 0; i < (quick ? 50 : 500); i++) {
      const t = performance.now();
      const [h] = await cached.generate([{ ...req, id: `h${i}` }]);
      hits.push(performance.now() - t);
      if (!h?.ok || !h.cached) throw new Error('expected a cache hit');
    }
    const hitMs = median(hits);
    return {
      case: 'cache_hit',
      value: hitMs,
      unit: 'ms',
      ratios: { naive: missMs / hitMs },
      extra: { missMs },
    };
  } finally {
    cache.close();
  }
}
