// The REINFORCE estimator: baselines → advantages, advantages + per-token log-probs → the loss
// whose gradient is the policy-gradient estimate, an optional KL penalty to the frozen base, and
// entropy reward shaping. Pure: no model, no sampling, no I/O; the trainer (train/trainer.ts)
// feeds it rewards and the ScoreResult of sampling/score.ts.
//
// The estimator, for one optimiser step over queries q with K sampled rewrites y_k each:
//
//   ∇J ≈ (1/D) Σ_i A_i · ∇ Σ_t log π_θ(y_i,t | q, y_i,<t)        A_i = r_i − b_i
//
// which is unbiased for ∇E[r] (times a known constant, see Baseline) whenever b_i does not depend
// on y_i. The loss handed to backward() is its negation. docs/training.md "The estimator" has the
// derivations; the tests in reinforce.test.ts check them on a categorical bandit.
import { z } from 'zod';
import { add, addScalar, exp, mul, sub, sum, tensor, tidy, type Tensor } from '../tensor/index.js';
import { ConfigError, FormatError, NumericError, ShapeError } from '../util/errors.js';

// ---- baselines ----

export type BaselineKind = 'none' | 'ema' | 'rloo' | 'group';
export type LossNormalization = 'sequence' | 'token';

export interface BaselineOptions {
  kind: BaselineKind;
  /** ema: weight of the old value in each update, in [0, 1) (default 0.9). */
  emaDecay?: number;
  /** group: divide the centred reward by the group's std (GRPO); default false. */
  scaleByStd?: boolean;
  /** group with scaleByStd: added to the std (default 1e-4, as TRL's GRPOTrainer). */
  stdEps?: number;
}

/** Everything a resumed run needs to continue the baseline exactly; JSON-serialisable. */
export interface BaselineState {
  kind: BaselineKind;
  /** ema: the running mean, null before the first step with a valid reward (always null otherwise). */
  ema: number | null;
  /** Steps (advantages() calls) that had at least one valid reward. */
  count: number;
}

/** Per sample: both null for a dropped sample (null reward). */
export interface Advantage {
  baseline: number | null;
  advantage: number | null;
}

export const BASELINE_DEFAULTS = { emaDecay: 0.9, stdEps: 1e-4 } as const;

/** The checkpoint's state.json field, validated where it is read back (an edge: a file). */
export const baselineStateSchema = z.object({
  kind: z.enum(['none', 'ema', 'rloo', 'group']),
  ema: z.number().finite().nullable(),
  count: z.number().int().nonnegative(),
});

/**
 * Turns rewards into advantages. One call per optimiser step, with every group of the step.
 *
 * - `none`: A = r. Plain REINFORCE; unbiased, highest variance.
 * - `ema`: A = r − b with b the running mean of earlier steps' mean rewards. This step's rewards
 *   enter b only AFTER its advantages are computed, so a sample never baselines itself and b is
 *   independent of this step's samples (unbiased). Before any history b = 0 (the first step is
 *   plain REINFORCE); seeding b with the first step's own mean would let samples baseline
 *   themselves. The update is b ← decay·b + (1 − decay)·mean(valid rewards of the step).
 * - `rloo`: A_i = r_i − mean of the OTHER valid samples of its group (leave-one-out, Kool et al.
 *   2019). Unbiased: b_i depends only on samples independent of y_i. A group with a single valid
 *   sample has nothing to compare it with: that sample gets advantage 0 (it contributes no
 *   gradient) and baseline = its own reward, so reward − baseline = advantage still holds in the
 *   logs. We do not fall back to the EMA: it would mix two estimators in one step for little gain.
 * - `group`: A_i = r_i − mean(valid samples of the group, i included) [/ (std + eps)] (GRPO).
 *   Without the std this is exactly (K−1)/K times the rloo advantage (K = valid samples), since
 *   r_i − (r_i + Σ_{j≠i} r_j)/K = ((K−1)/K)·(r_i − Σ_{j≠i} r_j/(K−1)); so its expected gradient is
 *   (K−1)/K ∇E[r]: the same direction, a smaller step. With the std it is biased (the std depends
 *   on y_i) but scale-free. The std is the sample std (n − 1, torch.std's default, as TRL); a
 *   group with one valid sample gets advantage 0.
 *
 * Dropped samples (null reward: the generator failed, the reward is not applicable) get
 * baseline = advantage = null and never enter any baseline or the EMA.
 */
export class Baseline {
  readonly kind: BaselineKind;
  readonly emaDecay: number;
  readonly scaleByStd: boolean;
  readonly stdEps: number;
  private ema: number | null = null;
  private count = 0;

  constructor(opts: BaselineOptions, state?: BaselineState) {
    const kinds: readonly BaselineKind[] = ['none', 'ema', 'rloo', 'group'];
    if (!kinds.includes(opts.kind)) {
      throw new ConfigError('unknown baseline kind', {
        where: 'Baseline: kind',
        expected: kinds.map((k) => `'${k}'`).join(' | '),
        found: String(opts.kind),
      });
    }
    this.kind = opts.kind;
    this.emaDecay = opts.emaDecay ?? BASELINE_DEFAULTS.emaDecay;
    this.scaleByStd = opts.scaleByStd ?? false;
    this.stdEps = opts.stdEps ?? BASELINE_DEFAULTS.stdEps;
    if (!(this.emaDecay >= 0 && this.emaDecay < 1)) {
      throw new ConfigError('EMA decay out of range', {
        where: 'Baseline: emaDecay',
        expected: 'a number in [0, 1)',
        found: String(this.emaDecay),
      });
    }
    if (!(this.stdEps > 0 && Number.isFinite(this.stdEps))) {
      throw new ConfigError('std epsilon must be positive', {
        where: 'Baseline: stdEps',
        expected: 'a finite number > 0',
        found: String(this.stdEps),
      });
    }
    if (this.scaleByStd && this.kind !== 'group') {
      throw new ConfigError('scaleByStd applies to the group baseline only', {
        where: 'Baseline: scaleByStd',
        expected: `kind 'group' with scaleByStd, or scaleByStd false`,
        found: `kind '${this.kind}' with scaleByStd true`,
        hint: "use kind 'group' for GRPO-style normalisation",
      });
    }
    if (state !== undefined) {
      const parsed = baselineStateSchema.safeParse(state);
      if (!parsed.success) {
        throw new FormatError('invalid baseline state', {
          where: 'Baseline: state',
          expected: '{ kind, ema: finite number | null, count: integer ≥ 0 }',
          found: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
          hint: 'the checkpoint is damaged or from another version; resume from another one',
        });
      }
      if (parsed.data.kind !== this.kind) {
        throw new ConfigError('baseline kind differs from the checkpoint', {
          where: 'Baseline: state.kind',
          expected: `'${this.kind}' (the configured kind)`,
          found: `'${parsed.data.kind}' (the checkpoint's)`,
          hint: 'resume with the baseline the run was started with, or start a new run',
        });
      }
      this.ema = parsed.data.ema;
      this.count = parsed.data.count;
    }
  }

  advantages(groups: readonly (readonly (number | null)[])[]): Advantage[][] {
    groups.forEach((g, gi) =>
      g.forEach((r, k) => {
        if (r !== null && !Number.isFinite(r)) {
          throw new NumericError('reward is not finite', {
            where: `Baseline.advantages (group ${gi}, sample ${k})`,
            expected: 'a finite number, or null for a dropped sample',
            found: String(r),
            hint: 'a reward function returned NaN or Inf; return null to drop the sample',
          });
        }
      }),
    );
    const out = groups.map((g) => this.group(g));
    // After use: this step's rewards baseline only later steps (see the class comment).
    const valid = groups.flat().filter((r): r is number => r !== null);
    if (valid.length > 0) {
      this.count++;
      if (this.kind === 'ema') {
        const m = meanOf(valid);
        this.ema = this.ema === null ? m : this.emaDecay * this.ema + (1 - this.emaDecay) * m;
      }
    }
    return out;
  }

  state(): BaselineState {
    return { kind: this.kind, ema: this.ema, count: this.count };
  }

  private group(g: readonly (number | null)[]): Advantage[] {
    const valid = g.filter((r): r is number => r !== null);
    const n = valid.length;
    const total = valid.reduce((a, b) => a + b, 0);
    const m = n > 0 ? total / n : 0;
    let denom = 1;
    if (this.kind === 'group' && this.scaleByStd) {
      const ss = valid.reduce((a, r) => a + (r - m) * (r - m), 0);
      denom = (n > 1 ? Math.sqrt(ss / (n - 1)) : 0) + this.stdEps;
    }
    return g.map((r) => {
      if (r === null) return { baseline: null, advantage: null };
      switch (this.kind) {
        case 'none':
          return { baseline: 0, advantage: r };
        case 'ema': {
          const b = this.ema ?? 0;
          return { baseline: b, advantage: r - b };
        }
        case 'rloo': {
          if (n < 2) return { baseline: r, advantage: 0 };
          const b = (total - r) / (n - 1);
          return { baseline: b, advantage: r - b };
        }
        case 'group':
          return { baseline: m, advantage: n < 2 ? 0 : (r - m) / denom };
      }
    });
  }
}

function meanOf(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

// ---- entropy shaping ----

/**
 * Entropy bonus as reward shaping: r' = r − β_H · Σ_t log π(y_t), null staying null.
 *
 * The max-entropy objective J = E_y[r(y) − β log π(y)] = E[r] + β H(π) has the gradient
 * ∇J = E[(r − β log π) ∇log π] − β E[∇log π], and the last term is 0 (E[∇log π] = ∇Σπ = 0). So
 * REINFORCE on the shaped reward, with log π treated as a constant, is an unbiased estimate of ∇J.
 * seqLogProbSums must be the sampling policy's Σ_t log π at temperature 1 (SampleRecord.logProb);
 * shape BEFORE the baseline, so the baseline sees the shaped rewards.
 */
export function shapeRewards(
  rewards: readonly (number | null)[],
  seqLogProbSums: readonly number[],
  entropyCoef: number,
): (number | null)[] {
  if (rewards.length !== seqLogProbSums.length) {
    throw new ShapeError('one log-prob sum per reward', {
      where: 'shapeRewards: seqLogProbSums',
      expected: `${rewards.length} entries (one per reward)`,
      found: String(seqLogProbSums.length),
    });
  }
  if (!(entropyCoef >= 0 && Number.isFinite(entropyCoef))) {
    throw new ConfigError('entropy coefficient must be ≥ 0', {
      where: 'shapeRewards: entropyCoef',
      expected: 'a finite number ≥ 0',
      found: String(entropyCoef),
    });
  }
  return rewards.map((r, i) => (r === null ? null : r - entropyCoef * seqLogProbSums[i]));
}

// ---- the loss ----

export interface ReinforceLossOptions {
  normalization: LossNormalization;
  /**
   * Denominator for the WHOLE optimiser step (across gradient-accumulation micro-batches):
   * 'sequence' → number of scored sequences in the step; 'token' → number of scored tokens in the
   * step (lossDenominator computes either). Passed explicitly because a micro-batch cannot know
   * it: dividing each micro-batch by its own count would weight a token of a small micro-batch
   * more than one of a large one, and the summed gradients would differ from one big batch.
   */
  denominator: number;
  /**
   * KL penalty coefficient β (per-token k3 estimator against the reference log-probs, as GRPO):
   * k3 = exp(ref − pol) − (ref − pol) − 1 ≥ 0, unbiased for KL(π‖π_ref) on samples from π,
   * gradient through pol only. Default 0: no penalty term (kl is still reported when refLogProbs
   * is given).
   */
  klCoef?: number;
  /** [N], same layout as logProbs: the frozen base's log-probs (adapter off), no gradient. */
  refLogProbs?: Float32Array | Float64Array;
}

export interface ReinforceLossResult {
  /** Scalar loss for backward(): pg term + β·KL term. */
  loss: Tensor;
  /** The policy-gradient term's value: −(1/D) Σ_i A_i Σ_t log π. */
  pgLoss: number;
  /** Mean k3 per included token (0 without refLogProbs or included tokens). */
  kl: number;
  /** Tokens and sequences in the update (sequences with a non-null advantage). */
  tokens: number;
  sequences: number;
}

/**
 * loss = −(1/D) Σ_i A_i Σ_t log π(y_i,t) + β (1/D) Σ_i Σ_t k3_i,t over the sequences i with a
 * non-null advantage, D = opts.denominator. logProbs [N] is ScoreResult.logProbs; sequence i owns
 * logProbs[offsets[i] .. offsets[i+1]). Sequences with a null advantage get a zero gradient; with
 * none left the loss is 0 with a zero gradient (backward() needs no special case).
 *
 * 'sequence' normalisation (D = sequences) is the textbook estimator: each sequence's whole
 * log-prob is weighted by its advantage. 'token' (D = tokens, as DAPO) makes long and short
 * rewrites contribute per token; it is the same estimator scaled by sequences/tokens only when
 * every rewrite has the same length.
 */
export function reinforceLoss(
  logProbs: Tensor,
  offsets: readonly number[],
  advantages: readonly (number | null)[],
  opts: ReinforceLossOptions,
): ReinforceLossResult {
  const where = 'reinforceLoss';
  if (logProbs.shape.length !== 1) {
    throw new ShapeError('log-probs must be one flat vector', {
      where: `${where}: logProbs`,
      expected: '[N] (ScoreResult.logProbs)',
      found: logProbs.describe(),
    });
  }
  const N = logProbs.shape[0];
  const S = advantages.length;
  const offsetsOk =
    offsets.length === S + 1 &&
    offsets[0] === 0 &&
    offsets[S] === N &&
    offsets.every((o, i) => Number.isInteger(o) && (i === 0 || o >= offsets[i - 1]));
  if (!offsetsOk) {
    throw new ShapeError('offsets do not match the log-probs and advantages', {
      where: `${where}: offsets`,
      expected: `${S + 1} non-decreasing integers from 0 to ${N}`,
      found: offsets.length > 12 ? `${offsets.length} entries` : `[${offsets.join(', ')}]`,
    });
  }
  advantages.forEach((a, i) => {
    if (a !== null && !Number.isFinite(a)) {
      throw new NumericError('advantage is not finite', {
        where: `${where}: advantages[${i}]`,
        expected: 'a finite number or null',
        found: String(a),
      });
    }
  });
  const beta = opts.klCoef ?? 0;
  if (!(beta >= 0 && Number.isFinite(beta))) {
    throw new ConfigError('KL coefficient must be ≥ 0', {
      where: `${where}: klCoef`,
      expected: 'a finite number ≥ 0',
      found: String(beta),
    });
  }
  const ref = opts.refLogProbs;
  if (beta > 0 && ref === undefined) {
    throw new ConfigError('a KL penalty needs reference log-probs', {
      where: `${where}: refLogProbs`,
      expected: `[${N}] log-probs of the frozen base`,
      found: 'none',
      hint: 'score the same tokens with the adapter switched off, or set klCoef to 0',
    });
  }
  if (ref !== undefined && ref.length !== N) {
    throw new ShapeError('reference log-probs do not match the log-probs', {
      where: `${where}: refLogProbs`,
      expected: `${N} entries`,
      found: String(ref.length),
    });
  }

  let tokens = 0;
  let sequences = 0;
  for (let i = 0; i < S; i++) {
    if (advantages[i] === null) continue;
    sequences++;
    tokens += offsets[i + 1] - offsets[i];
  }
  const D = opts.denominator;
  const own = opts.normalization === 'sequence' ? sequences : tokens;
  // The step-wide count is at least this call's; a smaller D means the caller mixed them up.
  if (!(Number.isFinite(D) && D > 0 && D >= own)) {
    throw new ConfigError('loss denominator out of range', {
      where: `${where}: denominator`,
      expected: `the step's number of scored ${opts.normalization === 'sequence' ? 'sequences' : 'tokens'} (≥ ${Math.max(own, 1)} in this call)`,
      found: String(D),
      hint: 'compute it once per optimiser step with lossDenominator() over every micro-batch',
    });
  }

  // Per-token weights: w_t = −A_i/D on the tokens of included sequence i, 0 elsewhere; the KL
  // mask m_t = β/D on included tokens. Constants: the gradient flows through logProbs only.
  const w = new Float64Array(N);
  const m = new Float64Array(N);
  for (let i = 0; i < S; i++) {
    const a = advantages[i];
    if (a === null) continue;
    for (let t = offsets[i]; t < offsets[i + 1]; t++) {
      w[t] = -a / D;
      m[t] = 1;
    }
  }
  const dtype = logProbs.dtype;
  return tidy(() => {
    const pg = sum(mul(logProbs, tensor(w, [N], { dtype }))); // []
    const pgLoss = pg.item();
    let kl = 0;
    let loss = pg;
    if (ref !== undefined) {
      const d = sub(tensor(ref, [N], { dtype }), logProbs); // [N] ref − pol
      const k3 = addScalar(sub(exp(d), d), -1); // [N] exp(d) − d − 1
      const k3d = k3.data;
      let s = 0;
      for (let t = 0; t < N; t++) if (m[t] !== 0) s += k3d[t];
      kl = tokens > 0 ? s / tokens : 0;
      if (beta > 0) {
        const mask = tensor(
          m.map((v) => (v * beta) / D),
          [N],
          { dtype },
        );
        loss = add(pg, sum(mul(k3, mask))); // []
      }
    }
    return { loss, pgLoss, kl, tokens, sequences };
  });
}

/**
 * The denominator of reinforceLoss for a whole optimiser step: the number of sequences with a
 * non-null advantage ('sequence') or their tokens ('token'), over every micro-batch of the step.
 * At least 1, so a step with nothing to learn from still gives a finite zero loss.
 */
export function lossDenominator(
  normalization: LossNormalization,
  seqs: readonly { tokens: number; advantage: number | null }[],
): number {
  let n = 0;
  for (const s of seqs) {
    if (s.advantage === null) continue;
    n += normalization === 'sequence' ? 1 : s.tokens;
  }
  return Math.max(1, n);
}
