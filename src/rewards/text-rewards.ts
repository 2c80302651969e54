// The text metrics as RewardFns: each compares the extracted code with the reference.
import type { RewardFn, RewardSample } from './types.js';
import {
  bleu4,
  codeMetrics,
  f1,
  overlap,
  rougeLF,
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

function metricFn(metric: TextMetric, o: TextRewardOptions): (h: string, r: string) => number {
  const tokenizer = o.tokenizer ?? 'paper';
  switch (metric) {
    case 'bleu':
      return (h, r) => bleu4(h, r, { tokenizer, smoothing: o.smoothing ?? 'method1' });
    case 'rouge_l':
      return (h, r) => rougeLF(h, r, { tokenizer });
    case 'f1':
      return (h, r) => f1(h, r, { tokenizer });
    case 'overlap':
      return (h, r) => overlap(h, r, { tokenizer });
    case 'css':
      return (h, r) => codeMetrics(h, r).css;
  }
}

/** A text-similarity reward between generated code and the reference. */
export function textReward(metric: TextMetric, opts: TextRewardOptions = {}): RewardFn {
  const fn = metricFn(metric, opts);
  const suffix = (opts.tokenizer ?? 'paper') === 'code' && metric !== 'css' ? ':code' : '';
  return {
    name: opts.name ?? `${metric}${suffix}`,
    score: (batch: readonly RewardSample[]) =>
      batch.map((s) => (s.generationFailed ? null : fn(s.code, s.reference))),
  };
}
