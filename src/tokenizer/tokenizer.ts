// One Tokenizer for every source: a Hugging Face tokenizer.json (+ tokenizer_config.json) or a
// GGUF file's vocabulary metadata (converted to the same tokenizer.json object first, see
// gguf-vocab.ts). The tokenization itself is @huggingface/tokenizers, a pure-JS implementation of
// the tokenizers library's pipeline (normalizer → pre-tokenizer → model → post-processor →
// decoder); this class validates the input, resolves the special tokens the way transformers does,
// and gives rl4qe a small typed API.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as hfTokenizers from '@huggingface/tokenizers';
import { installEnginePatches, speedUpBpeCache } from './engine-patches.js';
import { FormatError, NotFoundError, ShapeError } from '../util/errors.js';
import { openGguf, type GgufFile } from '../io/gguf/index.js';
import { ChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
import { readGgufVocab, ggufVocabToTokenizerJson, type GgufMetadataLike } from './gguf-vocab.js';
import {
  templateProcessing,
  validateTokenizerConfig,
  validateTokenizerJson,
  type TokenizerConfig,
  type TokenizerJson,
} from './tokenizer-json.js';

export interface EncodeOptions {
  /** Apply the post-processor (e.g. prepend BOS when the tokenizer says so). Default true, as in transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (bos, eos, <|im_end|>, ...) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface SpecialToken {
  id: number;
  content: string;
}

/** Raised when a tokenizer can produce ids the model has no embedding row for. */
export class VocabMismatchError extends FormatError {}

/** Where a tokenizer came from, for messages: a path plus what kind of source. */
export interface TokenizerSource {
  source: string;
}

installEnginePatches();
const HfTokenizer = hfTokenizers.Tokenizer;
type HfTokenizer = hfTokenizers.Tokenizer;

// Exercises every stage of the pipeline once (letters, digits, whitespace runs, tabs, unicode).
const PROBE_TEXT = "Hello, world! It's 2024:\n\tdef f(x):  return x ** 2  # café 数据 😀";

function engineError(source: string, e: unknown): FormatError {
  if (e instanceof FormatError) return e;
  return new FormatError('tokenizer.json rejected by the tokenizer engine', {
    where: `${source}: normalizer/pre_tokenizer/model/post_processor/decoder`,
    expected: 'components the tokenizers library can run',
    found: e instanceof Error ? e.message : String(e),
    hint: 'a component has a missing or mistyped field; compare with a tokenizer.json saved by `tokenizers`',
    cause: e,
  });
}

export class Tokenizer {
  private readonly hf: HfTokenizer;
  private readonly idToContent: (string | undefined)[];
  private readonly specialIds: ReadonlySet<number>;
  private chatTemplateCache?: ChatTemplate;

  /** Size of the id space: largest token id + 1 (model vocabulary and added tokens). */
  readonly vocabSize: number;
  readonly bos?: SpecialToken;
  readonly eos?: SpecialToken;
  readonly pad?: SpecialToken;
  readonly unk?: SpecialToken;
  /** Whether encode() prepends BOS / appends EOS by default (the post-processor's template). */
  readonly addsBos: boolean;
  readonly addsEos: boolean;
  /** The Jinja chat template, when the source has one. */
  readonly chatTemplate?: string;

  private constructor(
    /** The validated tokenizer.json object the engine runs (for GGUF: the converted one). */
    readonly json: TokenizerJson,
    readonly config: TokenizerConfig,
    readonly source: string,
  ) {
    // The engine checks little: a component with a malformed field fails with a TypeError at
    // construction or first use. Build it and run a probe here, so a bad file fails now, typed.
    try {
      this.hf = new HfTokenizer(json, {
        // transformers 5 decodes without the legacy " ." → "." clean-up unless the config asks.
        clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false,
      });
      speedUpBpeCache(this.hf);
      const probe = this.hf.encode(PROBE_TEXT, { add_special_tokens: true }).ids;
      if (probe.length > 0) this.hf.decode(probe, { skip_special_tokens: true });
    } catch (e) {
      throw engineError(source, e);
    }
    const ids: (string | undefined)[] = [];
    const model = json.model;
    if (model.type === 'Unigram') {
      (model.vocab as [string, number][]).forEach(([t], i) => (ids[i] = t));
    } else {
      for (const [t, i] of Object.entries(model.vocab as Record<string, number>)) ids[i] = t;
    }
    for (const t of json.added_tokens) ids[t.id] = t.content;
    this.idToContent = ids;
    this.vocabSize = ids.length;
    this.specialIds = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));

    const resolve = (field: keyof TokenizerConfig): SpecialToken | undefined => {
      const content = config[field];
      if (typeof content !== 'string') return undefined;
      const id = this.tokenToId(content);
      if (id === undefined) {
        throw new FormatError('special token is not in the vocabulary', {
          where: `${source}: ${field}`,
          expected: 'a token of the vocabulary or added_tokens',
          found: JSON.stringify(content),
        });
      }
      return { id, content };
    };
    this.bos = resolve('bos_token');
    this.eos = resolve('eos_token');
    this.pad = resolve('pad_token');
    this.unk = resolve('unk_token');
    // What the post-processor adds around a text: full = prefix + plain + suffix. Comparing the
    // two sides separately keeps bos == eos vocabularies (GPT-2's <|endoftext|>) right.
    const plain = this.hf.encode('x', { add_special_tokens: false }).ids;
    const full = this.hf.encode('x', { add_special_tokens: true }).ids;
    let k = 0;
    while (
      k + plain.length <= full.length &&
      plain.some((id: number, i: number) => full[k + i] !== id)
    )
      k++;
    const prefix = full.slice(0, k);
    const suffix = full.slice(k + plain.length);
    this.addsBos = this.bos !== undefined && prefix.includes(this.bos.id);
    this.addsEos = this.eos !== undefined && suffix.includes(this.eos.id);
    this.chatTemplate = config.chat_template;
  }

  // ---- construction -------------------------------------------------------------------------

  /**
   * From a parsed tokenizer.json and (optionally) tokenizer_config.json. As in transformers, an
   * explicit add_bos_token/add_eos_token in the config replaces the file's post-processor, and
   * the config's special tokens are matched whole in the text.
   */
  static fromTokenizerJson(
    json: unknown,
    opts: { source?: string; config?: unknown; configSource?: string } = {},
  ): Tokenizer {
    const source = opts.source ?? 'tokenizer.json';
    const valid = validateTokenizerJson(json, { source });
    const config =
      opts.config === undefined
        ? {}
        : validateTokenizerConfig(opts.config, {
            source: opts.configSource ?? 'tokenizer_config.json',
          });
    // Work on a copy: the caller's object stays untouched.
    const effective: TokenizerJson = { ...valid, added_tokens: [...valid.added_tokens] };
    const vocab =
      valid.model.type === 'Unigram' ? undefined : (valid.model.vocab as Record<string, number>);
    const idOf = (t: string): number | undefined =>
      effective.added_tokens.find((a) => a.content === t)?.id ??
      (vocab && Object.prototype.hasOwnProperty.call(vocab, t) ? vocab[t] : undefined);
    for (const field of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
      const t = config[field];
      if (typeof t !== 'string') continue;
      const id = idOf(t);
      if (id === undefined) continue; // reported by the constructor
      const existing = effective.added_tokens.findIndex((a) => a.content === t);
      if (existing >= 0) {
        effective.added_tokens[existing] = { ...effective.added_tokens[existing], special: true };
      } else {
        effective.added_tokens.push({
          id,
          content: t,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        });
      }
    }
    if (config.add_bos_token !== undefined || config.add_eos_token !== undefined) {
      const bos = typeof config.bos_token === 'string' ? idOf(config.bos_token) : undefined;
      const eos = typeof config.eos_token === 'string' ? idOf(config.eos_token) : undefined;
      effective.post_processor = templateProcessing(config, { bosId: bos, eosId: eos });
    }
    return new Tokenizer(effective, config, source);
  }

  /**
   * From a model directory: tokenizer.json (required), tokenizer_config.json and
   * chat_template.jinja (optional; the .jinja file wins over the config's chat_template, as in
   * transformers).
   */
  static async fromDirectory(dir: string): Promise<Tokenizer> {
    const tjPath = path.join(dir, 'tokenizer.json');
    const json = await readJson(tjPath, true);
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    const cfgRaw = await readJson(cfgPath, false);
    let config: unknown = cfgRaw;
    const jinjaPath = path.join(dir, 'chat_template.jinja');
    const jinja = await readFile(jinjaPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (jinja !== undefined) {
      const base = cfgRaw && typeof cfgRaw === 'object' ? (cfgRaw as Record<string, unknown>) : {};
      config = { ...base, chat_template: jinja };
    }
    return Tokenizer.fromTokenizerJson(json, {
      source: tjPath,
      config,
      configSource: cfgPath,
    });
  }

  /** From GGUF metadata (key → value, as a GGUF reader returns it). Byte-level BPE only. */
  static fromGgufMetadata(meta: GgufMetadataLike, opts: TokenizerSource): Tokenizer {
    const vocab = readGgufVocab(meta, opts);
    const { json, config } = ggufVocabToTokenizerJson(vocab, opts);
    return new Tokenizer(json, config, opts.source);
  }

  /** From an open GGUF file (src/io/gguf): its vocabulary metadata. */
  static fromGguf(file: GgufFile): Tokenizer {
    return Tokenizer.fromGgufMetadata(file.metadata, { source: file.path });
  }

  /** Opens a GGUF file, reads its vocabulary metadata and closes it (tensor data is not read). */
  static fromGgufFile(path: string): Tokenizer {
    const file = openGguf(path);
    try {
      return Tokenizer.fromGguf(file);
    } finally {
      file.close();
    }
  }

  // ---- encoding ------------------------------------------------------------------------------

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') {
      throw new ShapeError('encode expects a string', {
        where: 'Tokenizer.encode',
        expected: 'string',
        found: typeof text,
      });
    }
    try {
      return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
    } catch (e) {
      throw engineError(this.source, e);
    }
  }

  /**
   * Token ids → text. Ids without a token (e.g. padding rows of an embedding larger than the
   * vocabulary) are skipped, as in the tokenizers library; negative or fractional ids are errors.
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const list: number[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0) {
        throw new ShapeError('invalid token id', {
          where: `Tokenizer.decode: ids[${i}]`,
          expected: 'a non-negative integer',
          found: String(id),
        });
      }
      list[i] = id;
    }
    const known = list.filter((id) => this.idToContent[id] !== undefined);
    if (known.length === 0) return ''; // the engine rejects an empty list
    try {
      return this.hf.decode(known, { skip_special_tokens: opts.skipSpecialTokens ?? false });
    } catch (e) {
      throw engineError(this.source, e);
    }
  }

  /** The token (vocabulary spelling, e.g. 'Ġthe' for byte-level BPE) for an id. */
  idToToken(id: number): string | undefined {
    return this.idToContent[id];
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** All special tokens (control tokens such as <|im_end|>, and bos/eos/unk/pad), by id. */
  get specialTokens(): SpecialToken[] {
    return [...this.specialIds]
      .sort((a, b) => a - b)
      .map((id) => ({ id, content: this.idToContent[id]! }));
  }

  // ---- chat ----------------------------------------------------------------------------------

  /** Render the chat template to text (tokenize it with `encode(text, {addSpecialTokens: false})`). */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    return this.getChatTemplate().render(messages, opts);
  }

  /** The compiled chat template; NotFoundError when the source has none. */
  getChatTemplate(): ChatTemplate {
    if (this.chatTemplateCache) return this.chatTemplateCache;
    if (this.chatTemplate === undefined) {
      throw new NotFoundError('this tokenizer has no chat template', {
        where: this.source,
        expected: 'tokenizer.chat_template (GGUF) or chat_template (tokenizer_config.json)',
        found: 'none',
        hint: 'pass a template explicitly with new ChatTemplate(text, where, specialTokens)',
      });
    }
    const special: Record<string, string> = {};
    for (const f of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
      const t = this.config[f];
      if (typeof t === 'string') special[f] = t;
    }
    this.chatTemplateCache = new ChatTemplate(
      this.chatTemplate,
      `${this.source}: chat_template`,
      special,
    );
    return this.chatTemplateCache;
  }
}

/**
 * Checks that every id the tokenizer can produce has a row in a model's embedding of
 * `modelVocabSize` rows. A model may have more rows than tokens (Qwen pads to a multiple of
 * 128); fewer is a mismatch: the tokenizer belongs to another model.
 */
export function checkCompatible(
  tokenizer: Tokenizer,
  modelVocabSize: number,
  opts: { where?: string } = {},
): void {
  if (tokenizer.vocabSize > modelVocabSize) {
    throw new VocabMismatchError('tokenizer and model vocabularies do not match', {
      where: opts.where ?? tokenizer.source,
      expected: `at most ${modelVocabSize} token ids (the model's embedding rows)`,
      found: `${tokenizer.vocabSize} token ids in the tokenizer`,
      hint: 'load the tokenizer that belongs to this model (same repository or GGUF file)',
    });
  }
}

async function readJson(file: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return undefined;
      throw new NotFoundError('tokenizer file not found', {
        where: file,
        hint: 'download the model with `rl4qe pull REPO`, or load the tokenizer from the GGUF file',
      });
    }
    throw e;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FormatError('not valid JSON', {
      where: file,
      expected: 'a JSON document',
      found: e instanceof Error ? e.message : String(e),
      cause: e,
    });
  }
}
