// Benchmarks for `rl4qe bench NAME`: one file per benchmark, one line here each.
import type { BenchReport } from '../../util/bench.js';
import { runGeneratorBench } from './generator.js';

export interface BenchOptions {
  /** Quick mode: fewer runs and smaller cases (used by the smoke test). */
  quick: boolean;
  /** Progress lines go here (stderr); the JSON report goes to stdout. */
  log: (line: string) => void;
}

export type BenchFn = (opts: BenchOptions) => Promise<BenchReport>;

export const benches: Record<string, { description: string; run: BenchFn }> = {
  generator: {
    description: 'requests/s through rl4qe serve at concurrency 1 and 8; cache-hit latency',
    run: runGeneratorBench,
  },
};
