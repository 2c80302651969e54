// RoPE scaling variants as models describe them (src/models/config.ts re-exports this type) and
// their mapping onto the tensor layer's ropeTable options.
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

// Placeholder until the engine's ropeTable option type is known; replaced on merge.
export function ropeScalingForTable(s: RopeScaling | undefined): Record<string, unknown> {
  if (!s || s.type === 'none') return {};
  return { scaling: s };
}
