// The refiner's prompts in evaluation, fitted as training fitted them: an over-long query loses its
// middle (refiner.overlong 'truncate-middle') or is given up ('skip') at refiner.maxPromptTokens,
// through the trainer's own helper (train/prompt.ts fitQuery). Only the tokenizer and the chat
// template are needed (loaded here from the refiner's files, as the local engine loads them), so
// a fully cached re-run still loads no model.
import { statSync } from 'node:fs';
import path from 'node:path';
import { chatOf, type GenerationRequest } from '../generators/index.js';
import { ChatTemplate, Tokenizer } from '../tokenizer/index.js';
import { configKeys } from '../train/config.js';
import {
  fitQuery,
  tokenizePrompt,
  type FitOptions,
  type FittedPrompt,
  type PromptTokenizer,
} from '../train/prompt.js';

export interface PromptTokenizerSource {
  /** The refiner model: GGUF file or Hugging Face directory. */
  model: string;
  /** A tokenizer directory or GGUF file overriding the model's. */
  tokenizer?: string;
  /** Chat template text overriding the tokenizer's. */
  chatTemplate?: string;
}

/**
 * The tokenizer and chat template the local engine renders the refiner's requests with
 * (generators/local.ts: the tokenizer source, then the given template, else the tokenizer's).
 */
export async function loadPromptTokenizer(src: PromptTokenizerSource): Promise<PromptTokenizer> {
  const tokSrc = path.resolve(src.tokenizer ?? src.model);
  const tokenizer = statSync(tokSrc).isDirectory()
    ? await Tokenizer.fromDirectory(tokSrc)
    : Tokenizer.fromGgufFile(tokSrc);
  if (src.chatTemplate !== undefined) {
    const special: Record<string, string> = {};
    for (const f of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
      const t = tokenizer.config[f];
      if (typeof t === 'string') special[f] = t;
    }
    return {
      tokenizer,
      chatTemplate: new ChatTemplate(src.chatTemplate, 'refiner chatTemplate', special),
    };
  }
  return {
    tokenizer,
    ...(tokenizer.chatTemplate !== undefined ? { chatTemplate: tokenizer.getChatTemplate() } : {}),
  };
}

let defaults: FitOptions | undefined;

/** The trainer's defaults of refiner.maxPromptTokens and refiner.overlong (train/config.ts). */
export function defaultFitOptions(): FitOptions {
  if (!defaults) {
    const keys = configKeys();
    const get = (k: string): unknown => {
      const d = keys.find((c) => c.key === k)?.default;
      return d === undefined ? undefined : JSON.parse(d);
    };
    const max = get('refiner.maxPromptTokens');
    const overlong = get('refiner.overlong');
    defaults = {
      maxPromptTokens: typeof max === 'number' ? max : 512,
      overlong: overlong === 'skip' ? 'skip' : 'truncate-middle',
    };
  }
  return defaults;
}

/** What refining one query looks like once fitted. */
export type FittedRequest =
  | { ok: true; request: GenerationRequest; truncated: boolean; promptTokens: number }
  | { ok: false; message: string };

/**
 * The refiner request of a query within the fit options: `make` builds the request of a
 * (possibly cut) query; the request is tokenised as the local engine will tokenise it.
 */
export function fitRefinerRequest(
  query: string,
  make: (query: string) => GenerationRequest,
  tok: PromptTokenizer,
  fit: FitOptions,
  format: string,
): FittedRequest {
  const render = (q: string): { ids: number[]; text: string } => {
    const r = make(q);
    return tokenizePrompt(
      r.prompt !== undefined
        ? { kind: 'completion', prompt: r.prompt }
        : { kind: 'chat', messages: chatOf(r) },
      tok,
      { where: 'refiner.format', format },
    );
  };
  const p: FittedPrompt | undefined = fitQuery(query, render, fit);
  if (!p) {
    const n = render(query).ids.length;
    return {
      ok: false,
      message:
        fit.overlong === 'skip'
          ? `prompt_too_long: the refiner prompt has ${n} tokens, over maxPromptTokens ${fit.maxPromptTokens} (overlong: skip)`
          : `prompt_too_long: the refiner template alone is longer than maxPromptTokens ${fit.maxPromptTokens}`,
    };
  }
  return {
    ok: true,
    request: p.truncated ? make(p.query) : make(query),
    truncated: p.truncated,
    promptTokens: p.ids.length,
  };
}
