// The smallest real training run the trainer suites share: SmolLM2-135M (the offline test
// model), 2 steps × 1 query × 2 rewrites of ≤ 6 tokens on 4 DS-1000 tasks, BLEU-4 on the rewrite
// itself, no generator.
import path from 'node:path';
import { cachePaths } from '../../src/util/paths.js';

export const SMOL_FILE = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');

/** The run's config value (a layer for resolveTrainConfig); `refiner` keys are added to the refiner's. */
export function tinyRunValue(
  runDir: string,
  refiner: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    refiner: { model: SMOL_FILE, format: 'paper', maxPromptTokens: 96, ...refiner },
    adapter: { r: 4, alpha: 8, dropout: 0 },
    rollout: { queriesPerStep: 1, samplesPerQuery: 2, temperature: 1, maxNewTokens: 6 },
    reward: { weights: { bleu: 1 }, target: { kind: 'rewrite' } },
    generator: { backend: 'none' },
    data: { dataset: 'ds1000', trainLimit: 4 },
    eval: { problems: 0 },
    run: { dir: runDir, steps: 2, log: 'quiet' },
  };
}
