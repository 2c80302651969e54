// RoPE scaling variants as models describe them (src/models/config.ts re-exports this type) and
// their mapping onto the tensor layer's ropeTable options.
import type { RopeScaling as TableScaling } from '../tensor/index.js';

export type RopeScaling =
  | { type: 'none' }
  /** Position interpolation (DeepSeek-Coder, "linear"): every frequency divided by factor. */
  | { type: 'linear'; factor: number }
  /** Llama 3.1/3.2 wavelength-dependent scaling. */
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    }
  /** YaRN (Qwen2.5 long-context configs). */
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositions: number;
      betaFast: number;
      betaSlow: number;
      /** Multiplier on cos/sin; HF default 0.1·ln(factor) + 1. */
      attentionFactor: number;
    };

/** The tensor layer's ropeTable `scaling` option for a RopeScaling (null for plain RoPE). */
export function ropeScalingForTable(s: RopeScaling | undefined): { scaling: TableScaling | null } {
  if (!s || s.type === 'none') return { scaling: null };
  return { scaling: s };
}
