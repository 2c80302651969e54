// The statistics of paired evaluation, pure functions over numbers: a paired bootstrap interval
// for the mean difference and for the relative change, win/tie/loss counts, the exact McNemar
// test on paired binary outcomes, and the unbiased pass@k estimator. Everything is seeded and
// deterministic, so a report regenerated from eval.json shows the same intervals.
//
// Paired: arm A and arm B were scored on the same problems, so resampling draws PROBLEMS (the
// pair (a_i, b_i) travels together). This keeps the between-problem variance, which dominates
// (some problems are easy for every arm), out of the interval of the difference.
import { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';

/** Resamples the issue asks for at least; the default. */
export const DEFAULT_RESAMPLES = 2000;

export interface BootstrapOptions {
  /** Resamples (≥ 2,000 recommended; default 2,000). */
  resamples?: number;
  /** Seed of the resampling stream (default 0). */
  seed?: number;
  /** Confidence level (default 0.95). */
  level?: number;
}

export interface Interval {
  lo: number;
  hi: number;
}

export interface PairedBootstrap {
  /** Pairs used. */
  n: number;
  meanA: number;
  meanB: number;
  /** mean(b − a) on the data. */
  diff: number;
  /** Percentile interval of the resampled mean difference. */
  diffCi: Interval;
  /**
   * (mean b − mean a) / |mean a| on the data; null when mean a is 0 (no relative change exists).
   */
  rel: number | null;
  /**
   * Percentile interval of the resampled relative change; null when mean a is 0 on the data.
   * Resamples whose mean a is 0 are dropped from this interval (counted in relDropped).
   */
  relCi: Interval | null;
  relDropped: number;
  resamples: number;
  seed: number;
  level: number;
}

/**
 * The q-quantile of sorted values, linear interpolation between order statistics (numpy's
 * default, 'linear' / Hyndman–Fan type 7), so the interval matches numpy.percentile.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length === 0 ? NaN : s / xs.length;
}

function checkOptions(o: BootstrapOptions): { resamples: number; seed: number; level: number } {
  const resamples = o.resamples ?? DEFAULT_RESAMPLES;
  const seed = o.seed ?? 0;
  const level = o.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new ConfigError('bootstrap resamples must be a positive integer', {
      where: 'resamples',
      found: String(resamples),
    });
  if (!(level > 0 && level < 1))
    throw new ConfigError('confidence level must be in (0, 1)', {
      where: 'level',
      found: String(level),
    });
  if (!Number.isInteger(seed))
    throw new ConfigError('bootstrap seed must be an integer', {
      where: 'seed',
      found: String(seed),
    });
  return { resamples, seed, level };
}

/**
 * Paired bootstrap (percentile method) of mean(b) − mean(a) and of the relative change
 * (mean(b) − mean(a)) / |mean(a)|, resampling pairs with replacement. a[i] and b[i] are the two
 * arms' scores on problem i; the arrays must have the same length, ≥ 1, finite values.
 */
export function pairedBootstrap(
  a: readonly number[],
  b: readonly number[],
  opts: BootstrapOptions = {},
): PairedBootstrap {
  const { resamples, seed, level } = checkOptions(opts);
  if (a.length !== b.length)
    throw new ConfigError('paired samples must have the same length', {
      where: 'pairedBootstrap',
      expected: `${a.length} values in each arm`,
      found: `${a.length} and ${b.length}`,
    });
  const n = a.length;
  if (n === 0)
    throw new ConfigError('no pairs to compare', {
      where: 'pairedBootstrap',
      hint: 'every problem was excluded (generator failures or null scores)',
    });
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(a[i]!) || !Number.isFinite(b[i]!))
      throw new ConfigError('paired samples must be finite numbers', {
        where: `pairedBootstrap[${i}]`,
        found: `${a[i]}, ${b[i]}`,
      });
  }
  const meanA = mean(a);
  const meanB = mean(b);
  const rng = new Rng(seed);
  const diffs = new Float64Array(resamples);
  const rels: number[] = [];
  let relDropped = 0;
  for (let r = 0; r < resamples; r++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < n; i++) {
      const j = rng.int(n);
      sa += a[j]!;
      sb += b[j]!;
    }
    const ma = sa / n;
    const mb = sb / n;
    diffs[r] = mb - ma;
    if (ma !== 0) rels.push((mb - ma) / Math.abs(ma));
    else relDropped++;
  }
  diffs.sort();
  rels.sort((x, y) => x - y);
  const alpha = (1 - level) / 2;
  const rel = meanA !== 0 ? (meanB - meanA) / Math.abs(meanA) : null;
  return {
    n,
    meanA,
    meanB,
    diff: meanB - meanA,
    diffCi: { lo: quantileSorted(diffs, alpha), hi: quantileSorted(diffs, 1 - alpha) },
    rel,
    relCi:
      rel === null || rels.length === 0
        ? null
        : { lo: quantileSorted(rels, alpha), hi: quantileSorted(rels, 1 - alpha) },
    relDropped,
    resamples,
    seed,
    level,
  };
}

export interface WinTieLoss {
  /** b > a + eps. */
  wins: number;
  ties: number;
  /** b < a − eps. */
  losses: number;
}

/** Per-problem wins, ties and losses of b against a (|b − a| ≤ eps is a tie). */
export function winTieLoss(a: readonly number[], b: readonly number[], eps = 1e-12): WinTieLoss {
  if (a.length !== b.length)
    throw new ConfigError('paired samples must have the same length', {
      where: 'winTieLoss',
      found: `${a.length} and ${b.length}`,
    });
  const out = { wins: 0, ties: 0, losses: 0 };
  for (let i = 0; i < a.length; i++) {
    const d = b[i]! - a[i]!;
    if (d > eps) out.wins++;
    else if (d < -eps) out.losses++;
    else out.ties++;
  }
  return out;
}

/** ln C(n, k) by summing logs (exact enough for the n of a benchmark; no gamma function). */
function logChoose(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  const m = Math.min(k, n - k);
  let s = 0;
  for (let i = 1; i <= m; i++) s += Math.log(n - m + i) - Math.log(i);
  return s;
}

export interface McNemar {
  /** Pairs where a passed and b failed. */
  b: number;
  /** Pairs where a failed and b passed. */
  c: number;
  /** Pairs where both agree. */
  concordant: number;
  /**
   * Exact two-sided p-value: min(1, 2 · P[X ≤ min(b, c)]) for X ~ Binomial(b + c, 1/2); 1 when
   * there is no discordant pair.
   */
  p: number;
}

/** Exact two-sided binomial test of k successes in n trials with p = 1/2. */
export function binomialTwoSided(k: number, n: number): number {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || n < 0 || k > n)
    throw new ConfigError('binomial test needs integers 0 ≤ k ≤ n', {
      where: 'binomialTwoSided',
      found: `k=${k}, n=${n}`,
    });
  if (n === 0) return 1;
  const m = Math.min(k, n - k);
  // P[X ≤ m] summed in log space relative to the largest term, so n in the thousands is fine.
  const ln2n = n * Math.LN2;
  let tail = 0;
  for (let i = 0; i <= m; i++) tail += Math.exp(logChoose(n, i) - ln2n);
  return Math.min(1, 2 * tail);
}

/**
 * Exact McNemar test on paired pass/fail outcomes (true = pass): only discordant pairs carry
 * information; under H0 each is equally likely to favour either arm.
 */
export function mcnemarExact(a: readonly boolean[], b: readonly boolean[]): McNemar {
  if (a.length !== b.length)
    throw new ConfigError('paired outcomes must have the same length', {
      where: 'mcnemarExact',
      found: `${a.length} and ${b.length}`,
    });
  let nb = 0;
  let nc = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && !b[i]) nb++;
    else if (!a[i] && b[i]) nc++;
  }
  return {
    b: nb,
    c: nc,
    concordant: a.length - nb - nc,
    p: binomialTwoSided(Math.min(nb, nc), nb + nc),
  };
}

/**
 * The unbiased pass@k estimator of Chen et al. 2021 (Codex paper, eq. 1): with n samples of which
 * c pass, pass@k = 1 − C(n − c, k) / C(n, k), computed as their numerically stable product
 * 1 − Π_{i = n−c+1}^{n} (1 − k / i).
 */
export function passAtK(n: number, c: number, k: number): number {
  if (![n, c, k].every(Number.isInteger) || n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw new ConfigError('pass@k needs integers 1 ≤ k ≤ n and 0 ≤ c ≤ n', {
      where: 'passAtK',
      found: `n=${n}, c=${c}, k=${k}`,
    });
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}
