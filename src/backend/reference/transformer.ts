// Transformer kernels of the reference backend: RoPE, fused attention (flash-style: one row of
// scores at a time, the per-row logsumexp saved for the backward), embedding, AdamW.
import type { AdamWParams, AttentionParams, Buf, RopeParams } from '../backend.js';
import { UnsupportedError } from '../../util/errors.js';

/**
 * Rotate-half RoPE (HF Llama/Qwen2): for i < D/2, with angle θ = pos · invFreq[i],
 *   out[i]       = x[i] cos θ − x[i + D/2] sin θ
 *   out[i + D/2] = x[i + D/2] cos θ + x[i] sin θ
 * inverse rotates by −θ (the backward, since the rotation is orthogonal).
 */
export function rope(x: Buf, out: Buf, p: RopeParams): void {
  const { batch, seq, heads, headDim, positions, cos, sin } = p;
  const half = headDim / 2;
  const sgn = p.inverse ? -1 : 1;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) {
      const pos = positions[b * seq + t];
      const tab = pos * half;
      for (let h = 0; h < heads; h++) {
        const o = ((b * seq + t) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i];
          const s = sgn * sin[tab + i];
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

/** The keys query row i of batch b may see: [lo, hi). Empty when lo ≥ hi. */
function keyRange(p: AttentionParams, b: number, i: number): [number, number] {
  const lo = p.keyStart ? Math.max(0, p.keyStart[b]) : 0;
  const hi = p.causal ? Math.min(p.seqK, p.seqK - p.seqQ + i + 1) : p.seqK;
  return [lo, hi];
}

export function attention(q: Buf, k: Buf, v: Buf, out: Buf, lse: Buf, p: AttentionParams): void {
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  const group = heads / kvHeads;
  const kvStride = p.kvStride ?? seqK * kvHeads * D;
  const rowStride = p.kvRowStride ?? kvHeads * D;
  const headStride = p.kvHeadStride ?? D;
  const s = new Float64Array(seqK);
  const acc = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < seqQ; i++) {
        const qo = ((b * seqQ + i) * heads + h) * D;
        const [lo, hi] = keyRange(p, b, i);
        acc.fill(0);
        let mx = -Infinity;
        for (let j = lo; j < hi; j++) {
          const ko = b * kvStride + j * rowStride + kh * headStride;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
          s[j] = dot * scale;
          if (s[j] > mx) mx = s[j];
        }
        let l = 0;
        for (let j = lo; j < hi; j++) {
          const e = Math.exp(s[j] - mx);
          l += e;
          const vo = b * kvStride + j * rowStride + kh * headStride;
          for (let d = 0; d < D; d++) acc[d] += e * v[vo + d];
        }
        const li = (b * heads + h) * seqQ + i;
        if (hi <= lo) {
          // No visible key: zeros out, and lse −∞ marks the row for the backward.
          for (let d = 0; d < D; d++) out[qo + d] = 0;
          lse[li] = -Infinity;
          continue;
        }
        for (let d = 0; d < D; d++) out[qo + d] = acc[d] / l;
        lse[li] = mx + Math.log(l);
      }
    }
  }
}

/**
 * With P_ij = exp(s_ij − lse_i) recomputed from q, k and the saved lse:
 *   dV_j += P_ij dO_i;  dP_ij = dO_i·V_j;  dS_ij = P_ij (dP_ij − Δ_i) with Δ_i = dO_i·O_i;
 *   dQ_i += scale Σ_j dS_ij K_j;  dK_j += scale dS_ij Q_i.
 */
export function attentionBackward(
  q: Buf,
  k: Buf,
  v: Buf,
  out: Buf,
  lse: Buf,
  gOut: Buf,
  gq: Buf,
  gk: Buf,
  gv: Buf,
  p: AttentionParams,
): void {
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  if (
    (p.kvStride !== undefined && p.kvStride !== seqK * kvHeads * D) ||
    (p.kvRowStride !== undefined && p.kvRowStride !== kvHeads * D) ||
    (p.kvHeadStride !== undefined && p.kvHeadStride !== D)
  ) {
    throw new UnsupportedError('attention backward needs contiguous k and v', {
      where: 'attentionBackward',
      expected: `kvStride = seqK·kvHeads·headDim = ${seqK * kvHeads * D}`,
      found: String(p.kvStride),
    });
  }
  const group = heads / kvHeads;
  gq.fill(0);
  gk.fill(0);
  gv.fill(0);
  const dq = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < seqQ; i++) {
        const qo = ((b * seqQ + i) * heads + h) * D;
        const L = lse[(b * heads + h) * seqQ + i];
        const [lo, hi] = keyRange(p, b, i);
        if (hi <= lo || L === -Infinity) continue;
        let delta = 0;
        for (let d = 0; d < D; d++) delta += gOut[qo + d] * out[qo + d];
        dq.fill(0);
        for (let j = lo; j < hi; j++) {
          const ko = ((b * seqK + j) * kvHeads + kh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
          const pij = Math.exp(dot * scale - L);
          let dp = 0;
          for (let d = 0; d < D; d++) {
            gv[ko + d] += pij * gOut[qo + d];
            dp += gOut[qo + d] * v[ko + d];
          }
          const ds = pij * (dp - delta) * scale;
          for (let d = 0; d < D; d++) {
            dq[d] += ds * k[ko + d];
            gk[ko + d] += ds * q[qo + d];
          }
        }
        for (let d = 0; d < D; d++) gq[qo + d] = dq[d];
      }
    }
  }
}

export function embedding(table: Buf, ids: Int32Array, dim: number, out: Buf): void {
  for (let i = 0; i < ids.length; i++) {
    const src = ids[i] * dim;
    for (let d = 0; d < dim; d++) out[i * dim + d] = table[src + d];
  }
}

export function embeddingBackward(gOut: Buf, ids: Int32Array, dim: number, gTable: Buf): void {
  for (let i = 0; i < ids.length; i++) {
    const dst = ids[i] * dim;
    for (let d = 0; d < dim; d++) gTable[dst + d] += gOut[i * dim + d];
  }
}

/** PyTorch's AdamW: p ← p(1 − lr·wd) − lr/bc1 · m / (√v/√bc2 + eps). */
export function adamw(param: Buf, grad: Buf, m: Buf, v: Buf, p: AdamWParams): void {
  const bc1 = 1 - Math.pow(p.beta1, p.step);
  const bc2 = 1 - Math.pow(p.beta2, p.step);
  const stepSize = p.lr / bc1;
  const sbc2 = Math.sqrt(bc2);
  const decay = 1 - p.lr * p.weightDecay;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    m[i] = p.beta1 * m[i] + (1 - p.beta1) * g;
    v[i] = p.beta2 * v[i] + (1 - p.beta2) * g * g;
    param[i] = param[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / sbc2 + p.eps);
  }
}
