// Weighted composition of rewards. Every component value (and its info) is kept per sample, so
// any other weighting can be recomputed later from stored samples (recombine()).
import type { RewardFn, RewardInfo, RewardSample } from './types.js';
import { asBatch } from './types.js';
import { ConfigError } from '../util/errors.js';

export interface WeightedReward {
  fn: RewardFn;
  weight: number;
}

/**
 * How null components combine:
 * - 'skip' (default): a null component contributes nothing; the total is null only when every
 *   weighted component is null.
 * - 'renormalize': the total is the weighted mean over non-null components (weights rescaled).
 * - 'null': any null component makes the total null.
 */
export type NullPolicy = 'skip' | 'renormalize' | 'null';

export interface ScoredSample {
  total: number | null;
  components: Record<string, number | null>;
  info: Record<string, RewardInfo>;
}

export function recombine(
  components: Record<string, number | null>,
  weights: Record<string, number>,
  policy: NullPolicy = 'skip',
): number | null {
  let sum = 0;
  let wsum = 0;
  let any = false;
  for (const [name, w] of Object.entries(weights)) {
    if (w === 0) continue;
    const v = components[name];
    if (v === null || v === undefined) {
      if (policy === 'null') return null;
      continue;
    }
    sum += w * v;
    wsum += Math.abs(w);
    any = true;
  }
  if (!any) return null;
  return policy === 'renormalize' ? sum / wsum : sum;
}

export class CompositeReward {
  readonly parts: readonly WeightedReward[];
  readonly policy: NullPolicy;

  constructor(parts: WeightedReward[], opts: { nullPolicy?: NullPolicy } = {}) {
    const names = new Set<string>();
    for (const p of parts) {
      if (names.has(p.fn.name)) {
        throw new ConfigError(`reward '${p.fn.name}' appears twice`, { where: 'rewards' });
      }
      if (!Number.isFinite(p.weight)) {
        throw new ConfigError(`weight of '${p.fn.name}' is not a finite number`, {
          where: `rewards.${p.fn.name}.weight`,
          found: String(p.weight),
        });
      }
      names.add(p.fn.name);
    }
    this.parts = parts;
    this.policy = opts.nullPolicy ?? 'skip';
  }

  get weights(): Record<string, number> {
    return Object.fromEntries(this.parts.map((p) => [p.fn.name, p.weight]));
  }

  /** Scores a batch: all components run (concurrently), then combine per sample. */
  async score(batch: readonly RewardSample[]): Promise<ScoredSample[]> {
    const outs = await Promise.all(
      this.parts.map(async (p) => asBatch(p.fn.name, await p.fn.score(batch), batch.length)),
    );
    const weights = this.weights;
    return batch.map((s, i) => {
      const components: Record<string, number | null> = {};
      const info: Record<string, RewardInfo> = {};
      this.parts.forEach((p, k) => {
        const v = s.generationFailed ? null : outs[k]!.values[i]!;
        components[p.fn.name] = v === undefined ? null : v;
        const inf = outs[k]!.info?.[i];
        if (inf) info[p.fn.name] = inf;
      });
      return { total: recombine(components, weights, this.policy), components, info };
    });
  }
}
