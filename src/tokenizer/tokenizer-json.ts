// The shape of Hugging Face `tokenizer.json` and `tokenizer_config.json`, validated at the edge.
// The tokenizer engine (@huggingface/tokenizers) trusts its input and fails late with untyped
// errors (or silently mis-tokenizes), so everything it relies on is checked here first and a
// defect becomes a FormatError that names the file and the field.

import { z } from 'zod';
import { FormatError } from '../util/errors.js';

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A tokenizer.json object (the `tokenizers` library's serialisation). */
export interface TokenizerJson {
  version?: string;
  truncation?: unknown;
  padding?: unknown;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type: string; [k: string]: unknown };
}

/** The parts of tokenizer_config.json rl4qe uses. Special tokens are strings (or null). */
export interface TokenizerConfig {
  bos_token?: string | null;
  eos_token?: string | null;
  unk_token?: string | null;
  pad_token?: string | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  chat_template?: string;
  clean_up_tokenization_spaces?: boolean;
}

const addedToken = z.object({
  id: z.number().int().nonnegative(),
  content: z.string().min(1),
  single_word: z.boolean().default(false),
  lstrip: z.boolean().default(false),
  rstrip: z.boolean().default(false),
  normalized: z.boolean().default(true),
  special: z.boolean().default(false),
});

const component = z.union([z.null(), z.looseObject({ type: z.string() })]);

const tokenizerJsonSchema = z.looseObject({
  added_tokens: z.array(addedToken).default([]),
  normalizer: component.default(null),
  pre_tokenizer: component.default(null),
  post_processor: component.default(null),
  decoder: component.default(null),
  model: z.looseObject({ type: z.string() }),
});

const bpeModel = z.looseObject({
  type: z.literal('BPE'),
  vocab: z.record(z.string(), z.number().int().nonnegative()),
  merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])),
  byte_fallback: z.boolean().optional(),
  unk_token: z.string().nullable().optional(),
});

const unigramModel = z.looseObject({
  type: z.literal('Unigram'),
  vocab: z.array(z.tuple([z.string(), z.number()])),
  unk_id: z.number().int().nonnegative().nullable().optional(),
});

const wordPieceModel = z.looseObject({
  type: z.literal('WordPiece'),
  vocab: z.record(z.string(), z.number().int().nonnegative()),
});

// Special tokens in tokenizer_config.json are a string or an AddedToken-like object.
const specialToken = z
  .union([z.string(), z.looseObject({ content: z.string() }), z.null()])
  .optional()
  .transform((v) => (v === undefined ? undefined : typeof v === 'object' && v ? v.content : v));

const tokenizerConfigSchema = z.looseObject({
  bos_token: specialToken,
  eos_token: specialToken,
  unk_token: specialToken,
  pad_token: specialToken,
  add_bos_token: z.boolean().optional(),
  add_eos_token: z.boolean().optional(),
  // A list of named templates ({name, template}) is also allowed by transformers; take 'default'.
  chat_template: z
    .union([z.string(), z.array(z.object({ name: z.string(), template: z.string() }))])
    .optional()
    .transform((v) =>
      Array.isArray(v) ? (v.find((t) => t.name === 'default') ?? v[0])?.template : v,
    ),
  clean_up_tokenization_spaces: z.boolean().optional(),
});

function zodToFormatError(source: string, err: z.ZodError, root: string): FormatError {
  const issue = err.issues[0];
  const path = [root, ...issue.path.map(String)].filter((s) => s !== '').join('.');
  return new FormatError(`invalid ${root || 'file'}`, {
    where: `${source}: ${path}`,
    expected: issue.message,
    found: err.issues.length > 1 ? `${err.issues.length} problems, first shown` : 'see above',
  });
}

/** Validates a parsed tokenizer.json (BPE deeply; Unigram and WordPiece structurally). */
export function validateTokenizerJson(raw: unknown, opts: { source: string }): TokenizerJson {
  const src = opts.source;
  const top = tokenizerJsonSchema.safeParse(raw);
  if (!top.success) throw zodToFormatError(src, top.error, '');
  const json = top.data as unknown as TokenizerJson;
  const type = json.model.type;
  let maxId = -1;
  if (type === 'BPE') {
    const m = bpeModel.safeParse(json.model);
    if (!m.success) throw zodToFormatError(src, m.error, 'model');
    const vocab = m.data.vocab;
    for (const id of Object.values(vocab)) if (id > maxId) maxId = id;
    // Every merge must name two tokens of the vocabulary whose concatenation is in it too
    // (the Rust library rejects the file otherwise; a silent skip would change the ids).
    const has = (t: string): boolean => Object.prototype.hasOwnProperty.call(vocab, t);
    m.data.merges.forEach((merge, i) => {
      let a: string, b: string;
      if (typeof merge === 'string') {
        const parts = merge.split(' ');
        if (parts.length !== 2) {
          throw new FormatError('invalid merge', {
            where: `${src}: model.merges[${i}]`,
            expected: 'two tokens separated by one space',
            found: JSON.stringify(merge),
          });
        }
        [a, b] = parts;
      } else [a, b] = merge;
      for (const p of [a, b, a + b]) {
        if (!has(p)) {
          throw new FormatError('merge refers to a token not in the vocabulary', {
            where: `${src}: model.merges[${i}]`,
            expected: 'both halves and their concatenation in model.vocab',
            found: `${JSON.stringify(`${a} ${b}`)}: ${JSON.stringify(p)} missing`,
          });
        }
      }
    });
    if (typeof m.data.unk_token === 'string' && !has(m.data.unk_token)) {
      throw new FormatError('unk_token not in the vocabulary', {
        where: `${src}: model.unk_token`,
        expected: 'a token of model.vocab',
        found: JSON.stringify(m.data.unk_token),
      });
    }
  } else if (type === 'Unigram') {
    const m = unigramModel.safeParse(json.model);
    if (!m.success) throw zodToFormatError(src, m.error, 'model');
    maxId = m.data.vocab.length - 1;
    const unk = m.data.unk_id;
    if (unk !== undefined && unk !== null && unk > maxId) {
      throw new FormatError('unk_id out of range', {
        where: `${src}: model.unk_id`,
        expected: `an id in [0, ${maxId + 1})`,
        found: String(unk),
      });
    }
  } else if (type === 'WordPiece') {
    const m = wordPieceModel.safeParse(json.model);
    if (!m.success) throw zodToFormatError(src, m.error, 'model');
    for (const id of Object.values(m.data.vocab)) if (id > maxId) maxId = id;
  } else {
    throw new FormatError('unsupported tokenizer model type', {
      where: `${src}: model.type`,
      expected: "'BPE', 'Unigram' or 'WordPiece'",
      found: JSON.stringify(type),
    });
  }
  // Added tokens extend the vocabulary: an id beyond vocabulary + added tokens means a corrupt file.
  const limit = maxId + 1 + json.added_tokens.length;
  json.added_tokens.forEach((t, i) => {
    if (t.id >= limit) {
      throw new FormatError('added token id out of range', {
        where: `${src}: added_tokens[${i}].id`,
        expected: `an id below ${limit} (model vocabulary plus added tokens)`,
        found: `${t.id} for ${JSON.stringify(t.content)}`,
      });
    }
  });
  return json;
}

/** Validates a parsed tokenizer_config.json (only the fields rl4qe uses). */
export function validateTokenizerConfig(raw: unknown, opts: { source: string }): TokenizerConfig {
  const r = tokenizerConfigSchema.safeParse(raw);
  if (!r.success) throw zodToFormatError(opts.source, r.error, '');
  return r.data as TokenizerConfig;
}

/** transformers' update_post_processor: `[bos] $A [eos]` as the add_bos/add_eos flags say. */
export function templateProcessing(
  config: TokenizerConfig,
  ids: { bosId?: number; eosId?: number },
): Record<string, unknown> {
  const addBos = config.add_bos_token === true && typeof config.bos_token === 'string';
  const addEos = config.add_eos_token === true && typeof config.eos_token === 'string';
  const bos = config.bos_token as string;
  const eos = config.eos_token as string;
  const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const single = [
    ...(addBos ? [special(bos, 0)] : []),
    seq('A', 0),
    ...(addEos ? [special(eos, 0)] : []),
  ];
  const pair = [
    ...single,
    ...(addBos ? [special(bos, 1)] : []),
    seq('B', 1),
    ...(addEos ? [special(eos, 1)] : []),
  ];
  const specialTokens: Record<string, unknown> = {};
  if (addBos) specialTokens[bos] = { id: bos, ids: [ids.bosId], tokens: [bos] };
  if (addEos) specialTokens[eos] = { id: eos, ids: [ids.eosId], tokens: [eos] };
  return { type: 'TemplateProcessing', single, pair, special_tokens: specialTokens };
}
