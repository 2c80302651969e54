// rl4qe bench generator: requests/s through a local `rl4qe serve` (refine + generate on the
// default offline GGUF) at concurrency 1 and 8, and the latency of a generator-cache hit.
// Ratios: concurrency8.sequential = rps(8) / rps(1); cache_hit.naive = uncached / cached latency.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CachedGenerator,
  GenerationCache,
  OpenAIGenerator,
  type GenerationRequest,
} from '../../generators/index.js';
import { machineInfo, median, type BenchReport } from '../../util/bench.js';
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
      while (next < reqs.length) {
        const [r] = await client.generate([reqs[next++]!]);
        if (!r!.ok) failures++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  if (failures > 0) throw new Error(`${failures} of ${total} benchmark requests failed`);
  return total / s;
}

export async function runGeneratorBench(opts: BenchOptions): Promise<BenchReport> {
  const runs = opts.quick ? 1 : 3;
  const total = opts.quick ? 8 : 16;
  const maxTokens = 8;
  const threads = String(Math.max(1, Math.min(4, os.cpus().length - 1)));
  const { url, proc } = await startServe(
    [
      '--threads',
      threads,
      '--sequences',
      '8',
      '--max-concurrent',
      '64',
      '--no-cache',
      '--refine-max-tokens',
      '8',
    ],
    opts.log,
  );
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-bench-gen-'));
  try {
    const client = new OpenAIGenerator({
      baseUrl: `${url}/v1`,
      model: 'rl4qe',
      concurrency: 8,
      timeoutMs: 600_000,
    });
    await throughput(client, 2, 1, maxTokens); // warm-up: loads the model
    const rps1: number[] = [];
    const rps8: number[] = [];
    for (let i = 0; i < runs; i++) {
      rps1.push(await throughput(client, total, 1, maxTokens));
      rps8.push(await throughput(client, total, 8, maxTokens));
      opts.log(
        `run ${i + 1}/${runs}: c1 ${rps1.at(-1)!.toFixed(2)} req/s, c8 ${rps8.at(-1)!.toFixed(2)} req/s`,
      );
    }
    // Cache hit vs miss latency for the same request through the on-disk cache.
    const cache = new GenerationCache({ file: path.join(dir, 'cache.sqlite') });
    const cached = new CachedGenerator(client, cache);
    const req = request(maxTokens);
    const t0 = performance.now();
    const [miss] = await cached.generate([req]);
    const missMs = performance.now() - t0;
    if (!miss!.ok) throw new Error(`cache warm-up request failed: ${miss!.message}`);
    const hits: number[] = [];
    for (let i = 0; i < (opts.quick ? 50 : 500); i++) {
      const t = performance.now();
      const [h] = await cached.generate([{ ...req, id: `h${i}` }]);
      hits.push(performance.now() - t);
      if (!h!.ok || !h!.cached) throw new Error('expected a cache hit');
    }
    cache.close();
    const hitMs = median(hits);
    const c1 = median(rps1);
    const c8 = median(rps8);
    return {
      bench: 'generator',
      machine: machineInfo({ model: 'smollm2-135m-instruct-q4_1.gguf', threads: Number(threads) }),
      cases: [
        {
          case: 'concurrency1',
          value: c1,
          unit: 'req/s',
          ratios: {},
          extra: { requests: total, maxTokens, runs: rps1 },
        },
        {
          case: 'concurrency8',
          value: c8,
          unit: 'req/s',
          ratios: { sequential: c8 / c1 },
          extra: { requests: total, maxTokens, runs: rps8 },
        },
        {
          case: 'cache_hit',
          value: hitMs,
          unit: 'ms',
          ratios: { naive: missMs / hitMs },
          extra: { missMs },
        },
      ],
    };
  } finally {
    await stopServe(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
