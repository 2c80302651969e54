// From scored samples to the numbers of an evaluation: per-problem scores per arm, per-arm means,
// outcome counts, lengths and the per-library table, and each arm's paired comparison against the
// baseline arm. Pure (no models, no files), so every rule here is unit-tested on hand-made samples.
//
// Failures are never scored. A sample whose refiner or generator failed has no code; a problem is
// usable for an arm when at least one of its samples has code, and its scores are means over
// those samples. A comparison leaves out, pairwise, every problem that either arm cannot score on
// that metric, and says how many it left out.
import {
  mcnemarExact,
  pairedBootstrap,
  passAtK,
  winTieLoss,
  type Interval,
  type McNemar,
  type WinTieLoss,
} from './stats.js';

/** How one sample ended. Exec statuses when the sandbox ran, else 'not_run'. */
export type SampleOutcome =
  | 'pass'
  | 'fail'
  | 'syntax_error'
  | 'timeout'
  | 'memory'
  | 'crash'
  /** The code reached into the test harness (sandbox detection): scored as a failure. */
  | 'tampered'
  | 'sandbox_error'
  | 'not_run'
  | 'generator_failure'
  | 'refiner_failure';

export const OUTCOMES: readonly SampleOutcome[] = [
  'pass',
  'fail',
  'syntax_error',
  'timeout',
  'memory',
  'crash',
  'tampered',
  'sandbox_error',
  'not_run',
  'generator_failure',
  'refiner_failure',
];

/** The text metrics evaluation reports (the names rewards/ stores them under). */
export const TEXT_METRIC_NAMES = ['bleu', 'rouge_l', 'f1', 'overlap', 'css'] as const;

/** One generated sample, scored. */
export interface EvalSample {
  arm: string;
  task: string;
  stratum: string;
  /** Index among the problem's samples (0 when one sample per problem). */
  k: number;
  /** The refiner's rewrite (null for the original arm or when the refiner failed). */
  rewrite: string | null;
  /** Tokens the refiner wrote. */
  rewriteTokens: number | null;
  /** What the generator was given (last user message, or the completion prompt). */
  generatorInput: string | null;
  output: string | null;
  code: string | null;
  /** Every reward component (null: not applicable, or failed). */
  components: Record<string, number | null>;
  outcome: SampleOutcome;
  /** The failure message when the refiner or the generator failed. */
  failure: string | null;
  /** Whether the refinement / the generation came from the cache. */
  cached: { refiner: boolean | null; generator: boolean | null };
  /** Present when the refiner's prompt lost the middle of the query (maxPromptTokens). */
  promptTruncated?: true;
  /** The sandbox's error type for an executed sample that did not pass (e.g. AssertionError,
   * MemoryLimit, or the harness's SandboxError for a sandbox_error): what a reader needs to tell
   * a harness failure from the code's. */
  execError?: string;
  /** Present when the test was re-run after a sandbox_error (the harness failed and the code was
   * not judged): that first error's reason; `outcome` is the re-run's. */
  execRetriedAfter?: string;
}

/** One problem's scores in one arm. */
export interface ProblemScore {
  task: string;
  stratum: string;
  /** Samples with code (not failed). */
  scored: number;
  samples: number;
  /** Metric → mean over scored samples (null: unusable or not applicable). */
  metrics: Record<string, number | null>;
  /** Whether sample 0 passed (McNemar's paired binary outcome); null without exec or on failure. */
  pass0: boolean | null;
}

export interface MetricSummary {
  mean: number | null;
  /** Problems that contributed. */
  n: number;
}

export interface ArmSummary {
  arm: string;
  problems: number;
  /** Problems the arm could not score at all (every sample failed). */
  unusable: number;
  metrics: Record<string, MetricSummary>;
  outcomes: Record<SampleOutcome, number>;
  lengths: {
    rewriteChars: number | null;
    rewriteWords: number | null;
    rewriteTokens: number | null;
    codeChars: number | null;
    codeLines: number | null;
  };
  byStratum: Record<string, { problems: number; metrics: Record<string, number | null> }>;
}

export interface MetricComparison {
  metric: string;
  /** Pairs compared. */
  n: number;
  /** Problems left out because either arm could not score them on this metric. */
  excluded: number;
  meanBase: number | null;
  meanArm: number | null;
  diff: number | null;
  diffCi: Interval | null;
  rel: number | null;
  relCi: Interval | null;
  wtl: WinTieLoss;
}

export interface Comparison {
  arm: string;
  base: string;
  metrics: MetricComparison[];
  /** Exact McNemar on sample 0's pass/fail; null without execution. */
  mcnemar: (McNemar & { n: number; excluded: number }) | null;
}

export interface SummaryOptions {
  /** Metrics compared, in order (default: the text metrics, then pass@1 and pass@k when present). */
  metrics?: readonly string[];
  bootstrap?: { resamples?: number; seed?: number };
  /** k values for pass@k (default [1]). */
  passK?: readonly number[];
}

const mean = (xs: readonly number[]): number | null =>
  xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;

const isScored = (s: EvalSample): boolean =>
  s.outcome !== 'generator_failure' && s.outcome !== 'refiner_failure' && s.code !== null;

const execRan = (s: EvalSample): boolean =>
  isScored(s) && s.outcome !== 'not_run' && s.outcome !== 'sandbox_error';

/** Per-problem scores of one arm's samples, in first-seen task order. */
export function problemScores(
  samples: readonly EvalSample[],
  passK: readonly number[] = [1],
): ProblemScore[] {
  const byTask = new Map<string, EvalSample[]>();
  for (const s of samples) {
    let xs = byTask.get(s.task);
    if (!xs) byTask.set(s.task, (xs = []));
    xs.push(s);
  }
  const out: ProblemScore[] = [];
  for (const [task, xs] of byTask) {
    xs.sort((a, b) => a.k - b.k);
    const ok = xs.filter(isScored);
    const metrics: Record<string, number | null> = {};
    for (const m of TEXT_METRIC_NAMES) {
      const vs = ok.map((s) => s.components[m]).filter((v): v is number => typeof v === 'number');
      metrics[m] = mean(vs);
    }
    // pass@k over the samples the sandbox judged (a harness error says nothing about the code).
    const judged = ok.filter(execRan);
    const c = judged.filter((s) => s.outcome === 'pass').length;
    for (const k of passK) {
      metrics[`pass@${k}`] = judged.length >= k ? passAtK(judged.length, c, k) : null;
    }
    const s0 = xs[0]!;
    out.push({
      task,
      stratum: s0.stratum,
      scored: ok.length,
      samples: xs.length,
      metrics,
      pass0: execRan(s0) ? s0.outcome === 'pass' : null,
    });
  }
  return out;
}

function words(s: string): number {
  const t = s.trim();
  return t === '' ? 0 : t.split(/\s+/).length;
}

/** Means, outcome counts, lengths and the per-library table of one arm. */
export function summarizeArm(
  arm: string,
  samples: readonly EvalSample[],
  scores: readonly ProblemScore[],
  metricNames: readonly string[],
): ArmSummary {
  const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<SampleOutcome, number>;
  for (const s of samples) outcomes[s.outcome]++;
  const metrics: Record<string, MetricSummary> = {};
  for (const m of metricNames) {
    const vs = scores.map((p) => p.metrics[m]).filter((v): v is number => typeof v === 'number');
    metrics[m] = { mean: mean(vs), n: vs.length };
  }
  const rewrites = samples.filter((s) => s.k === 0 && s.rewrite !== null).map((s) => s.rewrite!);
  const rtoks = samples
    .filter((s) => s.k === 0 && s.rewriteTokens !== null)
    .map((s) => s.rewriteTokens!);
  const codes = samples.filter(isScored).map((s) => s.code!);
  const byStratum: ArmSummary['byStratum'] = {};
  const strata = [...new Set(scores.map((p) => p.stratum))].sort();
  for (const st of strata) {
    const ps = scores.filter((p) => p.stratum === st);
    const ms: Record<string, number | null> = {};
    for (const m of metricNames) {
      ms[m] = mean(ps.map((p) => p.metrics[m]).filter((v): v is number => typeof v === 'number'));
    }
    byStratum[st] = { problems: ps.length, metrics: ms };
  }
  return {
    arm,
    problems: scores.length,
    unusable: scores.filter((p) => p.scored === 0).length,
    metrics,
    outcomes,
    lengths: {
      rewriteChars: mean(rewrites.map((r) => r.length)),
      rewriteWords: mean(rewrites.map(words)),
      rewriteTokens: mean(rtoks),
      codeChars: mean(codes.map((c) => c.length)),
      codeLines: mean(codes.map((c) => (c === '' ? 0 : c.trimEnd().split('\n').length))),
    },
    byStratum,
  };
}

/** The paired comparison of `arm` against `base` on every metric (problems matched by task id). */
export function compareArms(
  base: { arm: string; scores: readonly ProblemScore[] },
  arm: { arm: string; scores: readonly ProblemScore[] },
  metricNames: readonly string[],
  opts: SummaryOptions['bootstrap'] = {},
): Comparison {
  const other = new Map(arm.scores.map((p) => [p.task, p]));
  const pairs = base.scores
    .map((p) => [p, other.get(p.task)] as const)
    .filter((x): x is readonly [ProblemScore, ProblemScore] => x[1] !== undefined);
  const total = new Set([...base.scores.map((p) => p.task), ...arm.scores.map((p) => p.task)]).size;
  const metrics: MetricComparison[] = metricNames.map((m) => {
    const a: number[] = [];
    const b: number[] = [];
    for (const [pa, pb] of pairs) {
      const va = pa.metrics[m];
      const vb = pb.metrics[m];
      if (typeof va === 'number' && typeof vb === 'number') {
        a.push(va);
        b.push(vb);
      }
    }
    const wtl = winTieLoss(a, b);
    if (a.length === 0)
      return {
        metric: m,
        n: 0,
        excluded: total,
        meanBase: null,
        meanArm: null,
        diff: null,
        diffCi: null,
        rel: null,
        relCi: null,
        wtl,
      };
    const r = pairedBootstrap(a, b, opts);
    return {
      metric: m,
      n: a.length,
      excluded: total - a.length,
      meanBase: r.meanA,
      meanArm: r.meanB,
      diff: r.diff,
      diffCi: r.diffCi,
      rel: r.rel,
      relCi: r.relCi,
      wtl,
    };
  });
  const pa: boolean[] = [];
  const pb: boolean[] = [];
  for (const [x, y] of pairs) {
    if (x.pass0 !== null && y.pass0 !== null) {
      pa.push(x.pass0);
      pb.push(y.pass0);
    }
  }
  const anyExec =
    base.scores.some((p) => p.pass0 !== null) || arm.scores.some((p) => p.pass0 !== null);
  return {
    arm: arm.arm,
    base: base.arm,
    metrics,
    mcnemar: anyExec
      ? { ...mcnemarExact(pa, pb), n: pa.length, excluded: total - pa.length }
      : null,
  };
}

/** Which metrics an evaluation reports: the text metrics, then pass@k where execution ran. */
export function metricNamesFor(exec: boolean, passK: readonly number[]): string[] {
  return [...TEXT_METRIC_NAMES, ...(exec ? passK.map((k) => `pass@${k}`) : [])];
}
