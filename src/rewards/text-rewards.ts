// The text metrics as RewardFns: each compares the extracted code with the reference. Within a
// batch, a reference shared by several samples (the K rewrites of one query) is prepared
// (tokenised, or turned into a token set) once.
import type { RewardFn, RewardSample } from './types.js';
import { UnsupportedError } from '../util/errors.js';
import {
  bleu4Tokens,
  codeMetrics,
  f1Sets,
  overlapSets,
  rougeL,
  rougeLTokens,
  tokenSetFor,
  tokensFor,
  type BleuSmoothing,
  type TextTokenizer,
} from './text.js';

export type TextMetric = 'bleu' | 'rouge_l' | 'f1' | 'overlap' | 'css';
export const TEXT_METRICS: readonly TextMetric[] = ['bleu', 'rouge_l', 'f1', 'overlap', 'css'];

export interface TextRewardOptions {
  /** 'paper' (default): lower-cased whitespace tokens; 'code': code tokens. CSS always uses code tokens. */
  tokenizer?: TextTokenizer;
  /** BLEU smoothing (default 'method1'; the authors' released code used none). */
  smoothing?: BleuSmoothing;
  /** Override the reward's name (default: the metric, suffixed with ':code' for code tokens). */
  name?: string;
}

/** A metric as (prepare each text, compare prepared texts). */
interface Prepared<T> {
  prepare: (s: string) => T;
  compare: (h: T, r: T) => number;
}

function scorer<T>(p: Prepared<T>): (batch: readonly RewardSample[]) => (number | null)[] {
  return (batch) => {
    const refs = new Map<string, T>();
    return batch.map((s) => {
      if (s.generationFailed) return null;
      let r = refs.get(s.reference);
      if (r === undefined) {
        r = p.prepare(s.reference);
        refs.set(s.reference, r);
      }
      try {
        return p.compare(p.prepare(s.code), r);
      } catch (e) {
        // An input beyond a metric's bounds (ROUGE-L's LCS table) is "not applicable", not a
        // crash of the training step.
        if (e instanceof UnsupportedError) return null;
        throw e;
      }
    });
  };
}

function metricScorer(
  metric: TextMetric,
  o: TextRewardOptions,
): (batch: readonly RewardSample[]) => (number | null)[] {
  const t = o.tokenizer ?? 'paper';
  const identity = (s: string): string => s;
  switch (metric) {
    case 'bleu':
      return scorer({
        prepare: (s) => tokensFor(s, t),
        compare: (h, r) => bleu4Tokens(h, r, o.smoothing ?? 'method1'),
      });
    case 'f1':
      return scorer({ prepare: (s) => tokenSetFor(s, t), compare: f1Sets });
    case 'overlap':
      return scorer({ prepare: (s) => tokenSetFor(s, t), compare: overlapSets });
    case 'rouge_l':
      return t === 'code'
        ? scorer({ prepare: (s) => tokensFor(s, t), compare: rougeLTokens })
        : scorer({ prepare: identity, compare: rougeL });
    case 'css':
      return scorer({ prepare: identity, compare: (h, r) => codeMetrics(h, r).css });
  }
}

/** A text-similarity reward between generated code and the reference. */
export function textReward(metric: TextMetric, opts: TextRewardOptions = {}): RewardFn {
  const suffix = (opts.tokenizer ?? 'paper') === 'code' && metric !== 'css' ? ':code' : '';
  return { name: opts.name ?? `${metric}${suffix}`, score: metricScorer(metric, opts) };
}
