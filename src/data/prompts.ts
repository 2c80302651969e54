// Prompt formats: what the refiner sees, what the generator sees, and how to read the refiner's
// output. Templates are plain data (strings with {placeholders}) so configs can override them.
//
// Sources. The paper (Yuan et al. 2025) describes the refiner as rewriting/expanding the user's
// query for a downstream code generator and the generator as answering in <think>/<answer> tags.
// The exact strings below are the ones in the authors' released code (github.com/davidyuan666/
// RL4QE): the refiner template from models/qwen_lora.py (commit c8f85e97…), whose output is read
// as the text after the last "Enhanced query:"; the generator system prompt from llm/deepseek.py
// (a later revision of that file), with the refined query as the only user message.

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The authors' refiner template (completion style; the model continues after the colon). */
export const PAPER_REFINER_TEMPLATE =
  'You are a query enhancement assistant. Your task is to improve the given query to make it ' +
  'more specific and detailed for code generation.\nOriginal query: {query}\nEnhanced query:';

/** The marker after which the authors read the refinement. */
export const PAPER_REFINER_MARKER = 'Enhanced query:';

/** The refiner's instruction as a chat system message (same words as the paper template). */
export const REFINER_SYSTEM =
  'You are a query enhancement assistant. Your task is to improve the given query to make it ' +
  'more specific and detailed for code generation.';

/**
 * A DS-1000-aware refiner instruction (rl4qe's own, not the paper's): DS-1000 queries carry a
 * code scaffold whose variable names the generated code must keep.
 */
export const REFINER_SYSTEM_DS1000 =
  REFINER_SYSTEM +
  ' Keep every variable, function and column name of the original query and its code unchanged;' +
  ' state the expected input and output precisely; do not write the solution code itself.';

/** The authors' generator system prompt (answers in <think> and <answer> tags). */
export const PAPER_GENERATOR_SYSTEM = `You are a coding assistant that helps generate code based on user queries.
For each query, you should:
1. Think through the solution step by step
2. Generate appropriate code
3. Format your response with the following structure:
   - Thinking steps wrapped in <think></think> tags
   - Code solution wrapped in <answer></answer> tags

Example format:
<think>
1. First, we need to...
2. Then, we should...
3. Finally, we...
</think>
<answer>
[Your code solution here]
</answer>`;

/** A plain chat generator instruction (rl4qe's own). */
export const PLAIN_GENERATOR_SYSTEM =
  'You are an expert Python programmer. Write Python code that solves the problem. Reply with ' +
  'the code only, in a single ```python code block, without explanations.';

/** Fills {name} placeholders; unknown placeholders are left as they are. */
export function fillTemplate(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? vars[k]! : m));
}

export type RefinerFormat =
  /** The paper's template as one completion prompt. */
  | 'paper'
  /** The paper's template as a single user message (for chat-tuned refiners). */
  | 'paper-chat'
  /** System message = the paper's instruction, user message = the query. */
  | 'chat'
  /** Like 'chat' with the DS-1000-aware instruction. */
  | 'chat-ds1000';

export type RefinerPrompt =
  { kind: 'completion'; prompt: string } | { kind: 'chat'; messages: PromptMessage[] };

export function refinerPrompt(
  query: string,
  opts: { format?: RefinerFormat; template?: string } = {},
): RefinerPrompt {
  const format = opts.format ?? 'paper';
  const filled = fillTemplate(opts.template ?? PAPER_REFINER_TEMPLATE, { query });
  switch (format) {
    case 'paper':
      return { kind: 'completion', prompt: filled };
    case 'paper-chat':
      return { kind: 'chat', messages: [{ role: 'user', content: filled }] };
    case 'chat':
      return {
        kind: 'chat',
        messages: [
          { role: 'system', content: REFINER_SYSTEM },
          { role: 'user', content: query },
        ],
      };
    case 'chat-ds1000':
      return {
        kind: 'chat',
        messages: [
          { role: 'system', content: REFINER_SYSTEM_DS1000 },
          { role: 'user', content: query },
        ],
      };
  }
}

/**
 * The refinement in a refiner's output. As the authors: the text after the last
 * "Enhanced query:" (if the model repeats it), trimmed; chat special tokens are not expected here
 * (the decoder strips them).
 */
export function extractRefinement(output: string): string {
  const i = output.lastIndexOf(PAPER_REFINER_MARKER);
  return (i >= 0 ? output.slice(i + PAPER_REFINER_MARKER.length) : output).trim();
}

/** What the generator is given. */
export type GeneratorInput =
  /** The refined query alone (the paper). */
  | 'refined'
  /** The original problem (with its code scaffold) plus the refinement. */
  | 'original+refined'
  /** The original problem alone (the baseline of paired evaluation). */
  | 'original';

export type GeneratorFormat =
  /** The paper: system prompt with <think>/<answer>, user = the query text. */
  | 'paper'
  /** A plain chat: code in one fenced block. */
  | 'chat'
  /**
   * DS-1000 completion: the prompt ends with `BEGIN SOLUTION\n<code>` and the model continues;
   * generation stops at DS1000 stop strings.
   */
  | 'ds1000-completion';

export type GeneratorPrompt =
  | { kind: 'chat'; messages: PromptMessage[] }
  | { kind: 'completion'; prompt: string; stop: string[] };

/** Stop strings for completion-style DS-1000 generation. */
export const DS1000_STOP = ['</code>', '# SOLUTION END', 'END SOLUTION'];

/** The header put before the refinement when the generator sees both. */
export const REFINEMENT_HEADER = 'Clarified requirements:';

/** The query text the generator sees. */
export function generatorQuery(
  original: string,
  refined: string | undefined,
  input: GeneratorInput,
): string {
  if (input === 'original' || refined === undefined) return original;
  if (input === 'refined') return refined;
  return `${original.trimEnd()}\n\n${REFINEMENT_HEADER}\n${refined.trim()}\n`;
}

export function generatorPrompt(opts: {
  /** The original query (for DS-1000: the full prompt with its scaffold). */
  original: string;
  /** The refiner's output (already passed through extractRefinement). */
  refined?: string;
  input?: GeneratorInput;
  format?: GeneratorFormat;
  /** Overrides the system prompt of the chat formats. */
  system?: string;
}): GeneratorPrompt {
  const input = opts.input ?? 'refined';
  const format = opts.format ?? 'paper';
  if (format === 'ds1000-completion') {
    // The DS-1000 prompt must stay last, since its trailing scaffold is what the model continues.
    // With a refinement, it goes first; with the refinement alone, the completion is opened
    // with the same `<code>` cue.
    let prompt: string;
    if (input === 'original' || opts.refined === undefined) prompt = opts.original;
    else if (input === 'refined') prompt = `${opts.refined.trim()}\nBEGIN SOLUTION\n<code>\n`;
    else prompt = `${REFINEMENT_HEADER}\n${opts.refined.trim()}\n\n${opts.original}`;
    return { kind: 'completion', prompt, stop: [...DS1000_STOP] };
  }
  const system =
    opts.system ?? (format === 'paper' ? PAPER_GENERATOR_SYSTEM : PLAIN_GENERATOR_SYSTEM);
  return {
    kind: 'chat',
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: generatorQuery(opts.original, opts.refined, input) },
    ],
  };
}
