// rl4qe bench local-generator: the local-engine generator on the offline SmolLM2-135M GGUF.
// 8 chat requests of different lengths, greedy, decoded as one batch vs one request at a time on
// the same loaded model. Ratio batch8.sequential = requests/s batched / requests/s one at a time
// (the gain from batching). Load time in extra.
import { existsSync } from 'node:fs';
import {
  LocalEngineGenerator,
  defaultGgufPath,
  type GenerationRequest,
  type GenerationResult,
} from '../../generators/index.js';
import { machineInfo, median, type BenchReport } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import type { BenchOptions } from './index.js';

const QUERIES = [
  'Sort a list.',
  'Reverse a string in Python.',
  'Read a CSV file with pandas and print the mean of every numeric column.',
  'Write a function that returns the n-th Fibonacci number.',
  'Merge two dictionaries.',
  'Compute the dot product of two numpy arrays and explain the result briefly.',
  'Count words in a text file.',
  'Plot y = x squared with matplotlib for x from 0 to 10, with axis labels and a title.',
];

export async function benchLocalGenerator(opts: BenchOptions): Promise<BenchReport> {
  const model = defaultGgufPath();
  if (!existsSync(model))
    throw new NotFoundError('the offline test model is missing', {
      where: model,
      hint: 'node scripts/fetch-test-models.mjs',
    });
  const maxTokens = opts.quick ? 4 : 16;
  const runs = opts.quick ? 1 : 3;
  const reqs: GenerationRequest[] = QUERIES.map((q, i) => ({
    id: `q${i}`,
    system: 'You write Python.',
    messages: [{ role: 'user', content: q }],
    params: { maxTokens, temperature: 0 },
  }));
  // float32, as its figures in docs/benchmarks.md were measured (the default, auto, quantises a GGUF).
  const g = new LocalEngineGenerator({
    model,
    contextSize: 512,
    maxBatchSize: 8,
    weights: 'float32',
  });
  try {
    const t0 = performance.now();
    await g.load();
    const loadS = (performance.now() - t0) / 1000;
    opts.log(`loaded ${model} in ${loadS.toFixed(2)} s`);
    const tokens = (rs: GenerationResult[]): number =>
      rs.reduce((n, r) => n + (r.ok ? r.usage.completionTokens : 0), 0);
    await g.generate(reqs.slice(0, 2)); // warm-up
    const batched: number[] = [];
    const sequential: number[] = [];
    let tok = 0;
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      const rs = await g.generate(reqs);
      batched.push((performance.now() - t) / 1000);
      tok = tokens(rs);
      t = performance.now();
      for (const r of reqs) await g.generate([r]);
      sequential.push((performance.now() - t) / 1000);
      opts.log(
        `run ${i + 1}: batch ${batched[i]!.toFixed(2)} s, one at a time ${sequential[i]!.toFixed(2)} s`,
      );
    }
    const b = median(batched);
    const s = median(sequential);
    return {
      bench: 'local-generator',
      machine: machineInfo(),
      cases: [
        {
          case: 'batch8',
          value: reqs.length / b,
          unit: 'requests/s',
          ratios: { sequential: s / b },
          extra: {
            model: 'smollm2-135m-instruct-q4_1.gguf',
            maxTokens,
            completionTokens: tok,
            tokensPerSecond: tok / b,
            sequentialRequestsPerSecond: reqs.length / s,
            loadSeconds: loadS,
            runs,
          },
        },
      ],
    };
  } finally {
    await g.dispose();
  }
}
