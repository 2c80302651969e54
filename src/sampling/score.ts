// Scoring given token sequences: log p(completion token | prompt, earlier completion tokens) for
// every completion token, WITH gradients (the trainer's policy-gradient term). Sequences are
// right-padded into one batch (causal attention never lets a real token see a later pad), and
// only the hidden rows that predict a completion token reach the LM head, chunked over rows by
// tokenLogProbs, so no batch×time×vocab logits tensor ever exists.
import { embedding, reshape, tokenLogProbs, type Tensor } from '../tensor/index.js';
import type { CausalLM } from '../models/model.js';
import type { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';

export interface ScoreSequence {
  /** At least one token. */
  prompt: readonly number[];
  completion: readonly number[];
}

export interface ScoreOptions {
  /** Enables LoRA dropout. */
  training?: boolean;
  rng?: Rng;
  /** Rows per LM-head chunk (passed to tokenLogProbs). */
  chunkRows?: number;
}

export interface ScoreResult {
  /** [N]: every completion token of every sequence, in order; differentiable. */
  logProbs: Tensor;
  /** logProbs[offsets[i] .. offsets[i+1]) belong to sequence i (length n + 1). */
  offsets: number[];
}

export function scoreTokens(
  model: CausalLM,
  seqs: readonly ScoreSequence[],
  opts: ScoreOptions = {},
): ScoreResult {
  const cfg = model.config;
  const B = seqs.length;
  if (B === 0) {
    throw new ConfigError('nothing to score', {
      where: 'scoreTokens',
      expected: '≥ 1 sequence',
      found: '0',
    });
  }
  const T = Math.max(...seqs.map((s) => s.prompt.length + s.completion.length));
  if (T > model.maxPositions) {
    throw new ConfigError('sequence longer than the model context', {
      where: 'scoreTokens',
      expected: `prompt + completion ≤ ${model.maxPositions} tokens`,
      found: String(T),
    });
  }
  const ids = new Int32Array(B * T); // right-padded with id 0
  const rows: number[] = [];
  const targets: number[] = [];
  const offsets = [0];
  seqs.forEach((s, b) => {
    if (s.prompt.length === 0) {
      throw new ConfigError('empty prompt', {
        where: `scoreTokens (sequence ${b})`,
        expected: '≥ 1 token',
        found: '0',
      });
    }
    const all = [...s.prompt, ...s.completion];
    all.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new ConfigError('token id out of range', {
          where: `scoreTokens (sequence ${b}, position ${t})`,
          expected: `0 ≤ id < ${cfg.vocabSize}`,
          found: String(id),
        });
      }
      ids[b * T + t] = id;
    });
    for (let j = 0; j < s.completion.length; j++) {
      const p = s.prompt.length + j; // position of the completion token
      rows.push(b * T + p - 1); // the hidden row that predicts it
      targets.push(s.completion[j] as number);
    }
    offsets.push(targets.length);
  });
  if (targets.length === 0) {
    throw new ConfigError('no completion tokens to score', {
      where: 'scoreTokens',
      expected: 'at least one sequence with a non-empty completion',
      found: 'all completions empty',
    });
  }
  const hidden = model.forward({
    ids,
    shape: [B, T],
    ...(opts.training !== undefined ? { training: opts.training } : {}),
    ...(opts.rng ? { rng: opts.rng } : {}),
  }); // [B, T, D]
  const flat = reshape(hidden, [B * T, cfg.hiddenSize]); // [B·T, D]
  // A differentiable row gather: embedding() looks rows up in a table and scatter-adds grads.
  const picked = embedding(flat, Int32Array.from(rows), [rows.length]); // [N, D]
  const logProbs = tokenLogProbs(picked, model.headWeight(), Int32Array.from(targets), {
    ...(opts.chunkRows !== undefined ? { chunkRows: opts.chunkRows } : {}),
  }); // [N]
  return { logProbs, offsets };
}
