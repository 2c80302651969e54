// GGUF vocabulary metadata → the tokenizer.json object Hugging Face would build from it.
//
// A GGUF carries no tokenizer.json: llama.cpp stores the vocabulary, merges, token types and
// special ids as metadata (`tokenizer.ggml.*`). transformers rebuilds a `tokenizers` object from
// them (transformers/integrations/gguf/gguf_tokenizer_mapping.py, transformers 5.24); we do the
// same conversion, field by field, so one tokenizer.json engine serves both sources and the
// result is token-for-token what `AutoTokenizer.from_pretrained(dir, gguf_file=...)` gives.
// Only byte-level BPE (`tokenizer.ggml.model = gpt2`) is supported; sentencepiece ('llama'),
// unigram ('t5') and Gemma vocabularies raise UnsupportedError.

import { FormatError, UnsupportedError } from '../util/errors.js';
import { BYTE_TO_CHAR, isByteLevelSpelled } from './byte-level.js';
import { templateProcessing } from './tokenizer-json.js';
import type { TokenizerConfig, TokenizerJson, AddedTokenJson } from './tokenizer-json.js';

/**
 * GGUF metadata as key → value (Map or plain object): plain values, or src/io/gguf's GgufKV
 * entries ({type, value}), e.g. `openGguf(path).metadata`.
 */
export type GgufMetadataLike = ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>;

/** llama.cpp's token types (`tokenizer.ggml.token_type`). */
export const GGUF_TOKEN_TYPE = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

// Pre-tokenizer split patterns by `tokenizer.ggml.pre`, as transformers maps them
// (GGUF_PRE_TOKENIZER_SPLITS). A name not listed here falls back to GPT-2's ByteLevel regex,
// exactly as transformers does; 'smollm' and 'deepseek-coder' are among those (see docs/tokenizer.md).
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const TEKKEN_SPLIT = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN35_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const GPT4O_SPLIT = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

export const GGUF_PRE_TOKENIZER_SPLITS: Readonly<Record<string, string>> = {
  llama3: LLAMA3_SPLIT,
  'llama-v3': LLAMA3_SPLIT,
  'llama-bpe': LLAMA3_SPLIT,
  falcon3: LLAMA3_SPLIT,
  'falcon-h1': LLAMA3_SPLIT,
  pixtral: LLAMA3_SPLIT,
  'midm-2.0': LLAMA3_SPLIT,
  lfm2: LLAMA3_SPLIT,
  'jina-v5-nano': LLAMA3_SPLIT,
  dbrx: LLAMA3_SPLIT,
  'smaug-bpe': LLAMA3_SPLIT,
  tekken: TEKKEN_SPLIT,
  qwen2: QWEN2_SPLIT,
  'deepseek-r1-qwen': QWEN2_SPLIT,
  kormo: QWEN2_SPLIT,
  f2llmv2: QWEN2_SPLIT,
  megrez: QWEN2_SPLIT,
  qwen35: QWEN35_SPLIT,
  'gpt-4o': GPT4O_SPLIT,
  llama4: GPT4O_SPLIT,
  kanana2: GPT4O_SPLIT,
  talkie: GPT4O_SPLIT,
  'minimax-m2': GPT4O_SPLIT,
};

/** The vocabulary fields of a GGUF file, validated. */
export interface GgufVocab {
  /** `tokenizer.ggml.model` (only 'gpt2' is converted). */
  model: string;
  /** `tokenizer.ggml.pre`, when present. */
  pre?: string;
  tokens: string[];
  merges: string[];
  tokenTypes?: Int32Array;
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

function getKey(meta: GgufMetadataLike, key: string): unknown {
  const v =
    meta instanceof Map
      ? (meta as ReadonlyMap<string, unknown>).get(key)
      : (meta as Readonly<Record<string, unknown>>)[key];
  // src/io/gguf's reader wraps each value as {type, value} (GgufKV): unwrap it.
  if (v !== null && typeof v === 'object' && 'value' in v && 'type' in v && !Array.isArray(v)) {
    return (v as { value: unknown }).value;
  }
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array(${v.length})`;
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

/** Reads and validates the `tokenizer.ggml.*` fields; every defect is a FormatError naming the key. */
export function readGgufVocab(meta: GgufMetadataLike, opts: { source: string }): GgufVocab {
  const src = opts.source;
  const bad = (key: string, expected: string, found: string, hint?: string): FormatError =>
    new FormatError('invalid GGUF tokenizer metadata', {
      where: `${src}: ${key}`,
      expected,
      found,
      hint,
    });

  const str = (key: string, required: boolean): string | undefined => {
    const v = getKey(meta, key);
    if (v === undefined) {
      if (required) throw bad(key, 'a string', 'key missing', 'is this a GGUF with a vocabulary?');
      return undefined;
    }
    if (typeof v !== 'string') throw bad(key, 'a string', typeName(v));
    return v;
  };
  const bool = (key: string): boolean | undefined => {
    const v = getKey(meta, key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw bad(key, 'a boolean', typeName(v));
    return v;
  };
  const strArray = (key: string, required: boolean): string[] | undefined => {
    const v = getKey(meta, key);
    if (v === undefined) {
      if (required) throw bad(key, 'an array of strings', 'key missing');
      return undefined;
    }
    if (!Array.isArray(v)) throw bad(key, 'an array of strings', typeName(v));
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== 'string') throw bad(`${key}[${i}]`, 'a string', typeName(v[i]));
    }
    return v as string[];
  };

  const model = str('tokenizer.ggml.model', true)!;
  const tokens = strArray('tokenizer.ggml.tokens', true)!;
  if (tokens.length === 0) throw bad('tokenizer.ggml.tokens', 'a non-empty array', 'empty');
  const n = tokens.length;

  const tokenId = (key: string): number | undefined => {
    let v = getKey(meta, key);
    if (v === undefined) return undefined;
    if (typeof v === 'bigint') v = Number(v);
    if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, 'an integer', typeName(v));
    if (v < 0 || v >= n) throw bad(key, `a token id in [0, ${n})`, String(v));
    return v;
  };

  let tokenTypes: Int32Array | undefined;
  const tt = getKey(meta, 'tokenizer.ggml.token_type');
  if (tt !== undefined) {
    const arr = Array.isArray(tt) || ArrayBuffer.isView(tt) ? (tt as ArrayLike<unknown>) : null;
    if (arr === null) throw bad('tokenizer.ggml.token_type', 'an array of integers', typeName(tt));
    if (arr.length !== n) {
      throw bad(
        'tokenizer.ggml.token_type',
        `${n} entries (one per token)`,
        `${arr.length} entries`,
      );
    }
    tokenTypes = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const x = typeof arr[i] === 'bigint' ? Number(arr[i]) : arr[i];
      if (typeof x !== 'number' || !Number.isInteger(x)) {
        throw bad(`tokenizer.ggml.token_type[${i}]`, 'an integer', typeName(x));
      }
      tokenTypes[i] = x;
    }
  }

  const vocab: GgufVocab = {
    model,
    pre: str('tokenizer.ggml.pre', false),
    tokens,
    merges: [],
    tokenTypes,
    bosId: tokenId('tokenizer.ggml.bos_token_id'),
    eosId: tokenId('tokenizer.ggml.eos_token_id'),
    unkId: tokenId('tokenizer.ggml.unknown_token_id'),
    padId: tokenId('tokenizer.ggml.padding_token_id'),
    addBos: bool('tokenizer.ggml.add_bos_token'),
    addEos: bool('tokenizer.ggml.add_eos_token'),
    chatTemplate: str('tokenizer.chat_template', false),
  };
  if (model !== 'gpt2') {
    throw new UnsupportedError(`GGUF tokenizer model '${model}' is not supported`, {
      where: `${src}: tokenizer.ggml.model`,
      expected: "'gpt2' (byte-level BPE)",
      found: `'${model}'`,
      hint: 'sentencepiece (llama), unigram (t5) and Gemma vocabularies are not implemented; use a tokenizer.json',
    });
  }
  vocab.merges = strArray('tokenizer.ggml.merges', true)!;
  if (vocab.merges.length === 0) {
    throw bad('tokenizer.ggml.merges', 'a non-empty array of "left right" strings', 'empty');
  }
  return vocab;
}

/**
 * The tokenizer.json object and tokenizer_config that transformers builds from this vocabulary
 * (byte_level_tokenizer + add_gguf_special_tokens + set_split_regex + update_post_processor).
 */
export function ggufVocabToTokenizerJson(
  v: GgufVocab,
  opts: { source: string },
): { json: TokenizerJson; config: TokenizerConfig } {
  const src = opts.source;
  // Tokens not spelled in the byte alphabet (e.g. a raw '<think>' with a space) are respelled from
  // their UTF-8 bytes, as transformers does; the id is the position in the file. A later duplicate
  // overwrites an earlier one, as in a Python dict.
  const spelled: string[] = v.tokens.map((t) =>
    isByteLevelSpelled(t) ? t : Array.from(Buffer.from(t, 'utf8'), (b) => BYTE_TO_CHAR[b]).join(''),
  );
  const ids = new Map<string, number>();
  spelled.forEach((t, i) => ids.set(t, i));

  const merges: [string, string][] = new Array(v.merges.length);
  for (let i = 0; i < v.merges.length; i++) {
    const m = v.merges[i];
    const parts = m.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new FormatError('invalid GGUF merge', {
        where: `${src}: tokenizer.ggml.merges[${i}]`,
        expected: 'two tokens separated by one space',
        found: JSON.stringify(m),
      });
    }
    for (const p of [parts[0], parts[1], parts[0] + parts[1]]) {
      if (!ids.has(p)) {
        throw new FormatError('GGUF merge refers to a token not in the vocabulary', {
          where: `${src}: tokenizer.ggml.merges[${i}]`,
          expected: 'both halves and their concatenation in tokenizer.ggml.tokens',
          found: `${JSON.stringify(m)}: ${JSON.stringify(p)} missing`,
        });
      }
    }
    merges[i] = [parts[0], parts[1]];
  }

  // Added tokens: CONTROL tokens spelled in the byte alphabet become special (a control token
  // outside the alphabet is a llama.cpp mislabel and is skipped), USER_DEFINED ones plain added
  // tokens; then the bos/eos/unk/pad tokens are marked special too, as transformers' special-token
  // setup does. All are matched whole in the text.
  const added = new Map<number, AddedTokenJson>();
  const add = (id: number, special: boolean): void => {
    const prev = added.get(id);
    added.set(id, {
      id,
      content: v.tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: special || (prev?.special ?? false),
    });
  };
  if (v.tokenTypes) {
    for (let i = 0; i < v.tokens.length; i++) {
      if (v.tokenTypes[i] === GGUF_TOKEN_TYPE.CONTROL && isByteLevelSpelled(v.tokens[i])) {
        add(i, true);
      }
    }
    for (let i = 0; i < v.tokens.length; i++) {
      if (v.tokenTypes[i] === GGUF_TOKEN_TYPE.USER_DEFINED && ids.has(v.tokens[i])) add(i, false);
    }
  }
  for (const id of [v.bosId, v.eosId, v.unkId, v.padId]) if (id !== undefined) add(id, true);

  const split = v.pre !== undefined ? GGUF_PRE_TOKENIZER_SPLITS[v.pre] : undefined;
  const preTokenizer =
    split !== undefined
      ? {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
          ],
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

  const tok = (id: number | undefined): string | null => (id === undefined ? null : v.tokens[id]);
  const config: TokenizerConfig = {
    bos_token: tok(v.bosId),
    eos_token: tok(v.eosId),
    unk_token: tok(v.unkId),
    pad_token: tok(v.padId),
    add_bos_token: v.addBos ?? false,
    add_eos_token: v.addEos ?? false,
    chat_template: v.chatTemplate,
    clean_up_tokenization_spaces: false,
  };

  const vocab: Record<string, number> = Object.fromEntries(ids);
  const json: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...added.values()].sort((a, b) => a.id - b.id),
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: templateProcessing(config, { bosId: v.bosId, eosId: v.eosId }),
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  return { json, config };
}
