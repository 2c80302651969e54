// Text-similarity metrics, defined exactly as the RL4QE authors' code computes them
// (utils/reward_util.py, utils/code_metric.py in github.com/davidyuan666/RL4QE) with the
// packages it calls (nltk 3.x sentence_bleu, rouge 1.0.1, difflib). Parity with the Python
// packages is tested on >= 1,000 pairs to 1e-9 (scripts/fixtures_rewards.py). The arithmetic
// is written in the same order as the Python so results agree to the last bit where the
// operations are the same (log/exp may differ by an ulp between libms).
import { codeTokens, Interner, paperTokens, pyLower, pySplit, pySplitSet } from './tokenize.js';
import { sequenceRatio } from './difflib.js';
import { UnsupportedError } from '../util/errors.js';

// ---------------------------------------------------------------------------------------------
// BLEU-4: nltk sentence_bleu([ref], hyp, weights=(0.25,)*4, smoothing_function=...)

export type BleuSmoothing = 'method1' | 'none';

/** nltk's SmoothingFunction().method1 epsilon. */
const EPSILON = 0.1;
/** sys.float_info.min, which nltk's method0 substitutes for a zero precision. */
const FLOAT_MIN = 2.2250738585072014e-308;

/** Exactly rounded sum (Python's math.fsum) for a handful of terms (Shewchuk's partials). */
function fsum(xs: readonly number[]): number {
  const partials: number[] = [];
  for (let x of xs) {
    let i = 0;
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    if (x !== 0) partials.push(x);
  }
  // Sum the partials from the top, with CPython's half-way correction.
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n]!;
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    const yr = x - hi;
    if (y === yr) hi = x;
  }
  return hi;
}

/** Clipped n-gram matches and hypothesis n-gram count for one order (single reference). */
function ngramMatches(
  hyp: Int32Array,
  ref: Int32Array,
  n: number,
  vocab: number,
): [number, number] {
  const hn = hyp.length - n + 1;
  if (hn <= 0) return [0, 0];
  const rn = ref.length - n + 1;
  // Numeric n-gram keys while vocab^n stays exact in a double, strings beyond.
  const numeric = Math.pow(Math.max(vocab, 2), n) < 9007199254740992;
  const key = numeric
    ? (s: Int32Array, i: number): number | string => {
        let k = 0;
        for (let t = 0; t < n; t++) k = k * vocab + s[i + t]!;
        return k;
      }
    : (s: Int32Array, i: number): number | string => s.subarray(i, i + n).join(',');
  const refCounts = new Map<number | string, number>();
  for (let i = 0; i < rn; i++) {
    const k = key(ref, i);
    refCounts.set(k, (refCounts.get(k) ?? 0) + 1);
  }
  // Clipped count: each hypothesis n-gram matches at most its count in the reference; counting
  // down a copy of the reference counts gives Σ min(count_h, count_r).
  let matched = 0;
  for (let i = 0; i < hn; i++) {
    const k = key(hyp, i);
    const c = refCounts.get(k);
    if (c !== undefined && c > 0) {
      matched++;
      refCounts.set(k, c - 1);
    }
  }
  return [matched, hn];
}

/** BLEU-4 of token sequences, as nltk sentence_bleu with one reference. */
export function bleu4Tokens(
  hyp: readonly string[],
  ref: readonly string[],
  smoothing: BleuSmoothing = 'method1',
): number {
  const it = new Interner();
  const h = it.ids32(hyp);
  const r = it.ids32(ref);
  const vocab = it.size;
  const nums: number[] = [];
  const dens: number[] = [];
  for (let n = 1; n <= 4; n++) {
    const [m, c] = ngramMatches(h, r, n, vocab);
    nums.push(m);
    dens.push(Math.max(1, c));
  }
  // corpus_bleu: no unigram match → 0.
  if (nums[0] === 0) return 0;
  const hypLen = h.length;
  const refLen = r.length;
  const bp = hypLen > refLen ? 1 : hypLen === 0 ? 0 : Math.exp(1 - refLen / hypLen);
  const terms: number[] = [];
  for (let i = 0; i < 4; i++) {
    let p: number;
    if (nums[i] !== 0) p = nums[i]! / dens[i]!;
    else p = smoothing === 'method1' ? (0 + EPSILON) / dens[i]! : FLOAT_MIN;
    if (p > 0) terms.push(0.25 * Math.log(p));
  }
  return bp * Math.exp(fsum(terms));
}

// ---------------------------------------------------------------------------------------------
// ROUGE-L F: rouge 1.0.1 Rouge().get_scores(hyp, ref)[0]['rouge-l']['f'] (summary level).

/** rouge's sentence split: text.split('.'), non-empty pieces, each `" ".join(piece.split())`. */
function rougeSentences(text: string): string[] {
  const out: string[] = [];
  for (const piece of text.split('.')) if (piece.length > 0) out.push(pySplit(piece).join(' '));
  return out;
}

/** The exact reconstruction needs the full table: 2^28 cells (512 MiB at 16 bits) at most. */
const MAX_LCS_CELLS = 2 ** 28;

/**
 * The set of tokens on the LCS that rouge's _recon_lcs reconstructs (its tie-breaking: on a
 * mismatch go up when table[i-1][j] > table[i][j-1], else left), added to `into`.
 */
function addReconLcs(x: Int32Array, y: Int32Array, into: Set<number>): void {
  const n = x.length;
  const m = y.length;
  const w = m + 1;
  if ((n + 1) * w > MAX_LCS_CELLS) {
    throw new UnsupportedError('ROUGE-L input too long for the exact LCS table', {
      where: 'rewards.rouge_l',
      expected: `at most ${MAX_LCS_CELLS} LCS cells per sentence pair (2 bytes each)`,
      found: `${n + 1} × ${m + 1} words in one sentence pair`,
      hint: "cap the generator's max tokens, or use the 'code' tokeniser (linear-memory LCS)",
    });
  }
  // LCS lengths never exceed min(n, m): 16-bit cells halve the memory of long pairs.
  const table = Math.min(n, m) < 65535 ? new Uint16Array((n + 1) * w) : new Int32Array((n + 1) * w);
  for (let i = 1; i <= n; i++) {
    const xi = x[i - 1]!;
    const row = i * w;
    const up = row - w;
    for (let j = 1; j <= m; j++) {
      if (xi === y[j - 1]) table[row + j] = table[up + j - 1]! + 1;
      else {
        const a = table[up + j]!;
        const b = table[row + j - 1]!;
        table[row + j] = a > b ? a : b;
      }
    }
  }
  let i = n;
  let j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) {
      into.add(x[i - 1]!);
      i--;
      j--;
    } else if (table[(i - 1) * w + j]! > table[i * w + j - 1]!) i--;
    else j--;
  }
}

/**
 * ROUGE-L F-score exactly as the `rouge` package (1.0.1) computes it, on the raw strings (the
 * package does not lower-case). Quirks kept on purpose: sentences are split at every '.', word
 * counts are of unique words, the LCS hits are the union SET of reconstructed LCS words, and
 * F = 2·P·R/(P + R + 1e-8). Where the package raises ValueError (a side with no sentence:
 * empty, or only dots) this returns 0.
 */
export function rougeL(hyp: string, ref: string): number {
  const hs = rougeSentences(hyp);
  const rs = rougeSentences(ref);
  if (hs.length === 0 || rs.length === 0) return 0;
  const it = new Interner();
  const hw = hs.map((s) => it.ids32(s.split(' ')));
  const rw = rs.map((s) => it.ids32(s.split(' ')));
  const uniq = (ws: Int32Array[]): number => {
    const set = new Set<number>();
    for (const s of ws) for (const t of s) set.add(t);
    return set.size;
  };
  const m = uniq(rw);
  const n = uniq(hw);
  const union = new Set<number>();
  for (const r of rw) for (const h of hw) addReconLcs(r, h, union);
  const llcs = union.size;
  const rLcs = llcs / m;
  const pLcs = llcs / n;
  return 2.0 * ((pLcs * rLcs) / (pLcs + rLcs + 1e-8));
}

/** Classic ROUGE-L F1 over one token sequence (LCS length; the code-tokeniser option). */
export function rougeLTokens(hyp: readonly string[], ref: readonly string[]): number {
  if (hyp.length === 0 || ref.length === 0) return 0;
  const it = new Interner();
  const h = it.ids32(hyp);
  const r = it.ids32(ref);
  let prev = new Int32Array(h.length + 1);
  let cur = new Int32Array(h.length + 1);
  for (let i = 1; i <= r.length; i++) {
    const ri = r[i - 1]!;
    for (let j = 1; j <= h.length; j++) {
      cur[j] = ri === h[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  const lcs = prev[h.length]!;
  if (lcs === 0) return 0;
  const p = lcs / h.length;
  const rc = lcs / r.length;
  return (2 * p * rc) / (p + rc);
}

// ---------------------------------------------------------------------------------------------
// F1 and Overlap over unique tokens (reward_util.py _f1_score, _overlap_score).

function commonCount(hs: ReadonlySet<string>, rs: ReadonlySet<string>): number {
  let common = 0;
  const [small, big] = hs.size <= rs.size ? [hs, rs] : [rs, hs];
  for (const t of small) if (big.has(t)) common++;
  return common;
}

/** F1 of unique-token sets: 0 if either is empty. */
export function f1Sets(hs: ReadonlySet<string>, rs: ReadonlySet<string>): number {
  if (hs.size === 0 || rs.size === 0) return 0;
  const common = commonCount(hs, rs);
  const p = common / hs.size;
  const r = common / rs.size;
  if (p + r === 0) return 0;
  return (2 * p * r) / (p + r);
}

/** Overlap: |H ∩ R| / |R| (recall of the reference's unique tokens); 0 if R is empty. */
export function overlapSets(hs: ReadonlySet<string>, rs: ReadonlySet<string>): number {
  return rs.size === 0 ? 0 : commonCount(hs, rs) / rs.size;
}

/** F1 of unique tokens: 0 if either side is empty. */
export function f1Tokens(hyp: readonly string[], ref: readonly string[]): number {
  return f1Sets(new Set(hyp), new Set(ref));
}

/** Overlap of unique tokens. */
export function overlapTokens(hyp: readonly string[], ref: readonly string[]): number {
  return overlapSets(new Set(hyp), new Set(ref));
}

// ---------------------------------------------------------------------------------------------
// code_metric.py: precision / recall / F1 of unique code tokens and CSS (difflib ratio).

export interface CodeMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Code structure similarity: difflib.SequenceMatcher ratio of the code-token sequences. */
  css: number;
}

/** The authors' CodeMetricsCalculator.calculate_metrics(generated, ground_truth). */
export function codeMetrics(generated: string, truth: string): CodeMetrics {
  if (generated === '' || truth === '') return { precision: 0, recall: 0, f1: 0, css: 0 };
  const g = codeTokens(generated);
  const t = codeTokens(truth);
  const gs = new Set(g);
  const ts = new Set(t);
  let common = 0;
  for (const x of gs) if (ts.has(x)) common++;
  const precision = gs.size > 0 ? common / gs.size : 0;
  const recall = ts.size > 0 ? common / ts.size : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  const it = new Interner();
  const css = sequenceRatio(it.ids32(g), it.ids32(t));
  return { precision, recall, f1, css };
}

/** CSS alone. */
export function css(generated: string, truth: string): number {
  return codeMetrics(generated, truth).css;
}

// ---------------------------------------------------------------------------------------------
// String-level entry points with the tokenisation option.

/**
 * 'paper': lower-cased whitespace tokens (`s.lower().split()`), the authors' definition.
 * 'code': the code-token regex of the authors' evaluation (identifiers, numbers, operators).
 */
export type TextTokenizer = 'paper' | 'code';

export function tokensFor(s: string, tokenizer: TextTokenizer): string[] {
  return tokenizer === 'code' ? codeTokens(s) : paperTokens(s);
}

export function bleu4(
  hyp: string,
  ref: string,
  opts: { tokenizer?: TextTokenizer; smoothing?: BleuSmoothing } = {},
): number {
  const t = opts.tokenizer ?? 'paper';
  return bleu4Tokens(tokensFor(hyp, t), tokensFor(ref, t), opts.smoothing ?? 'method1');
}

/** The set of unique tokens (for F1 and Overlap). */
export function tokenSetFor(s: string, tokenizer: TextTokenizer): Set<string> {
  return tokenizer === 'code' ? new Set(codeTokens(s)) : pySplitSet(pyLower(s));
}

export function f1(hyp: string, ref: string, opts: { tokenizer?: TextTokenizer } = {}): number {
  const t = opts.tokenizer ?? 'paper';
  return f1Sets(tokenSetFor(hyp, t), tokenSetFor(ref, t));
}

export function overlap(
  hyp: string,
  ref: string,
  opts: { tokenizer?: TextTokenizer } = {},
): number {
  const t = opts.tokenizer ?? 'paper';
  return overlapSets(tokenSetFor(hyp, t), tokenSetFor(ref, t));
}

/** ROUGE-L F: the rouge package on raw strings ('paper'), or token-LCS F1 ('code'). */
export function rougeLF(
  hyp: string,
  ref: string,
  opts: { tokenizer?: TextTokenizer } = {},
): number {
  return (opts.tokenizer ?? 'paper') === 'code'
    ? rougeLTokens(codeTokens(hyp), codeTokens(ref))
    : rougeL(hyp, ref);
}

// ---------------------------------------------------------------------------------------------
// All metrics of one pair at once, sharing the tokenisation (evaluation, reports).

export interface TextMetrics {
  bleu: number;
  rouge_l: number;
  f1: number;
  overlap: number;
  css: number;
}

/** Tokens of one text, computed once and reused against many hypotheses or references. */
export interface PreparedText {
  text: string;
  tokens: string[];
}

export function prepareText(text: string, tokenizer: TextTokenizer = 'paper'): PreparedText {
  return { text, tokens: tokensFor(text, tokenizer) };
}

export function textMetrics(
  hyp: string | PreparedText,
  ref: string | PreparedText,
  opts: { tokenizer?: TextTokenizer; smoothing?: BleuSmoothing } = {},
): TextMetrics {
  const t = opts.tokenizer ?? 'paper';
  const h = typeof hyp === 'string' ? prepareText(hyp, t) : hyp;
  const r = typeof ref === 'string' ? prepareText(ref, t) : ref;
  return {
    bleu: bleu4Tokens(h.tokens, r.tokens, opts.smoothing ?? 'method1'),
    rouge_l: t === 'code' ? rougeLTokens(h.tokens, r.tokens) : rougeL(h.text, r.text),
    f1: f1Tokens(h.tokens, r.tokens),
    overlap: overlapTokens(h.tokens, r.tokens),
    css: codeMetrics(h.text, r.text).css,
  };
}
