// The text metrics as RewardFns: each compares the extracted code with the reference. Within a
// batch, a reference shared by several samples (the K rewrites of one query) is tokenised once.
import type { RewardFn, RewardSample } from './types.js';
import {
  bleu4Tokens,
  codeMetrics,
  f1Tokens,
  overlapTokens,
  rougeL,
  rougeLTokens,
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

type TokFn = (a: readonly string[], b: readonly string[]) => number;

function tokenMetric(metric: TextMetric, o: TextRewardOptions): TokFn | undefined {
  const tokenizer = o.tokenizer ?? 'paper';
  switch (metric) {
    case 'bleu':
      return (h, r) => bleu4Tokens(h, r, o.smoothing ?? 'method1');
    case 'f1':
      return f1Tokens;
    case 'overlap':
      return overlapTokens;
    case 'rouge_l':
      return tokenizer === 'code' ? rougeLTokens : undefined;
    case 'css':
      return undefined;
  }
}

/** A text-similarity reward between generated code and the reference. */
export function textReward(metric: TextMetric, opts: TextRewardOptions = {}): RewardFn {
  const tokenizer = opts.tokenizer ?? 'paper';
  const tok = tokenMetric(metric, opts);
  const suffix = tokenizer === 'code' && metric !== 'css' ? ':code' : '';
  const strFn = metric === 'css' ? (h: string, r: string) => codeMetrics(h, r).css : rougeL;
  return {
    name: opts.name ?? `${metric}${suffix}`,
    score: (batch: readonly RewardSample[]) => {
      if (!tok) return batch.map((s) => (s.generationFailed ? null : strFn(s.code, s.reference)));
      const refTokens = new Map<string, string[]>();
      return batch.map((s) => {
        if (s.generationFailed) return null;
        let r = refTokens.get(s.reference);
        if (!r) {
          r = tokensFor(s.reference, tokenizer);
          refTokens.set(s.reference, r);
        }
        return tok(tokensFor(s.code, tokenizer), r);
      });
    },
  };
}
