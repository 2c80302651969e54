// Batched generation with a KV cache. Prompts of different lengths are left-padded into one batch;
// the attention op masks each sequence's pad keys (keyStart) and positions count from each
// sequence's first real token, so a sequence decodes exactly as it would alone. Each sequence has
// its own stop tokens, stop strings and random stream (seed + index, or explicit seeds), so the
// result does not depend on what else is in the batch.
//
// Shared prefill (samplesPerPrompt = K > 1, the trainer's K rewrites of one query): each distinct
// prompt is prefilled once (batch = prompts.length), then its KV cache rows and last-position
// logits are repeated K times (KvCache.keepRows with repeated rows), and the prompts.length × K
// sequences decode as one batch, prompt-major (sequence p·K + k is sample k of prompt p). Sequence
// p·K + k draws from the stream it would draw from if prompt p were simply repeated K times in
// `prompts`, so the result equals that call token for token; the prompt costs 1/K of the prefill.
import { getBackend, logits as headLogits, noGrad, reshape, slice, tidy } from '../tensor/index.js';
import { withInt8Decoding } from '../backend/int8-decoding.js';
import type { CausalLM } from '../models/model.js';
import { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';
import { KvCache } from './kv-cache.js';
import { sampleRow, validateSampling, type SamplingParams } from './sample.js';

export interface GenerateOptions extends SamplingParams {
  /** Token ids of each prompt (each at least one token). */
  prompts: readonly (readonly number[])[];
  maxNewTokens: number;
  /**
   * Samples per prompt, K (default 1): the output has prompts.length × K generations, prompt-major
   * (out[p·K + k]), each prompt prefilled once and its KV cache shared by its K samples. Every
   * per-sequence option below (stop lists, seeds) then counts sequences, prompts.length × K.
   */
  samplesPerPrompt?: number;
  /** Stop tokens for every sequence, or one list per sequence (default: config.eosTokenIds);
   * per sequence means prompts.length × samplesPerPrompt lists, in output order. */
  stopTokens?: readonly number[] | readonly (readonly number[])[];
  /** Stop strings for every sequence, or one list per sequence (needs `decode`); per sequence
   * means prompts.length × samplesPerPrompt lists, in output order. */
  stopStrings?: readonly string[] | readonly (readonly string[])[];
  /** Tokenizer decode; needed for stop strings and to return text. */
  decode?: (ids: readonly number[]) => string;
  /** Base seed: sequence i (output index, p·K + k) draws from new Rng(seed + i). Default 0. */
  seed?: number;
  /** One seed per sequence, output order (overrides seed); with samplesPerPrompt > 1 exactly
   * prompts.length × samplesPerPrompt of them. */
  seeds?: readonly number[];
  /**
   * Prefill in chunks of about this many rows (batch × tokens, default 512): large enough for
   * the GEMMs to run near peak, small enough that one layer's activations stay ~20 MB (layers
   * free their intermediates under noGrad, models/model.ts runLayers); chunks through the KV
   * cache give the same result as one pass.
   */
  prefillRows?: number;
  /**
   * Decoding steps may run the products on quantised weights with int8 activations (the
   * avx512vnni kernels: within a stated bound of the float path, as llama.cpp; see
   * src/backend/int8-decoding.ts). Faster batch-1 decoding, but the sampler's logits and
   * log-probs are then no longer those scoring computes, so it is off unless asked for (default:
   * RL4QE_INT8_DECODING=1 turns it on). Prefill and scoring always stay on the float path.
   */
  int8Decoding?: boolean;
}

export type FinishReason = 'stop-token' | 'stop-string' | 'length';

export interface Generation {
  /** Generated ids, including the stop token when one ended the sequence. */
  tokens: number[];
  /** Per generated token: log p(token | prefix) under the model (temperature 1, no top-k/top-p),
   * the quantity a policy-gradient update needs. */
  logProbs: number[];
  /** decode(tokens) without the stop token, cut before a stop string (when decode is given). */
  text?: string;
  finishReason: FinishReason;
}

function perSequence<T>(
  x: readonly T[] | readonly (readonly T[])[] | undefined,
  n: number,
  dflt: readonly T[],
): (readonly T[])[] {
  if (x === undefined) return Array.from({ length: n }, () => dflt);
  if (x.length > 0 && Array.isArray(x[0])) {
    if (x.length !== n) {
      throw new ConfigError('per-sequence stop lists must have one entry per sequence', {
        where: 'generate',
        expected: `${n} (prompts × samplesPerPrompt)`,
        found: String(x.length),
      });
    }
    return x as (readonly T[])[];
  }
  return Array.from({ length: n }, () => x as readonly T[]);
}

export function generate(model: CausalLM, opts: GenerateOptions): Generation[] {
  validateSampling(opts);
  const cfg = model.config;
  const K = opts.samplesPerPrompt ?? 1;
  if (!Number.isInteger(K) || K < 1) {
    throw new ConfigError('samplesPerPrompt must be a positive integer', {
      where: 'generate',
      expected: 'integer ≥ 1',
      found: String(opts.samplesPerPrompt),
    });
  }
  const nP = opts.prompts.length; // distinct prompts (the prefill batch)
  const n = nP * K; // sequences (the decoding batch); sequence i has prompt ⌊i / K⌋
  if (n === 0) return [];
  if (K > 1 && opts.seeds !== undefined && opts.seeds.length !== n) {
    throw new ConfigError('seeds must have one entry per sequence', {
      where: 'generate',
      expected: `${n} (prompts × samplesPerPrompt)`,
      found: String(opts.seeds.length),
    });
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new ConfigError('maxNewTokens must be a non-negative integer', {
      where: 'generate',
      expected: 'integer ≥ 0',
      found: String(opts.maxNewTokens),
    });
  }
  if (
    opts.prefillRows !== undefined &&
    !(Number.isInteger(opts.prefillRows) && opts.prefillRows > 0)
  ) {
    throw new ConfigError('prefillRows must be a positive integer', {
      where: 'generate',
      expected: 'integer ≥ 1',
      found: String(opts.prefillRows),
    });
  }
  opts.prompts.forEach((p, i) => {
    if (p.length === 0) {
      throw new ConfigError('empty prompt', {
        where: `generate (prompt ${i})`,
        expected: '≥ 1 token',
        found: '0',
      });
    }
    for (const id of p) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new ConfigError('token id out of range', {
          where: `generate (prompt ${i})`,
          expected: `0 ≤ id < ${cfg.vocabSize}`,
          found: String(id),
          hint: 'the tokenizer and the model vocabulary do not match',
        });
      }
    }
  });
  const stopTokens = perSequence(opts.stopTokens, n, cfg.eosTokenIds).map((s) => new Set(s));
  const stopStrings = perSequence(opts.stopStrings, n, []);
  if (!opts.decode && stopStrings.some((s) => s.length > 0)) {
    throw new ConfigError('stop strings need a decode function', {
      where: 'generate',
      expected: 'opts.decode',
      found: 'undefined',
    });
  }
  const rngs = Array.from(
    { length: n },
    (_, i) => new Rng(opts.seeds?.[i] ?? (opts.seed ?? 0) + i),
  );
  const promptLens = opts.prompts.map((p) => p.length);
  const lens = Array.from({ length: n }, (_, i) => promptLens[Math.floor(i / K)] as number);
  const Tp = Math.max(...promptLens);
  const capacity = Tp + opts.maxNewTokens;
  // The last generated token is never fed back, so the longest sequence run is capacity − 1.
  if (capacity - 1 > model.maxPositions) {
    throw new ConfigError('prompt + new tokens exceed the model context', {
      where: 'generate',
      expected: `longest prompt + maxNewTokens − 1 ≤ ${model.maxPositions}`,
      found: `${Tp} + ${opts.maxNewTokens} − 1`,
      hint: 'shorten the prompt or lower maxNewTokens (or build the model with a larger maxPositions)',
    });
  }
  const out: Generation[] = Array.from({ length: n }, () => ({
    tokens: [],
    logProbs: [],
    finishReason: 'length',
  }));
  const done = new Array<boolean>(n).fill(opts.maxNewTokens === 0);
  if (opts.maxNewTokens === 0) return finish(out, opts);

  noGrad(() => {
    const cache = new KvCache({
      numLayers: cfg.numLayers,
      batch: nP,
      kvHeads: cfg.numKvHeads,
      headDim: cfg.headDim,
      capacity,
    });
    try {
      // Prefill: left-padded distinct prompts [nP, Tp]; pad id 0 is never attended to.
      const keyStart = Int32Array.from(promptLens, (l) => Tp - l);
      const ids = new Int32Array(nP * Tp);
      const positions = new Int32Array(nP * Tp);
      for (let b = 0; b < nP; b++) {
        const p = opts.prompts[b] as readonly number[];
        const s = keyStart[b] as number;
        for (let t = 0; t < Tp; t++) {
          ids[b * Tp + t] = t >= s ? (p[t - s] as number) : 0;
          positions[b * Tp + t] = Math.max(0, t - s);
        }
      }
      // One forward step → next-token logits of every row, copied out; tidy() frees every
      // intermediate (including the K/V tensors handed to attention) before the next step.
      const D = cfg.hiddenSize;
      const V = cfg.vocabSize;
      let rowStart = keyStart;
      const logitsBuf = new Float32Array(n * V);
      const forward = (stepIds: Int32Array, B: number, T: number, pos: Int32Array, head: boolean) =>
        tidy(() => {
          const h = model.forward({
            ids: stepIds,
            shape: [B, T],
            positions: pos,
            cache,
            keyStart: rowStart,
          }); // [B, T, D]
          if (!head) return new Float32Array(0);
          const last = reshape(T > 1 ? slice(h, 1, T - 1, T) : h, [B, D]); // [B, D]
          const lg = headLogits(last, model.headWeight()).data; // [B·V]
          // One buffer for every step (a step's rows are consumed before the next step): a fresh
          // copy per step was garbage the collector let pile up.
          const dst = logitsBuf.subarray(0, B * V);
          dst.set(lg);
          return dst;
        });
      const nextLogits = (stepIds: Int32Array, B: number, T: number, pos: Int32Array) =>
        forward(stepIds, B, T, pos, true);
      // Prefill in chunks of tokens through the cache (query i of a chunk sits at key position
      // past + i, so causal attention over the cache is exactly the one-shot result).
      const prefillRows = opts.prefillRows ?? 512;
      const int8 = opts.int8Decoding ?? process.env.RL4QE_INT8_DECODING === '1';
      const chunk = Math.max(1, Math.floor(prefillRows / nP));
      let data = new Float32Array(0);
      for (let t0 = 0; t0 < Tp; t0 += chunk) {
        const T = Math.min(chunk, Tp - t0);
        const cIds = new Int32Array(nP * T);
        const cPos = new Int32Array(nP * T);
        for (let b = 0; b < nP; b++) {
          cIds.set(ids.subarray(b * Tp + t0, b * Tp + t0 + T), b * T);
          cPos.set(positions.subarray(b * Tp + t0, b * Tp + t0 + T), b * T);
        }
        data = forward(cIds, nP, T, cPos, t0 + T === Tp);
      }
      if (K > 1) {
        // Shared prefill → one batch row per sequence: prompt p's cache row and last-position
        // logits become rows p·K … p·K + K − 1. The logits are spread in place from the last
        // prompt down (row p·K + k ≥ p, so no source row is overwritten before it is read).
        const rep = Array.from({ length: n }, (_, i) => Math.floor(i / K));
        cache.keepRows(rep);
        rowStart = Int32Array.from(rep, (p) => keyStart[p] as number);
        data = logitsBuf.subarray(0, n * V);
        for (let p = nP - 1; p >= 0; p--) {
          for (let k = K - 1; k >= 0; k--) data.copyWithin((p * K + k) * V, p * V, (p + 1) * V);
        }
      }
      // active[r]: which sequence batch row r holds. Finished sequences leave the batch (and the
      // KV cache) so the rest decode at the cost of a smaller batch.
      let active = Array.from({ length: n }, (_, i) => i);
      for (let s = 0; s < opts.maxNewTokens; s++) {
        const next = new Map<number, number>();
        // log p(token) = logit − logsumexp(row), every row in one backend call (a JavaScript
        // loop of exp over 49k–152k logits per row was ~1 ms a row).
        const lse = new Float32Array(active.length);
        getBackend().logsumexp(data, active.length, V, lse);
        active.forEach((b, r) => {
          const row = data.subarray(r * V, (r + 1) * V);
          const tok = sampleRow(row, opts, rngs[b] as Rng);
          const g = out[b] as Generation;
          g.tokens.push(tok);
          g.logProbs.push((row[tok] as number) - (lse[r] as number));
          next.set(b, tok);
          if ((stopTokens[b] as Set<number>).has(tok)) {
            g.finishReason = 'stop-token';
            done[b] = true;
          } else if ((stopStrings[b] as readonly string[]).length > 0 && opts.decode) {
            const text = opts.decode(g.tokens);
            if ((stopStrings[b] as readonly string[]).some((ss) => text.includes(ss))) {
              g.finishReason = 'stop-string';
              done[b] = true;
            }
          }
        });
        if (done.every(Boolean) || s === opts.maxNewTokens - 1) break;
        const keep = active.map((b, r) => [b, r] as const).filter(([b]) => !done[b]);
        if (keep.length < active.length) {
          cache.keepRows(keep.map(([, r]) => r));
          rowStart = Int32Array.from(keep, ([, r]) => rowStart[r] as number);
          active = keep.map(([b]) => b);
        }
        // Decode one token for every unfinished sequence.
        const stepIds = Int32Array.from(active, (b) => next.get(b) as number);
        const pos = Int32Array.from(active, (b) => (lens[b] as number) + s);
        // Decoding steps may run the quantised products on int8 activations (opts.int8Decoding;
        // src/backend/int8-decoding.ts): prefill and scoring stay on the float path.
        data = int8
          ? withInt8Decoding(() => nextLogits(stepIds, active.length, 1, pos))
          : nextLogits(stepIds, active.length, 1, pos);
      }
    } finally {
      cache.release();
      // The cache and the prefill buffers are sized to this request; the next one rarely has the
      // same sizes, so the native pool would hold them beside the new ones (a generate of 512 +
      // 128 tokens after one of 512 + 1 peaked ~180 MiB higher at batch 8). Return them now.
      getBackend().trimPool?.();
    }
  });
  return finish(out, opts);
}

function finish(out: Generation[], opts: GenerateOptions): Generation[] {
  if (!opts.decode) return out;
  const stopStrings = perSequence(opts.stopStrings, out.length, []);
  out.forEach((g, i) => {
    const ids = g.finishReason === 'stop-token' ? g.tokens.slice(0, -1) : g.tokens;
    let text = (opts.decode as (ids: readonly number[]) => string)(ids);
    if (g.finishReason === 'stop-string') {
      let cut = text.length;
      for (const ss of stopStrings[i] as readonly string[]) {
        const at = text.indexOf(ss);
        if (at >= 0 && at < cut) cut = at;
      }
      text = text.slice(0, cut);
    }
    g.text = text;
  });
  return out;
}
