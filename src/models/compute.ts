// The compute mode of a loaded model's frozen products: 'fp32' (default, what the parity fixtures
// use) or 'bf16', where every frozen float32 projection weight of the decoder layers becomes a
// BTensor (rounded to bf16 once; the activations are rounded per product, sums in fp32) so that
// prefill, scoring and the training update run on the CPU's bf16 units. LoRA weights, their
// gradients and the optimizer stay float32 (they are not the frozen products).
//
// What stays as it is, and why:
// - GGUF blocks (QTensor, weights: 'quantized'): their own kernels already read 4.5–8.5 bits per
//   weight; rounding them to bf16 would change their values and double their memory.
// - lm_head and the embedding table: the head is the embedding table on both test models (tied),
//   whose rows the embedding lookup reads in float32; a bf16 copy beside it would add 2 bytes per
//   value for 1/5 of a 135M model's products. The head ops take float32 (or GGUF blocks) only.
// - A trainable weight (full fine-tuning): it is not frozen. useBf16Compute refuses it.
//
// On a machine without a bf16 unit (or on the reference backend) nothing is converted: the
// model computes in fp32 and the report carries a one-line note saying why.
import { bf16Support, getBackend } from '../backend/index.js';
import { BTensor, QTensor, toBf16, type Tensor } from '../tensor/index.js';
import { ConfigError } from '../util/errors.js';
import type { CausalLM } from './model.js';

export type ComputeMode = 'fp32' | 'bf16';
export const COMPUTE_MODES: readonly ComputeMode[] = ['fp32', 'bf16'];

export interface ComputeReport {
  /** What was asked for. */
  requested: ComputeMode;
  /** What the frozen products run in: 'fp32' when bf16 was asked for but cannot run here. */
  used: ComputeMode;
  /** The units the products use ("AVX512-BF16 vdpbf16ps, …" or "fp32 FMA"). */
  units: string;
  /** Projection weights turned into bf16. */
  converted: number;
  /** Projection weights left as they were: GGUF blocks, the float32 lm_head. */
  keptQuantized: number;
  keptHead: number;
  /** Bytes of the converted weights before (float32) and after (bf16 words). */
  bytesBefore: number;
  bytesAfter: number;
  /** One line for stderr and the run manifest when bf16 was asked for and fell back ('' else). */
  note: string;
}

export interface ComputeOptions {
  /** Where the request came from, for errors (a config key, a CLI flag). */
  where?: string;
  /**
   * Convert even where the products would run on the reference kernels (no bf16 unit): for
   * tests of the bf16 semantics on any machine. Never for speed.
   */
  allowReference?: boolean;
}

/** Applies `mode` to a freshly loaded model (in place); returns what was done. */
export function applyCompute(
  model: CausalLM,
  mode: ComputeMode,
  opts: ComputeOptions = {},
): ComputeReport {
  const where = opts.where ?? 'compute';
  if (mode !== 'fp32' && mode !== 'bf16') {
    throw new ConfigError('unknown compute mode', {
      where,
      expected: "'fp32' or 'bf16'",
      found: String(mode as unknown),
    });
  }
  const base = fp32Report(mode);
  if (mode === 'fp32') return base;
  return useBf16Compute(model, opts);
}

/** The report of a model left in fp32 (so far: useBf16Compute fills it in as it converts). */
function fp32Report(requested: ComputeReport['requested']): ComputeReport {
  return {
    requested,
    used: 'fp32',
    units: 'fp32 FMA',
    converted: 0,
    keptQuantized: 0,
    keptHead: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    note: '',
  };
}

/**
 * Turns every frozen float32 projection weight of the decoder layers into a BTensor and drops
 * the float32 copy. Refuses a trainable weight (full fine-tuning: nothing is frozen).
 */
export function useBf16Compute(model: CausalLM, opts: ComputeOptions = {}): ComputeReport {
  const where = opts.where ?? 'compute';
  const support = bf16Support();
  const report = fp32Report('bf16');
  const linears = [...model.linears()];
  // Refuse before converting anything: a half-converted model is worse than none.
  for (const [name, lin] of linears) {
    const w = lin.weight;
    if (!(w instanceof QTensor) && !(w instanceof BTensor) && w.requiresGrad) {
      throw new ConfigError('the bf16 compute mode needs frozen base weights', {
        where: `${where} (${name}.weight)`,
        expected: 'frozen weights (LoRA adapters train beside them in fp32)',
        found: 'a trainable weight (full fine-tuning: nothing is frozen)',
        hint: "use compute 'fp32' with adapter.kind 'full', or adapter.kind 'lora' with bf16",
      });
    }
  }
  if (!support.available && opts.allowReference !== true) {
    report.note = `bf16 compute unavailable (${support.reason}): running fp32`;
    return report;
  }
  for (const [name, lin] of linears) {
    const w = lin.weight;
    if (w instanceof QTensor) {
      report.keptQuantized++;
      continue;
    }
    if (w instanceof BTensor) {
      report.converted++;
      continue;
    }
    if (name === 'lm_head') {
      report.keptHead++;
      continue;
    }
    const b = toBf16(w, `${name}.weight`);
    report.bytesBefore += w.size * 4;
    report.bytesAfter += b.byteLength;
    lin.weight = b;
    releaseWeight(w);
    report.converted++;
  }
  // Pooled float32 blocks of the released weights go back to the system.
  getBackend().trimPool();
  if (report.converted === 0) {
    // GGUF blocks everywhere (weights: 'quantized'): their own kernels run, nothing in bf16.
    report.note = `bf16 compute: no float32 projection weight to convert (${report.keptQuantized} stay GGUF blocks): running their own kernels`;
    return report;
  }
  report.used = 'bf16';
  report.units = support.available ? support.units : 'reference kernels (bf16 semantics, slow)';
  return report;
}

/** Drops a converted float32 weight (the garbage collector frees a JavaScript-owned buffer). */
function releaseWeight(w: Tensor): void {
  if (!w.released) w.release();
}
