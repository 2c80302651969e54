// Chat templates: the model's Jinja template rendered with @huggingface/jinja (the maintained
// JavaScript Jinja that transformers.js uses for exactly this), with the variables transformers'
// apply_chat_template passes: messages, tools, documents, add_generation_prompt and the special
// tokens map (bos_token, eos_token, unk_token, pad_token as strings), plus caller extras.
// @huggingface/jinja already applies trim_blocks/lstrip_blocks and provides raise_exception and
// strftime_now, like transformers' sandboxed environment.

import { Template } from '@huggingface/jinja';
import { FormatError, ConfigError } from '../util/errors.js';

export interface ChatMessage {
  role: string;
  content: string;
  /** Extra fields (tool_calls, name, ...) are passed to the template as they are. */
  [field: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so the model continues as the assistant (default false). */
  addGenerationPrompt?: boolean;
  /** Tool schemas (JSON), passed as `tools`. */
  tools?: unknown[];
  /** Documents for RAG templates, passed as `documents`. */
  documents?: unknown[];
  /** More template variables; they override the special tokens, as in transformers. */
  extra?: Record<string, unknown>;
}

/** A compiled chat template. Compile once, render many times. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    /** Where the template came from (file and field), for error messages. */
    readonly where: string,
    /** Special tokens by name (bos_token, eos_token, ...), as transformers' special_tokens_map. */
    private readonly specialTokens: Readonly<Record<string, string>> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new FormatError('chat template does not parse', {
        where,
        expected: 'a Jinja template @huggingface/jinja can parse',
        found: e instanceof Error ? e.message : String(e),
        hint: 'pass a corrected template (tokenizer_config.json chat_template) or override it',
        cause: e,
      });
    }
  }

  render(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (!Array.isArray(messages)) {
      throw new ConfigError('chat messages must be an array', {
        where: 'ChatTemplate.render',
        expected: 'an array of {role, content}',
        found: typeof messages,
      });
    }
    messages.forEach((m, i) => {
      if (typeof m?.role !== 'string' || typeof m?.content !== 'string') {
        throw new ConfigError('invalid chat message', {
          where: `ChatTemplate.render: messages[${i}]`,
          expected: '{role: string, content: string}',
          found: JSON.stringify(m)?.slice(0, 200) ?? String(m),
        });
      }
    });
    const vars: Record<string, unknown> = {
      ...this.specialTokens,
      ...opts.extra,
      // Deep copy so a template that mutates its input cannot change the caller's messages.
      messages: structuredClone(messages),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    // transformers passes tools/documents as None when absent, so `tools is defined` is true and
    // `tools is not none` false (Llama 3.1-style templates test exactly that): pass null, not
    // undefined.
    vars.tools = opts.tools ?? null;
    vars.documents = opts.documents ?? null;
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new FormatError('chat template failed to render', {
        where: this.where,
        expected: 'the template to render these messages',
        found: e instanceof Error ? e.message : String(e),
        hint: 'the template may require roles in a fixed order (e.g. user/assistant alternation) or raise on this input',
        cause: e,
      });
    }
  }
}
