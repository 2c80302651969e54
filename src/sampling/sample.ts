// Choosing the next token from one row of logits: greedy, temperature, top-k, top-p (nucleus),
// with the same rules as transformers' logits warpers (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper applied in that order). Pure functions on typed arrays, so they are tested
// without a model.
import type { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';

export interface SamplingParams {
  /** 0 means greedy (argmax); otherwise logits are divided by it. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 or undefined: off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP (1: off). */
  topP?: number;
}

export function validateSampling(p: SamplingParams): void {
  const t = p.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) {
    throw new ConfigError('temperature must be a finite number ≥ 0', {
      where: 'sampling.temperature',
      expected: '≥ 0 (0 = greedy)',
      found: String(p.temperature),
    });
  }
  if (p.topK !== undefined && (!Number.isInteger(p.topK) || p.topK < 0)) {
    throw new ConfigError('topK must be a non-negative integer', {
      where: 'sampling.topK',
      expected: 'integer ≥ 0 (0 = off)',
      found: String(p.topK),
    });
  }
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) {
    throw new ConfigError('topP must be in (0, 1]', {
      where: 'sampling.topP',
      expected: '0 < topP ≤ 1',
      found: String(p.topP),
    });
  }
}

/** Index of the largest value (the first one on ties, like torch.argmax). */
export function argmaxRow(x: ArrayLike<number>): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** log softmax(x)[i], computed in float64. */
export function logSoftmaxAt(x: ArrayLike<number>, i: number): number {
  let mx = -Infinity;
  for (let j = 0; j < x.length; j++) if ((x[j] as number) > mx) mx = x[j] as number;
  let s = 0;
  for (let j = 0; j < x.length; j++) s += Math.exp((x[j] as number) - mx);
  return (x[i] as number) - mx - Math.log(s);
}

/**
 * The probability distribution sampling draws from, as (token, prob) pairs with probs summing
 * to 1 (after temperature, top-k, top-p). Exposed for tests.
 */
export function samplingDistribution(
  logits: ArrayLike<number>,
  p: SamplingParams,
): { ids: Int32Array; probs: Float64Array } {
  const t = p.temperature ?? 1;
  const V = logits.length;
  let mx = -Infinity;
  for (let i = 0; i < V; i++) if ((logits[i] as number) > mx) mx = logits[i] as number;
  // Candidates: tokens within 40 nats of the best after temperature. The rest carry at most
  // V·e⁻⁴⁰ ≈ 1e-12 of the mass (for V = 150k), far below float32 resolution, and skipping them
  // avoids sorting the whole vocabulary at every step.
  const cand: number[] = [];
  for (let i = 0; i < V; i++) if (((logits[i] as number) - mx) / t > -40) cand.push(i);
  // Descending by logit; lower id first on ties.
  cand.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
  let keep = cand.length;
  if (p.topK !== undefined && p.topK > 0) keep = Math.min(keep, p.topK);
  const w = new Float64Array(keep);
  let s = 0;
  for (let r = 0; r < keep; r++) {
    const e = Math.exp(((logits[cand[r] as number] as number) - mx) / t);
    w[r] = e;
    s += e;
  }
  for (let r = 0; r < keep; r++) w[r] = (w[r] as number) / s;
  const topP = p.topP ?? 1;
  if (topP < 1) {
    // transformers' TopPLogitsWarper: in ascending order, drop every token whose cumulative
    // probability is ≤ 1 − topP, always keeping the most likely one.
    let tailMass = 0;
    let cut = keep;
    for (let r = keep - 1; r >= 1; r--) {
      tailMass += w[r] as number;
      if (tailMass <= 1 - topP) cut = r;
      else break;
    }
    keep = cut;
    let s2 = 0;
    for (let r = 0; r < keep; r++) s2 += w[r] as number;
    for (let r = 0; r < keep; r++) w[r] = (w[r] as number) / s2;
  }
  return { ids: Int32Array.from(cand.slice(0, keep)), probs: w.slice(0, keep) };
}

/** Picks the next token from one row of logits. */
export function sampleRow(logits: ArrayLike<number>, p: SamplingParams, rng: Rng): number {
  if ((p.temperature ?? 1) === 0) return argmaxRow(logits);
  const { ids, probs } = samplingDistribution(logits, p);
  const u = rng.next();
  let c = 0;
  for (let r = 0; r < ids.length; r++) {
    c += probs[r] as number;
    if (u < c) return ids[r] as number;
  }
  return ids[ids.length - 1] as number;
}
