import { test } from 'node:test';
import assert from 'node:assert/strict';
import { embedding, logSoftmax, reshape, slice, tensor, type Tensor } from '../tensor/index.js';
import { ConfigError, FormatError, NumericError, ShapeError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { gradcheck } from '../../test/helpers/gradcheck.js';
import {
  Baseline,
  lossDenominator,
  reinforceLoss,
  shapeRewards,
  type BaselineOptions,
  type LossNormalization,
} from './reinforce.js';

// ---- a categorical bandit: π = softmax(θ) over 5 arms, reward table r ----

const THETA = [0.4, -0.2, 0.1, 0.7, -0.6];
const R = [1.0, 0.1, 0.4, 0.8, 0.0];

function softmaxOf(x: readonly number[]): number[] {
  const mx = Math.max(...x);
  const e = x.map((v) => Math.exp(v - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** ∇_θ E_{a~softmax(θ)}[r(a)] = p ⊙ (r − p·r). */
function analyticGrad(p: readonly number[], r: readonly number[]): number[] {
  const pr = p.reduce((a, pi, i) => a + pi * r[i], 0);
  return p.map((pi, i) => pi * (r[i] - pr));
}

function drawArm(p: readonly number[], rng: Rng): number {
  const u = rng.next();
  let c = 0;
  for (let i = 0; i < p.length; i++) {
    c += p[i];
    if (u < c) return i;
  }
  return p.length - 1;
}

interface Estimate {
  mean: number[];
  se: number[];
}

/**
 * `draws` independent REINFORCE estimates of ∇E[r] through the real code path: log π from the
 * engine's logSoftmax, gathered at the sampled arms (one one-token "sequence" per sample),
 * Baseline.advantages, reinforceLoss, backward. Each draw has G groups of K samples; the estimate
 * is −∇θ loss. Returns the per-coordinate mean and its standard error.
 */
function banditEstimate(opts: {
  baseline: BaselineOptions;
  K: number;
  G: number;
  draws: number;
  seed: number;
  entropyCoef?: number;
}): Estimate {
  const { K, G, draws } = opts;
  const p = softmaxOf(THETA);
  const rng = new Rng(opts.seed);
  const baseline = new Baseline(opts.baseline); // persists: the EMA sees only earlier draws
  const theta = tensor(THETA, [5], { dtype: 'f64', requiresGrad: true });
  const s1 = new Array<number>(5).fill(0);
  const s2 = new Array<number>(5).fill(0);
  const offsets = Array.from({ length: G * K + 1 }, (_, i) => i);
  for (let d = 0; d < draws; d++) {
    const arms = Array.from({ length: G * K }, () => drawArm(p, rng));
    const logp = logSoftmax(theta); // [5]
    const picked = reshape(embedding(reshape(logp, [5, 1]), Int32Array.from(arms)), [G * K]); // [G·K]
    let rewards: (number | null)[] = arms.map((a) => R[a]);
    if (opts.entropyCoef !== undefined) {
      rewards = shapeRewards(rewards, Array.from(picked.data), opts.entropyCoef);
    }
    const groups = Array.from({ length: G }, (_, g) => rewards.slice(g * K, (g + 1) * K));
    const adv = baseline
      .advantages(groups)
      .flat()
      .map((x) => x.advantage);
    const { loss } = reinforceLoss(picked, offsets, adv, {
      normalization: 'sequence',
      denominator: G * K,
    });
    theta.zeroGrad();
    loss.backward();
    const g = (theta.grad as Tensor).data;
    for (let j = 0; j < 5; j++) {
      const est = -g[j];
      s1[j] += est;
      s2[j] += est * est;
    }
  }
  const mean = s1.map((s) => s / draws);
  const se = s2.map((s, j) => Math.sqrt((s / draws - mean[j] * mean[j]) / (draws - 1)));
  return { mean, se };
}

/** Largest |mean − target| in standard errors over the coordinates. */
function maxZ(e: Estimate, target: readonly number[]): number {
  return Math.max(...e.mean.map((m, j) => Math.abs(m - target[j]) / e.se[j]));
}

function cosine(a: readonly number[], b: readonly number[]): number {
  const dot = a.reduce((s, x, i) => s + x * b[i], 0);
  const na = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
  const nb = Math.sqrt(b.reduce((s, x) => s + x * x, 0));
  return dot / (na * nb);
}

const K = 4;
const DRAWS = 3000;

test('bandit: none, ema and rloo estimates are unbiased for ∇E[r] = p ⊙ (r − p·r)', () => {
  const g = analyticGrad(softmaxOf(THETA), R);
  for (const baseline of [
    { kind: 'none' },
    { kind: 'ema', emaDecay: 0.9 },
    { kind: 'rloo' },
  ] satisfies BaselineOptions[]) {
    const e = banditEstimate({ baseline, K, G: 2, draws: DRAWS, seed: 11 });
    const z = maxZ(e, g);
    assert.ok(z <= 4, `${baseline.kind}: mean ${e.mean} vs analytic ${g}: ${z.toFixed(2)} se`);
  }
});

test('bandit: the group baseline (no std) estimates exactly (K−1)/K ∇E[r]', () => {
  // A_i = r_i − (1/K) Σ_j r_j = ((K−1)/K) (r_i − (1/(K−1)) Σ_{j≠i} r_j): (K−1)/K times the rloo
  // advantage, whose estimate is unbiased. So E[estimate] = (K−1)/K ∇E[r] exactly.
  const g = analyticGrad(softmaxOf(THETA), R);
  const e = banditEstimate({ baseline: { kind: 'group' }, K, G: 2, draws: DRAWS, seed: 12 });
  const scaled = g.map((x) => ((K - 1) / K) * x);
  assert.ok(maxZ(e, scaled) <= 4, `group: mean ${e.mean} vs (K−1)/K·analytic ${scaled}`);
  // The test has the power to tell the factor apart: the unscaled gradient is rejected.
  assert.ok(maxZ(e, g) > 4, `group: mean ${e.mean} not distinguishable from ${g}`);
});

test('bandit: the group baseline with std (GRPO) points along ∇E[r]', () => {
  const g = analyticGrad(softmaxOf(THETA), R);
  const e = banditEstimate({
    baseline: { kind: 'group', scaleByStd: true },
    K,
    G: 2,
    draws: DRAWS,
    seed: 13,
  });
  const c = cosine(e.mean, g);
  assert.ok(c > 0.95, `cosine ${c}`);
});

test('bandit: entropy shaping estimates ∇(E[r] + β H(π)) = p ⊙ (r′ − p·r′), r′ = r − β log p', () => {
  // ∂H/∂θ_j = −p_j (log p_j + H), so ∇(E[r] + βH) = p ⊙ (r − β log p − p·(r − β log p)).
  const beta = 0.5;
  const p = softmaxOf(THETA);
  const shaped = R.map((r, i) => r - beta * Math.log(p[i]));
  const target = analyticGrad(p, shaped);
  const e = banditEstimate({
    baseline: { kind: 'rloo' },
    K,
    G: 2,
    draws: DRAWS,
    seed: 14,
    entropyCoef: beta,
  });
  assert.ok(maxZ(e, target) <= 4, `shaped: mean ${e.mean} vs ${target}`);
  assert.ok(maxZ(e, analyticGrad(p, R)) > 4, 'the entropy term is visible in the estimate');
  assert.deepEqual(shapeRewards([1, null], [-2, -3], 0.25), [1.5, null]);
});

// ---- hand-computed loss ----

test('two sequences by hand: sign and scale of the loss and its gradient', () => {
  // Rewards [1, 0] in one group, rloo: baselines [0, 1], advantages [1, −1].
  const [[a0, a1]] = new Baseline({ kind: 'rloo' }).advantages([[1, 0]]);
  assert.deepEqual(a0, { baseline: 0, advantage: 1 });
  assert.deepEqual(a1, { baseline: 1, advantage: -1 });
  // Sequence 0 has tokens with log π −0.5, −1.0; sequence 1 one token with log π −2.0.
  const lp = (): Tensor => tensor([-0.5, -1.0, -2.0], [3], { dtype: 'f64', requiresGrad: true });
  const advs = [1, -1];

  // 'sequence', D = 2: loss = −½ (1·(−1.5) + (−1)·(−2.0)) = −½ (0.5) = −0.25;
  // ∂loss/∂log π = −A_i/D = [−0.5, −0.5, +0.5]: descending raises sequence 0, lowers sequence 1.
  const x = lp();
  const r = reinforceLoss(x, [0, 2, 3], advs, { normalization: 'sequence', denominator: 2 });
  assert.equal(r.loss.item(), -0.25);
  assert.equal(r.pgLoss, -0.25);
  assert.equal(r.sequences, 2);
  assert.equal(r.tokens, 3);
  r.loss.backward();
  assert.deepEqual((x.grad as Tensor).toArray(), [-0.5, -0.5, 0.5]);

  // 'token', D = 3: loss = −⅓ (0.5) = −1/6; gradient −A_i/3 = [−⅓, −⅓, +⅓].
  const y = lp();
  const t = reinforceLoss(y, [0, 2, 3], advs, { normalization: 'token', denominator: 3 });
  assert.ok(Math.abs(t.loss.item() + 1 / 6) < 1e-15);
  t.loss.backward();
  const gy = (y.grad as Tensor).toArray();
  [-1 / 3, -1 / 3, 1 / 3].forEach((v, i) => assert.ok(Math.abs(gy[i] - v) < 1e-15));
});

// ---- accumulation ----

function accumulationCase(norm: LossNormalization): {
  single: number[];
  split: number[];
  splitOwnDenominators: number[];
  lossSingle: number;
  lossSplit: number;
} {
  const rng = new Rng(5);
  const lengths = [3, 1, 2, 4, 0, 3];
  const advs = [0.7, -1.2, null, 0.3, 0.5, -0.4];
  const N = lengths.reduce((a, b) => a + b, 0); // 13
  const vals = Array.from({ length: N }, () => rng.uniform(-3, -0.1));
  const ref = Float32Array.from(vals, (v) => v + rng.uniform(-0.3, 0.3));
  const offsetsOf = (ls: number[]): number[] =>
    ls.reduce((o, l) => [...o, o[o.length - 1] + l], [0]);
  const D = lossDenominator(
    norm,
    lengths.map((tokens, i) => ({ tokens, advantage: advs[i] })),
  );
  assert.equal(D, norm === 'sequence' ? 5 : 11);
  const kl = { klCoef: 0.1 };
  const run = (own: boolean): { grad: number[]; loss: number } => {
    const P = tensor(vals, [N], { requiresGrad: true }); // f32, like the trainer's log-probs
    let loss = 0;
    for (const [lo, hi] of [
      [0, 3],
      [3, 6],
    ]) {
      const ls = lengths.slice(lo, hi);
      const a = advs.slice(lo, hi);
      const t0 = offsetsOf(lengths)[lo];
      const t1 = offsetsOf(lengths)[hi];
      const den = own
        ? lossDenominator(
            norm,
            ls.map((tokens, i) => ({ tokens, advantage: a[i] })),
          )
        : D;
      const r = reinforceLoss(slice(P, 0, t0, t1), offsetsOf(ls), a, {
        normalization: norm,
        denominator: den,
        ...kl,
        refLogProbs: ref.slice(t0, t1),
      });
      loss += r.loss.item();
      r.loss.backward(); // gradients accumulate in P.grad
    }
    return { grad: (P.grad as Tensor).toArray(), loss };
  };
  const P = tensor(vals, [N], { requiresGrad: true });
  const one = reinforceLoss(P, offsetsOf(lengths), advs, {
    normalization: norm,
    denominator: D,
    ...kl,
    refLogProbs: ref,
  });
  const lossSingle = one.loss.item();
  one.loss.backward();
  const split = run(false);
  return {
    single: (P.grad as Tensor).toArray(),
    split: split.grad,
    splitOwnDenominators: run(true).grad,
    lossSingle,
    lossSplit: split.loss,
  };
}

test('one batch and two accumulated micro-batches with the step-wide denominator agree', () => {
  for (const norm of ['sequence', 'token'] as const) {
    const c = accumulationCase(norm);
    c.single.forEach((g, i) =>
      assert.ok(Math.abs(g - c.split[i]) <= 1e-6, `${norm}: token ${i}: ${g} vs ${c.split[i]}`),
    );
    assert.ok(Math.abs(c.lossSingle - c.lossSplit) <= 1e-6);
    // Tokens of the null-advantage sequence (2: tokens 4, 5) get no gradient, KL included.
    assert.equal(c.single[4], 0);
    assert.equal(c.single[5], 0);
    // Per-micro-batch denominators would change the gradient: why the denominator is explicit.
    const diff = Math.max(...c.single.map((g, i) => Math.abs(g - c.splitOwnDenominators[i])));
    assert.ok(diff > 1e-3, `${norm}: own denominators differ by only ${diff}`);
  }
});

// ---- null rewards ----

test('null rewards: left out of every baseline and of the update, and counted', () => {
  const groups = [
    [1, null, 0, 0.5],
    [null, 2, null],
  ];
  const adv = (o: BaselineOptions): (number | null)[][] =>
    new Baseline(o).advantages(groups).map((g) => g.map((x) => x.advantage));
  const base = (o: BaselineOptions): (number | null)[][] =>
    new Baseline(o).advantages(groups).map((g) => g.map((x) => x.baseline));

  // rloo: group 0's valid rewards are 1, 0, 0.5; baselines (0 + 0.5)/2, (1 + 0.5)/2, (1 + 0)/2.
  // Group 1 has one valid sample: advantage 0, baseline its own reward.
  assert.deepEqual(base({ kind: 'rloo' }), [
    [0.25, null, 0.75, 0.5],
    [null, 2, null],
  ]);
  assert.deepEqual(adv({ kind: 'rloo' }), [
    [0.75, null, -0.75, 0],
    [null, 0, null],
  ]);
  // group: mean 0.5 (not 1.5/4); sample std of [1, 0, 0.5] is 0.5.
  assert.deepEqual(adv({ kind: 'group' }), [
    [0.5, null, -0.5, 0],
    [null, 0, null],
  ]);
  const s = 0.5 + 1e-4;
  assert.deepEqual(adv({ kind: 'group', scaleByStd: true }), [
    [0.5 / s, null, -0.5 / s, 0],
    [null, 0, null],
  ]);
  assert.deepEqual(adv({ kind: 'none' }), [
    [1, null, 0, 0.5],
    [null, 2, null],
  ]);
  // ema: the first step has baseline 0; the EMA then starts at the mean of the 4 valid rewards.
  const ema = new Baseline({ kind: 'ema', emaDecay: 0.5 });
  assert.deepEqual(
    ema.advantages(groups)[0].map((x) => x.baseline),
    [0, null, 0, 0],
  );
  assert.deepEqual(ema.state(), { kind: 'ema', ema: 3.5 / 4, count: 1 });
  assert.deepEqual(ema.advantages([[null, 1]])[0], [
    { baseline: null, advantage: null },
    { baseline: 0.875, advantage: 0.125 },
  ]);
  assert.equal(ema.state().ema, 0.5 * 0.875 + 0.5 * 1);
  // A step with only dropped samples leaves the EMA and the count alone.
  ema.advantages([[null, null]]);
  assert.deepEqual(ema.state(), { kind: 'ema', ema: 0.9375, count: 2 });

  // The update: one token per sample, the dropped ones contribute nothing and are not counted.
  const flat = adv({ kind: 'rloo' }).flat();
  const lp = tensor([-1, -2, -1.5, -0.5, -3, -1, -2], [7], { dtype: 'f64', requiresGrad: true });
  const r = reinforceLoss(lp, [0, 1, 2, 3, 4, 5, 6, 7], flat, {
    normalization: 'sequence',
    denominator: 4,
  });
  assert.equal(r.sequences, 4);
  assert.equal(r.tokens, 4);
  r.loss.backward();
  // (+ 0 turns the −0 of a zero advantage into 0 for deepEqual)
  assert.deepEqual(
    (lp.grad as Tensor).toArray().map((v) => v + 0),
    [-0.75 / 4, 0, 0.75 / 4, 0, 0, 0, 0],
  );
  assert.ok(Math.abs(r.loss.item() + (0.75 * -1 + -0.75 * -1.5) / 4) < 1e-15);

  // Nothing left: a zero loss with a zero gradient.
  const z = tensor([-1, -2], [2], { dtype: 'f64', requiresGrad: true });
  const none = reinforceLoss(z, [0, 1, 2], [null, null], {
    normalization: 'token',
    denominator: lossDenominator('token', [
      { tokens: 1, advantage: null },
      { tokens: 1, advantage: null },
    ]),
  });
  assert.equal(none.loss.item(), 0);
  assert.equal(none.sequences, 0);
  none.loss.backward();
  assert.deepEqual((z.grad as Tensor).toArray(), [0, 0]);
});

// ---- KL ----

test('KL (k3): zero when ref = pol; gradient (β/D)(1 − exp(ref − pol)); gradcheck', () => {
  const pol = [-0.5, -1.25, -2.0, -0.75];
  const offsets = [0, 3, 4];
  const same = tensor(pol, [4], { dtype: 'f64', requiresGrad: true });
  const r0 = reinforceLoss(same, offsets, [0.5, -1], {
    normalization: 'token',
    denominator: 4,
    klCoef: 0.2,
    refLogProbs: Float64Array.from(pol),
  });
  assert.equal(r0.kl, 0);
  assert.equal(r0.loss.item(), r0.pgLoss);
  r0.loss.backward();
  assert.deepEqual((same.grad as Tensor).toArray(), [-0.125, -0.125, -0.125, 0.25]);

  // Zero advantages: only the KL term has a gradient.
  const ref = [-0.7, -1.0, -2.5, -0.75];
  const x = tensor(pol, [4], { dtype: 'f64', requiresGrad: true });
  const beta = 0.2;
  const r = reinforceLoss(x, offsets, [0, 0], {
    normalization: 'token',
    denominator: 4,
    klCoef: beta,
    refLogProbs: Float64Array.from(ref),
  });
  const k3 = pol.map((p, i) => Math.exp(ref[i] - p) - (ref[i] - p) - 1);
  assert.ok(Math.abs(r.kl - k3.reduce((a, b) => a + b, 0) / 4) < 1e-15);
  assert.ok(r.kl > 0);
  assert.ok(Math.abs(r.loss.item() - (beta / 4) * k3.reduce((a, b) => a + b, 0)) < 1e-15);
  r.loss.backward();
  const g = (x.grad as Tensor).toArray();
  pol.forEach((p, i) => {
    const want = (beta / 4) * (1 - Math.exp(ref[i] - p));
    assert.ok(Math.abs(g[i] - want) < 1e-15, `token ${i}: ${g[i]} vs ${want}`);
  });

  // The whole loss (pg + KL, a null sequence in the middle) against finite differences.
  const refG = Float64Array.from([-1.1, -0.4, -2.2, -0.9, -1.7, -0.3]);
  gradcheck(
    'reinforceLoss with KL',
    ([lp]) =>
      reinforceLoss(lp, [0, 2, 4, 6], [0.8, null, -0.6], {
        normalization: 'sequence',
        denominator: 3,
        klCoef: 0.3,
        refLogProbs: refG,
      }).loss,
    [{ shape: [6], lo: -3, hi: -0.1 }],
  );
});

// ---- state and errors ----

test('EMA state round-trips through state()/constructor exactly', () => {
  const opts: BaselineOptions = { kind: 'ema', emaDecay: 0.8 };
  const rng = new Rng(9);
  const step = (): (number | null)[][] => [
    [rng.next(), rng.next() < 0.2 ? null : rng.next() / 3, rng.next()],
    [rng.normal(), rng.next()],
  ];
  const a = new Baseline(opts);
  for (let i = 0; i < 5; i++) a.advantages(step());
  const saved = JSON.parse(JSON.stringify(a.state())) as ReturnType<Baseline['state']>;
  const b = new Baseline(opts, saved);
  assert.deepEqual(b.state(), a.state());
  for (let i = 0; i < 3; i++) {
    const groups = step();
    assert.deepEqual(b.advantages(groups), a.advantages(groups));
  }
  assert.deepEqual(b.state(), a.state());
  assert.equal(a.state().count, 8);

  assert.throws(() => new Baseline({ kind: 'rloo' }, saved), ConfigError);
  assert.throws(() => new Baseline(opts, { kind: 'ema', ema: Number.NaN, count: 1 }), FormatError);
  assert.throws(() => new Baseline(opts, { kind: 'ema', ema: 0.1, count: -1 }), FormatError);
});

test('bad inputs are typed errors', () => {
  assert.throws(() => new Baseline({ kind: 'ema', emaDecay: 1 }), ConfigError);
  assert.throws(() => new Baseline({ kind: 'rloo', scaleByStd: true }), ConfigError);
  assert.throws(() => new Baseline({ kind: 'none' }).advantages([[Number.NaN]]), NumericError);
  const lp = tensor([-1, -2, -3], [3], { dtype: 'f64' });
  const o = { normalization: 'sequence' as const, denominator: 2 };
  assert.throws(() => reinforceLoss(lp, [0, 1, 2], [1, 1], o), ShapeError);
  assert.throws(
    () => reinforceLoss(lp, [0, 2, 1, 3], [1, 1, 1], { ...o, denominator: 3 }),
    ShapeError,
  );
  // A micro-batch's own count exceeds the "step-wide" denominator: the caller mixed them up.
  assert.throws(
    () => reinforceLoss(lp, [0, 1, 3], [1, 1], { normalization: 'token', denominator: 2 }),
    ConfigError,
  );
  assert.throws(() => reinforceLoss(lp, [0, 1, 3], [1, 1], { ...o, klCoef: 0.1 }), ConfigError);
  assert.throws(
    () =>
      reinforceLoss(lp, [0, 1, 3], [1, 1], {
        ...o,
        klCoef: 0.1,
        refLogProbs: new Float32Array(2),
      }),
    ShapeError,
  );
  assert.throws(() => shapeRewards([1], [1, 2], 0.1), ShapeError);
});
