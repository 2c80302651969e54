// Benchmarks for `rl4qe bench NAME`: one file per benchmark, one line here each.
import type { BenchReport } from '../../util/bench.js';
import { gemmBench } from './gemm.js';
import { benchBlock } from './block.js';
import { benchGguf } from './gguf.js';
import { benchTokenizer } from './tokenizer.js';
import { benchRewards } from './rewards.js';
import { benchSandbox } from './sandbox.js';
import { runGeneratorBench } from './generator.js';
import { benchLocalGenerator } from './local-generator.js';
import { benchGenerate } from './generate.js';
import { benchQmatmul } from './qmatmul.js';
import { benchTrainStep } from './train-step.js';
import { benchRlStep } from './rl-step.js';
import { benchEval } from './eval.js';

export interface BenchOptions {
  /** Quick mode: fewer runs and smaller cases (used by the smoke test). */
  quick: boolean;
  /** Progress lines go here (stderr); the JSON report goes to stdout. */
  log: (line: string) => void;
}

export type BenchFn = (opts: BenchOptions) => Promise<BenchReport>;

export const benches: Record<string, { description: string; run: BenchFn }> = {
  gemm: gemmBench,
  gguf: { description: 'GGUF header parse and full dequantisation vs gguf-py', run: benchGguf },
  block: {
    description: 'Llama-style block fwd/bwd: native vs reference vs PyTorch',
    run: benchBlock,
  },
  tokenizer: {
    description: 'DS-1000 encode tokens/s and GGUF vocab load vs transformers',
    run: benchTokenizer,
  },
  rewards: { description: 'text-reward pairs/s vs nltk/rouge/difflib', run: benchRewards },
  sandbox: {
    description: 'DS-1000 tests/s: warm sandbox pool vs a fresh python per test',
    run: benchSandbox,
  },
  generator: {
    description: 'requests/s through rl4qe serve at concurrency 1 and 8; cache-hit latency',
    run: runGeneratorBench,
  },
  'local-generator': {
    description: 'local-engine generator on SmolLM2-135M: 8 requests batched vs one at a time',
    run: benchLocalGenerator,
  },
  generate: {
    description: 'greedy tokens/s at batch 1 and 8 vs transformers and llama.cpp; load, peak RSS',
    run: benchGenerate,
  },
  qmatmul: benchQmatmul,
  'train-step': {
    description:
      'LoRA train step (fwd+bwd, REINFORCE loss) tokens/s vs PyTorch+PEFT; MFU, peak RSS',
    run: benchTrainStep,
  },
  'rl-step': {
    description:
      'seconds per RL step (sample K, reward, score, backward, AdamW) vs TRL GRPOTrainer',
    run: benchRlStep,
  },
  eval: { description: 'paired evaluation problems/s: pipelined vs sequential', run: benchEval },
};
