// Refiner prompts as token ids, and the fitting of an over-long query, with a tokenizer alone (no
// model): the trainer (train/refiner.ts) and evaluation (eval/evaluate.ts) use this one copy, so
// a query reaches the refiner cut the same way in training and in evaluation.
//
// Tokenisation is the local engine's (generators/local.ts promptIds): a completion prompt is
// encoded with the tokenizer's own special tokens; chat messages go through the chat template
// with a generation prompt and are encoded without special tokens (the template writes BOS where
// the model wants it).
import type { ChatTemplate, Tokenizer } from '../tokenizer/index.js';
import type { PromptMessage } from '../data/prompts.js';
import { ConfigError } from '../util/errors.js';

/** Marker put where an over-long query lost its middle. */
export const TRUNCATION_MARKER = '\n[…]\n';

/** What the refiner prompt is made of before tokenisation. */
export type PromptInput =
  { kind: 'completion'; prompt: string } | { kind: 'chat'; messages: readonly PromptMessage[] };

/** The tokenizer and chat template a prompt is rendered with. */
export interface PromptTokenizer {
  tokenizer: Tokenizer;
  /** Undefined: the model has none (chat prompts are then refused). */
  chatTemplate?: ChatTemplate | undefined;
}

export interface RenderedPrompt {
  ids: number[];
  /** The prompt as text (template applied). */
  text: string;
}

export interface FitOptions {
  maxPromptTokens: number;
  /** Cut the middle of the query, or give up (undefined) when the prompt is too long. */
  overlong: 'truncate-middle' | 'skip';
}

export interface FittedPrompt extends RenderedPrompt {
  /** Whether the query's middle was cut to fit maxPromptTokens. */
  truncated: boolean;
  /** The query the prompt was rendered from (the original, or its cut form). */
  query: string;
}

/**
 * Token ids of a prompt, as the local engine tokenises it. `where` and `format` (the setting and
 * the format asked for) are named in the error of a chat prompt for a model without a template.
 */
export function tokenizePrompt(
  p: PromptInput,
  tok: PromptTokenizer,
  ctx: { where?: string; format?: string } = {},
): RenderedPrompt {
  if (p.kind === 'completion') return { ids: tok.tokenizer.encode(p.prompt), text: p.prompt };
  if (!tok.chatTemplate) {
    throw new ConfigError('the refiner model has no chat template', {
      where: ctx.where ?? 'refiner.format',
      expected: "a completion format ('paper') for a model without a chat template",
      found: ctx.format ?? 'a chat format',
      hint: 'set refiner.format: paper, or refiner.chatTemplate',
    });
  }
  const text = tok.chatTemplate.render(
    p.messages.map((m) => ({ role: m.role, content: m.content })),
    { addGenerationPrompt: true },
  );
  return { ids: tok.tokenizer.encode(text, { addSpecialTokens: false }), text };
}

/**
 * The prompt of a query within maxPromptTokens. An over-long prompt is fitted by cutting the
 * middle of the QUERY (the template's instruction and the cue that ends it are kept: the authors'
 * code truncated the whole prompt at 512 tokens, which cut the cue off), or undefined when
 * overlong is 'skip' or when the template alone is longer than maxPromptTokens.
 * `render` turns a (possibly cut) query into the full prompt.
 */
export function fitQuery(
  query: string,
  render: (query: string) => RenderedPrompt,
  o: FitOptions,
): FittedPrompt | undefined {
  const max = o.maxPromptTokens;
  const full = render(query);
  if (full.ids.length <= max) return { ...full, truncated: false, query };
  if (o.overlong === 'skip') return undefined;
  // Binary search on how many query characters to keep (half from the head, half from the
  // tail): the token count is monotone in the kept length up to tokenizer merges at the seam.
  const q = query;
  let lo = 0;
  let hi = q.length;
  let best: FittedPrompt | undefined;
  while (lo <= hi) {
    const keep = Math.floor((lo + hi) / 2);
    const head = Math.ceil(keep / 2);
    const cut = q.slice(0, head) + TRUNCATION_MARKER + q.slice(q.length - (keep - head));
    const r = render(cut);
    if (r.ids.length <= max) {
      best = { ...r, truncated: true, query: cut };
      lo = keep + 1;
    } else hi = keep - 1;
  }
  return best; // undefined: the template alone is longer than maxPromptTokens
}
