// RoPE frequency tables, following Hugging Face transformers' rope initialisation
// (modeling_rope_utils.py): default, linear, llama3 and yarn scaling.
//
// GGUF note: llama.cpp's converter permutes the Q and K projection rows of Llama models so that
// its NORM rope (adjacent pairs (2i, 2i+1)) equals HF's rotate-half rope (pairs (i, i + D/2)).
// To use such weights with this rotate-half rope, undo the permutation when loading: for each
// head, output row r of the GGUF tensor came from HF row (r % 2) · D/2 + floor(r / 2).
// Qwen2 GGUFs use NEOX rope (rotate-half already) and are not permuted.
import { ShapeError } from '../util/errors.js';
import type { RopeTable } from './ops.js';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositions: number;
      betaFast?: number;
      betaSlow?: number;
      /** Multiplies cos and sin; default from factor (0.1·ln(factor) + 1). */
      attentionFactor?: number;
      mscale?: number;
      mscaleAllDim?: number;
      truncate?: boolean;
    };

export interface RopeTableOptions {
  headDim: number;
  theta: number;
  maxPositions: number;
  scaling?: RopeScaling | null;
}

/** Inverse frequencies [headDim/2] and the attention factor for a scaling. */
export function ropeInvFreq(opts: RopeTableOptions): {
  invFreq: Float64Array;
  attentionFactor: number;
} {
  const { headDim: dim, theta: base } = opts;
  const half = dim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(base, (2 * i) / dim);
  const s = opts.scaling;
  let attentionFactor = 1;
  if (!s) return { invFreq, attentionFactor };
  switch (s.type) {
    case 'linear':
      for (let i = 0; i < half; i++) invFreq[i] /= s.factor;
      break;
    case 'llama3': {
      const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositions / s.highFreqFactor;
      for (let i = 0; i < half; i++) {
        const f = invFreq[i];
        const wavelen = (2 * Math.PI) / f;
        if (wavelen > lowWavelen) invFreq[i] = f / s.factor;
        else if (wavelen >= highWavelen) {
          const smooth =
            (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
            (s.highFreqFactor - s.lowFreqFactor);
          invFreq[i] = ((1 - smooth) * f) / s.factor + smooth * f;
        }
      }
      break;
    }
    case 'yarn': {
      const getMscale = (scale: number, m = 1): number =>
        scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
      if (s.attentionFactor !== undefined) attentionFactor = s.attentionFactor;
      else if (s.mscale && s.mscaleAllDim)
        attentionFactor = getMscale(s.factor, s.mscale) / getMscale(s.factor, s.mscaleAllDim);
      else attentionFactor = getMscale(s.factor);
      const betaFast = s.betaFast ?? 32;
      const betaSlow = s.betaSlow ?? 1;
      const corrDim = (rot: number): number =>
        (dim * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(base));
      let low = corrDim(betaFast);
      let high = corrDim(betaSlow);
      if (s.truncate ?? true) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      for (let i = 0; i < half; i++) {
        const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
        const extrapolation = 1 - ramp;
        const fExtra = invFreq[i];
        const fInter = invFreq[i] / s.factor;
        invFreq[i] = fInter * (1 - extrapolation) + fExtra * extrapolation;
      }
      break;
    }
  }
  return { invFreq, attentionFactor };
}

/** cos/sin tables [maxPositions, headDim/2] (float32 and float64 copies) for rope(). */
export function ropeTable(opts: RopeTableOptions): RopeTable {
  const { headDim, maxPositions } = opts;
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new ShapeError('headDim must be a positive even integer', {
      where: 'ropeTable: headDim',
      expected: 'an even integer ≥ 2',
      found: String(headDim),
    });
  }
  if (!Number.isInteger(maxPositions) || maxPositions < 1) {
    throw new ShapeError('maxPositions must be a positive integer', {
      where: 'ropeTable: maxPositions',
      expected: 'an integer ≥ 1',
      found: String(maxPositions),
    });
  }
  const { invFreq, attentionFactor } = ropeInvFreq(opts);
  const half = headDim / 2;
  const cos64 = new Float64Array(maxPositions * half);
  const sin64 = new Float64Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i];
      cos64[p * half + i] = Math.cos(a) * attentionFactor;
      sin64[p * half + i] = Math.sin(a) * attentionFactor;
    }
  }
  return {
    headDim,
    maxPositions,
    attentionFactor,
    cos64,
    sin64,
    cos: Float32Array.from(cos64),
    sin: Float32Array.from(sin64),
  };
}
