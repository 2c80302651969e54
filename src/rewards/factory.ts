// Builds the composite reward of a run from plain config values (train config, CLI flags).
import { CompositeReward, type NullPolicy, type WeightedReward } from './composite.js';
import { executionReward, type ExecutionRewardOptions, type SandboxRunner } from './execution.js';
import { textReward, TEXT_METRICS, type TextMetric } from './text-rewards.js';
import type { BleuSmoothing, TextTokenizer } from './text.js';
import { ConfigError } from '../util/errors.js';

export const REWARD_NAMES = [...TEXT_METRICS, 'exec'] as const;
export type RewardName = (typeof REWARD_NAMES)[number];

export interface RewardConfig {
  /** Weight per reward; components with weight 0 are still computed and stored (ablations). */
  weights: Partial<Record<RewardName, number>>;
  tokenizer?: TextTokenizer;
  smoothing?: BleuSmoothing;
  nullPolicy?: NullPolicy;
  /** Execution settings; required when weights.exec is given. */
  exec?: Omit<ExecutionRewardOptions, 'runner' | 'name'>;
  /** The sandbox runner; required when weights.exec is given. */
  runner?: SandboxRunner;
}

/** The paper's text rewards at weight 0 besides the configured ones: every component is stored. */
export function makeReward(cfg: RewardConfig): CompositeReward {
  const parts: WeightedReward[] = [];
  for (const k of Object.keys(cfg.weights)) {
    if (!(REWARD_NAMES as readonly string[]).includes(k)) {
      throw new ConfigError(`unknown reward '${k}'`, {
        where: `rewards.weights.${k}`,
        expected: REWARD_NAMES.join(', '),
        found: k,
      });
    }
  }
  for (const m of TEXT_METRICS) {
    parts.push({
      fn: textReward(m as TextMetric, {
        tokenizer: cfg.tokenizer,
        smoothing: cfg.smoothing,
        name: m,
      }),
      weight: cfg.weights[m] ?? 0,
    });
  }
  if (cfg.weights.exec !== undefined) {
    if (!cfg.runner) {
      throw new ConfigError('the execution reward needs a sandbox runner', {
        where: 'rewards.weights.exec',
        hint: 'pass runner (the sandbox pool) or remove the exec weight',
      });
    }
    parts.push({
      fn: executionReward({ ...cfg.exec, runner: cfg.runner }),
      weight: cfg.weights.exec,
    });
  }
  return new CompositeReward(parts, { nullPolicy: cfg.nullPolicy });
}
