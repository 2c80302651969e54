// Scoring given token sequences: log p(completion token | prompt, earlier completion tokens) for
// every completion token, WITH gradients (the trainer's policy-gradient term). Sequences are
// right-padded into one batch (causal attention never lets a real token see a later pad), and
// only the hidden rows that predict a completion token reach the LM head, chunked over rows by
// tokenLogProbs, so no batch×time×vocab logits tensor ever exists.
import {
  concat,
  embedding,
  expand,
  isGradEnabled,
  reshape,
  slice,
  tidy,
  tokenLogProbs,
  type Tensor,
} from '../tensor/index.js';
import type { KvCacheLike } from '../nn/attention.js';
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

// ---- shared-prompt scoring ----
//
// The trainer scores K sampled rewrites of one query; they share the query's prompt. scoreTokens
// would run the prompt K times. scoreGroups runs it once per group (batch 1, positions
// 0..Tp−1), keeps every layer's prompt keys and values (on the tape), and runs the K completions
// as one batch [K, Tc] at positions Tp..Tp+Tc−1 whose attention sees concat(prompt k/v expanded
// to K rows, completion k/v) along time; the attention op puts query i at key position
// Tk − Tq + i = Tp + i, which is exactly the completion token's position. Backward then runs
// through the prompt once, the K completions' gradients summed into it by expand's backward.
//
// Tokens through the network, prompt 512, completion 128, K = 4:
//   separate (scoreTokens): 4 × (512 + 128) = 2560;   shared (scoreGroups): 512 + 4 × 128 = 1024
// (2.5× fewer; the completion pass even skips each completion's last token, which predicts
// nothing). The attention of the completion rows still reads all Tp + Tc keys.

export interface ScoreGroup {
  /** At least one token, shared by every completion of the group. */
  prompt: readonly number[];
  /** The group's completions; any may be empty (its offsets range is then empty). */
  completions: readonly (readonly number[])[];
}

/**
 * A differentiable KvCacheLike for the completion pass: layer l's keys/values are
 * concat(expand(prompt k/v [1, Tp, KVH, D] → [K, Tp, KVH, D]), this pass's k/v [K, T, KVH, D])
 * along time, returned whole (no keyLen), so attention and its backward see ordinary tensors.
 */
class SharedPromptKv implements KvCacheLike {
  constructor(
    private readonly k: readonly Tensor[],
    private readonly v: readonly Tensor[],
  ) {}
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const rows = k.shape[0] as number;
    const join = (p: Tensor, x: Tensor): Tensor =>
      concat([rows === 1 ? p : expand(p, [rows, ...p.shape.slice(1)]), x], 1);
    return {
      k: join(this.k[layer] as Tensor, k), // [K, Tp + T, KVH, D]
      v: join(this.v[layer] as Tensor, v), // [K, Tp + T, KVH, D]
    };
  }
}

/** Captures every layer's k/v [1, Tp, KVH, D] of the prompt pass (attention sees them as is). */
class CapturePromptKv implements KvCacheLike {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    // Without a tape runLayers frees each layer's tensors at its end: keep these for the
    // completion pass (scoreGroups releases them). With the tape the graph holds them, and a
    // kept tensor would outlive backward().
    if (!isGradEnabled()) {
      k.keep();
      v.keep();
    }
    this.k[layer] = k;
    this.v[layer] = v;
    return { k, v };
  }
}

/**
 * log p(completion token | prompt, earlier completion tokens) of every completion token of every
 * group, WITH gradients, running each group's prompt once (see above). Same result as
 * scoreTokens on the flattened sequences {prompt, completion} (group-major, then completion):
 * logProbs in that order, offsets per completion (length = total completions + 1).
 * `training`/`rng` enable LoRA dropout as in scoreTokens (a group's completions then share the
 * prompt pass's dropout mask).
 */
export function scoreGroups(
  model: CausalLM,
  groups: readonly ScoreGroup[],
  opts: ScoreOptions = {},
): ScoreResult {
  const cfg = model.config;
  const where = 'scoreGroups';
  if (groups.length === 0) {
    throw new ConfigError('nothing to score', { where, expected: '≥ 1 group', found: '0' });
  }
  // Validate everything before any work.
  groups.forEach((g, gi) => {
    if (g.prompt.length === 0) {
      throw new ConfigError('empty prompt', {
        where: `${where} (group ${gi})`,
        expected: '≥ 1 token',
        found: '0',
      });
    }
    const check = (id: number, at: string): void => {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new ConfigError('token id out of range', {
          where: `${where} (group ${gi}, ${at})`,
          expected: `0 ≤ id < ${cfg.vocabSize}`,
          found: String(id),
        });
      }
    };
    g.prompt.forEach((id, t) => check(id, `prompt position ${t}`));
    g.completions.forEach((c, k) => {
      c.forEach((id, t) => check(id, `completion ${k} position ${t}`));
      if (g.prompt.length + c.length > model.maxPositions) {
        throw new ConfigError('sequence longer than the model context', {
          where: `${where} (group ${gi}, completion ${k})`,
          expected: `prompt + completion ≤ ${model.maxPositions} tokens`,
          found: String(g.prompt.length + c.length),
        });
      }
    });
  });
  const offsets = [0];
  let total = 0;
  for (const g of groups) {
    for (const c of g.completions) offsets.push((total += c.length));
  }
  if (total === 0) {
    throw new ConfigError('no completion tokens to score', {
      where,
      expected: 'at least one non-empty completion',
      found: 'all completions empty',
    });
  }
  const ctx = {
    ...(opts.training !== undefined ? { training: opts.training } : {}),
    ...(opts.rng ? { rng: opts.rng } : {}),
  };
  // tidy: without a tape every intermediate is freed here; with one, what backward needs stays.
  const logProbs = tidy(() => {
    const D = cfg.hiddenSize;
    const picked: Tensor[] = []; // per group with tokens: [N_g, D] hidden rows predicting them
    const targets: number[] = [];
    for (const g of groups) {
      if (g.completions.every((c) => c.length === 0)) continue;
      const Tp = g.prompt.length;
      for (const c of g.completions) for (const id of c) targets.push(id);
      // Completions of ≥ 2 tokens go through the completion pass, fed all but their last token
      // (token j's hidden row predicts token j + 1; the first token is predicted by the prompt's
      // last row). Right-padded with id 0 after the real tokens: causal attention never lets a
      // real token see a pad, and pad rows are never picked.
      const fed = g.completions.map((c, k) => [k, c.length - 1] as const).filter(([, l]) => l > 0);
      const Tc = Math.max(0, ...fed.map(([, l]) => l));
      const rowOf = new Map<number, number>(fed.map(([k], r) => [k, r]));
      const cap = new CapturePromptKv();
      try {
        picked.push(
          tidy(() => {
            const hp = model.forward({
              ids: Int32Array.from(g.prompt),
              shape: [1, Tp],
              cache: cap,
              ...ctx,
            }); // [1, Tp, D]
            const last = reshape(slice(hp, 1, Tp - 1, Tp), [1, D]); // [1, D]: predicts token 0
            let table = last;
            if (fed.length > 0) {
              const B = fed.length;
              const ids = new Int32Array(B * Tc);
              const positions = new Int32Array(B * Tc);
              fed.forEach(([k, l], r) => {
                const c = g.completions[k] as readonly number[];
                for (let t = 0; t < Tc; t++) {
                  ids[r * Tc + t] = t < l ? (c[t] as number) : 0;
                  positions[r * Tc + t] = Tp + t;
                }
              });
              const hc = model.forward({
                ids,
                shape: [B, Tc],
                positions,
                cache: new SharedPromptKv(cap.k, cap.v),
                ...ctx,
              }); // [B, Tc, D]
              table = concat([last, reshape(hc, [B * Tc, D])], 0); // [1 + B·Tc, D]
            }
            // Row 0 predicts each completion's first token; row 1 + r·Tc + j − 1 its token j.
            const rows: number[] = [];
            g.completions.forEach((c, k) => {
              for (let j = 0; j < c.length; j++) {
                rows.push(j === 0 ? 0 : 1 + (rowOf.get(k) as number) * Tc + j - 1);
              }
            });
            return embedding(table, Int32Array.from(rows), [rows.length]); // [N_g, D]
          }),
        );
      } finally {
        // Kept only without a tape (see CapturePromptKv); with one the graph owns them.
        if (!isGradEnabled()) for (const t of [...cap.k, ...cap.v]) t.release();
      }
    }
    const hidden = picked.length === 1 ? (picked[0] as Tensor) : concat(picked, 0); // [N, D]
    return tokenLogProbs(hidden, model.headWeight(), Int32Array.from(targets), {
      ...(opts.chunkRows !== undefined ? { chunkRows: opts.chunkRows } : {}),
    }); // [N]
  });
  return { logProbs, offsets };
}
