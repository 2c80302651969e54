// Child process of `rl4qe bench generate` (src/cli/benches/generate.ts): one engine, one model,
// one batch size per process, so that peak RSS (VmHWM) and load time belong to that run alone.
//   node dist/src/cli/benches/generate-worker.js '{"engine":"rl4qe","model":…,"batch":1,…}'
// Prints one JSON line (WorkerResult) on stdout; progress and errors go to stderr.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadGgufModel } from '../../models/index.js';
import { generate } from '../../sampling/index.js';
import { backendInfo } from '../../tensor/index.js';
import { median } from '../../util/bench.js';
import { loadNodeLlamaCpp } from '../../generators/node-llama-cpp.js';

export interface WorkerJob {
  engine: 'rl4qe' | 'llama.cpp';
  model: string;
  batch: number;
  prompt: number;
  newTokens: number;
  runs: number;
  threads: number;
  /** rl4qe only: float32 weights (default) or the GGUF blocks kept (loadGgufModel weights). */
  weights?: 'float32' | 'quantized';
  /** rl4qe with quantised weights: int8 decoding steps (default true; RL4QE_INT8_DECODING=0: off). */
  int8Decoding?: boolean;
}

export interface WorkerResult {
  loadMs: number;
  /** Median wall time of one whole generate call (prefill + newTokens decode steps), seconds. */
  medianS: number;
  runsS: number[];
  tokensPerS: number;
  /** Median prefill time (generate with one new token), seconds (rl4qe only). */
  prefillS?: number;
  peakRssBytes: number;
  /** float32 weights + KV cache for batch × (prompt + newTokens) (rl4qe only). */
  weightBytes?: number;
  kvBytes?: number;
  firstTokens: number[];
}

/** The synthetic prompt every engine gets: row b, position i → 100 + (7i + b) mod 1000. */
export function benchPrompts(batch: number, len: number): number[][] {
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length: len }, (_, i) => 100 + ((i * 7 + b) % 1000)),
  );
}

function vmHwmBytes(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** One turn of the event loop: Node frees native buffers' records there (see runRl4qe). */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function runRl4qe(job: WorkerJob): Promise<WorkerResult> {
  const t0 = performance.now();
  const { model, config } = loadGgufModel(job.model, { weights: job.weights ?? 'float32' });
  const loadMs = performance.now() - t0;
  const prompts = benchPrompts(job.batch, job.prompt);
  const gen = (n: number, ps = prompts) =>
    generate(model, {
      prompts: ps,
      maxNewTokens: n,
      temperature: 0,
      stopTokens: [],
      // Quantised weights decode on int8 activations where the CPU has them (avx512vnni).
      int8Decoding: job.weights === 'quantized' && job.int8Decoding !== false,
    });
  gen(4, benchPrompts(job.batch, 16)); // warm-up: first-call costs (scratch, JIT)
  const runsS: number[] = [];
  let firstTokens: number[] = [];
  for (let r = 0; r < job.runs; r++) {
    // Between calls the process returns to the event loop, as a server does between requests:
    // Node releases the bookkeeping of freed native buffers (~270 B each, hundreds per decoding
    // step) only there, so back-to-back synchronous calls would pile it up in the peak RSS.
    await tick();
    const t = performance.now();
    const out = gen(job.newTokens);
    runsS.push((performance.now() - t) / 1000);
    if (out.some((g) => g.tokens.length !== job.newTokens)) {
      throw new Error(`generate produced fewer than ${job.newTokens} tokens`);
    }
    firstTokens = out[0]?.tokens.slice(0, 8) ?? [];
  }
  // Prefill alone (one new token), once: an estimate for the report, not a median.
  await tick();
  const t1 = performance.now();
  gen(1);
  const pre = [(performance.now() - t1) / 1000];
  let weights = 0;
  for (const s of model.slots()) weights += s.shape.reduce((a, b) => a * b, 1) * 4;
  const kv =
    2 *
    config.numLayers *
    job.batch *
    (job.prompt + job.newTokens) *
    config.numKvHeads *
    config.headDim *
    4;
  const medianS = median(runsS);
  return {
    loadMs,
    medianS,
    runsS,
    tokensPerS: (job.batch * job.newTokens) / medianS,
    prefillS: median(pre),
    peakRssBytes: vmHwmBytes(),
    weightBytes: weights,
    kvBytes: kv,
    firstTokens,
  };
}

async function runLlamaCpp(job: WorkerJob): Promise<WorkerResult> {
  const nlc = await loadNodeLlamaCpp();
  const llama = await nlc.getLlama({ gpu: false, logLevel: nlc.LlamaLogLevel.error });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: job.model });
  const loadMs = performance.now() - t0;
  // Parallel sequences of one context are evaluated together in one llama.cpp batch.
  const once = async (prompts: number[][], n: number): Promise<number[][]> => {
    const ctx = await model.createContext({
      contextSize: prompts.length * (prompts[0]!.length + n + 8),
      batchSize: Math.max(512, prompts[0]!.length),
      sequences: prompts.length,
      threads: job.threads,
    });
    try {
      return await Promise.all(
        prompts.map(async (p) => {
          const seq = ctx.getSequence();
          const toks: number[] = [];
          for await (const t of seq.evaluate(p, { temperature: 0 })) {
            toks.push(t);
            if (toks.length >= n) break;
          }
          return toks;
        }),
      );
    } finally {
      await ctx.dispose();
    }
  };
  const prompts = benchPrompts(job.batch, job.prompt);
  await once(benchPrompts(job.batch, 16), 4);
  const runsS: number[] = [];
  let firstTokens: number[] = [];
  for (let r = 0; r < job.runs; r++) {
    // Between calls the process returns to the event loop, as a server does between requests:
    // Node releases the bookkeeping of freed native buffers (~270 B each, hundreds per decoding
    // step) only there, so back-to-back synchronous calls would pile it up in the peak RSS.
    await tick();
    const t = performance.now();
    const out = await once(prompts, job.newTokens);
    runsS.push((performance.now() - t) / 1000);
    firstTokens = out[0]?.slice(0, 8) ?? [];
  }
  await model.dispose();
  const medianS = median(runsS);
  return {
    loadMs,
    medianS,
    runsS,
    tokensPerS: (job.batch * job.newTokens) / medianS,
    peakRssBytes: vmHwmBytes(),
    firstTokens,
  };
}

export async function runWorker(job: WorkerJob): Promise<WorkerResult> {
  return job.engine === 'rl4qe' ? runRl4qe(job) : runLlamaCpp(job);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const job = JSON.parse(process.argv[2] ?? '{}') as WorkerJob;
  process.stderr.write(
    `generate-worker: ${job.engine} ${job.model} batch ${job.batch} (${backendInfo().name})\n`,
  );
  const res = await runWorker(job);
  process.stdout.write(`${JSON.stringify(res)}\n`);
}
