import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  binomialTwoSided,
  mcnemarExact,
  pairedBootstrap,
  passAtK,
  quantileSorted,
  winTieLoss,
} from './stats.js';
import { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';

const close = (a: number, b: number, tol = 1e-12): void =>
  assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b} (tol ${tol})`);

test('quantileSorted interpolates like numpy.percentile (linear)', () => {
  close(quantileSorted([1, 2, 3, 4], 0.25), 1.75);
  close(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  close(quantileSorted([1, 2, 3, 4], 0), 1);
  close(quantileSorted([1, 2, 3, 4], 1), 4);
  close(quantileSorted([7], 0.975), 7);
});

test('bootstrap: identical arms give [0, 0] for the difference and the relative change', () => {
  const a = [0.1, 0.5, 0.9, 0.3, 0.0, 1.0];
  const r = pairedBootstrap(a, [...a], { seed: 3 });
  assert.equal(r.n, 6);
  assert.equal(r.resamples, 2000);
  assert.deepEqual(r.diffCi, { lo: 0, hi: 0 });
  assert.equal(r.diff, 0);
  assert.equal(r.rel, 0);
  assert.deepEqual(r.relCi, { lo: 0, hi: 0 });
});

test('bootstrap: a constant shift is exact; the relative change of a shift of the mean', () => {
  const a = [1, 2, 3, 4];
  const r = pairedBootstrap(
    a,
    a.map((x) => x + 1),
    { seed: 1 },
  );
  close(r.diff, 1);
  close(r.diffCi.lo, 1, 1e-12);
  close(r.diffCi.hi, 1, 1e-12);
  close(r.rel!, 1 / 2.5);
  // The resampled mean of a varies, so the relative change has a real interval around 0.4.
  assert.ok(r.relCi!.lo < 0.4 && r.relCi!.hi > 0.4, JSON.stringify(r.relCi));
});

test('bootstrap: the two-pair case has the interval the resampling distribution gives', () => {
  // Differences [1, 0]: the resampled mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so
  // the 2.5% and 97.5% percentiles are 0 and 1.
  const r = pairedBootstrap([0, 1], [1, 1], { seed: 0, resamples: 4000 });
  assert.deepEqual(r.diffCi, { lo: 0, hi: 1 });
  close(r.diff, 0.5);
  close(r.rel!, 1);
  // mean a is 0 when both draws pick problem 0: about a quarter of the resamples.
  assert.ok(r.relDropped > 800 && r.relDropped < 1200, String(r.relDropped));
});

test('bootstrap: mean a = 0 has no relative change', () => {
  const r = pairedBootstrap([0, 0, 0], [1, 0, 1]);
  assert.equal(r.rel, null);
  assert.equal(r.relCi, null);
  assert.equal(r.relDropped, 2000);
});

test('bootstrap: seeded and deterministic; another seed gives another interval', () => {
  const rng = new Rng(11);
  const a = Array.from({ length: 25 }, () => rng.next());
  const b = a.map((x) => x + rng.normal() * 0.2);
  const r1 = pairedBootstrap(a, b, { seed: 5 });
  const r2 = pairedBootstrap(a, b, { seed: 5 });
  const r3 = pairedBootstrap(a, b, { seed: 6 });
  assert.deepEqual(r1, r2);
  assert.notDeepEqual(r1.diffCi, r3.diffCi);
});

test('bootstrap: ~95% coverage of a simulated normal difference, within binomial tolerance', () => {
  // Each trial: n pairs with b − a ~ N(0.3, 1); does the 95% interval hold the true 0.3?
  // The percentile bootstrap slightly undercovers at small n (≈ 94% at n = 40), so the band is
  // 3 binomial standard deviations around 0.95, widened by that known bias on the low side.
  const trials = 300;
  const n = 40;
  const rng = new Rng(2024);
  let covered = 0;
  for (let t = 0; t < trials; t++) {
    const a = Array.from({ length: n }, () => rng.normal());
    const b = a.map((x) => x + 0.3 + rng.normal());
    const r = pairedBootstrap(a, b, { seed: t, resamples: 2000 });
    if (r.diffCi.lo <= 0.3 && 0.3 <= r.diffCi.hi) covered++;
  }
  const rate = covered / trials;
  const sd = Math.sqrt((0.95 * 0.05) / trials);
  assert.ok(rate >= 0.95 - 3 * sd - 0.015 && rate <= 0.95 + 3 * sd, `coverage ${rate}`);
});

test('bootstrap: bad inputs are ConfigErrors', () => {
  assert.throws(() => pairedBootstrap([1, 2], [1]), ConfigError);
  assert.throws(() => pairedBootstrap([], []), ConfigError);
  assert.throws(() => pairedBootstrap([NaN], [1]), ConfigError);
  assert.throws(() => pairedBootstrap([1], [1], { resamples: 0 }), ConfigError);
  assert.throws(() => pairedBootstrap([1], [1], { level: 1 }), ConfigError);
});

test('win/tie/loss counts per problem', () => {
  assert.deepEqual(winTieLoss([0, 1, 0.5, 0.2], [1, 1, 0.4, 0.2]), {
    wins: 1,
    ties: 2,
    losses: 1,
  });
  assert.throws(() => winTieLoss([1], []), ConfigError);
});

test('exact McNemar against hand-computed binomial tails', () => {
  // b = 1, c = 9: 2 · (C(10,0) + C(10,1)) / 2^10 = 22/1024.
  const a = [...Array(1).fill(true), ...Array(9).fill(false), ...Array(5).fill(true)];
  const b = [...Array(1).fill(false), ...Array(9).fill(true), ...Array(5).fill(true)];
  const m = mcnemarExact(a as boolean[], b as boolean[]);
  assert.equal(m.b, 1);
  assert.equal(m.c, 9);
  assert.equal(m.concordant, 5);
  close(m.p, 22 / 1024);
  close(m.p, 0.021484375);
  // b = 2, c = 8: 2 · (1 + 10 + 45) / 1024.
  close(binomialTwoSided(2, 10), 112 / 1024);
  close(binomialTwoSided(8, 10), 112 / 1024);
  // b = c: p = 1 (capped), no discordant pair: p = 1.
  assert.equal(binomialTwoSided(5, 10), 1);
  assert.equal(mcnemarExact([true, false], [true, false]).p, 1);
  // 0 of 6: 2 / 64.
  close(binomialTwoSided(0, 6), 2 / 64);
  // Large n stays finite and symmetric: 400 vs 600 is far from 1/2.
  const big = binomialTwoSided(400, 1000);
  assert.ok(big > 0 && big < 1e-9, String(big));
  close(binomialTwoSided(600, 1000), big, 1e-20);
  assert.throws(() => binomialTwoSided(3, 2), ConfigError);
});

function choose(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

test('pass@k: the unbiased estimator (Chen et al. 2021) on known values', () => {
  close(passAtK(10, 3, 1), 0.3);
  close(passAtK(10, 3, 5), 1 - 21 / 252); // C(7,5)/C(10,5) = 21/252
  close(passAtK(5, 0, 3), 0);
  close(passAtK(5, 5, 1), 1);
  assert.equal(passAtK(2, 1, 2), 1); // n − c < k: every k-subset holds a pass
  close(passAtK(1, 1, 1), 1);
  close(passAtK(1, 0, 1), 0);
  // Against the definition with binomial coefficients.
  for (let n = 1; n <= 20; n++)
    for (let c = 0; c <= n; c++)
      for (let k = 1; k <= n; k++)
        close(passAtK(n, c, k), 1 - choose(n - c, k) / choose(n, k), 1e-9);
  assert.throws(() => passAtK(3, 4, 1), ConfigError);
  assert.throws(() => passAtK(3, 1, 4), ConfigError);
});
