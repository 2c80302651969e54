// The body of POST /v1/chat/completions as the official OpenAI SDKs send it, validated and turned
// into what the service does: the chat (roles and content normalised), the sampling parameters,
// how many choices, and whether to stream. What the service cannot honour is refused with a 400
// that names the field, never ignored: a client asking for logprobs, tools or a penalty would
// otherwise get an answer to a different question than it asked. Fields that cannot change the
// answer (user, metadata, store, service_tier, ...) are accepted and ignored. Unknown fields are
// refused, as OpenAI's own API does.
import { z } from 'zod';
import type { ChatMessage, GeneratorParams } from '../generators/index.js';
import { invalidField, isHttpError, type HttpError } from './errors.js';

/** The most choices one request may ask for (OpenAI allows 128; each is a full generation here). */
export const MAX_CHOICES = 16;

// null is how the SDKs spell "not set" for most parameters.
const opt = <T extends z.ZodType>(t: T) => t.nullable().optional();

const textPart = z.object({ type: z.literal('text'), text: z.string() }).strict();
const contentSchema = z.union([z.string(), z.array(z.unknown())]);

const messageSchema = z
  .object({
    role: z.string(),
    content: opt(contentSchema),
    name: z.unknown().optional(),
    tool_calls: z.unknown().optional(),
    tool_call_id: z.unknown().optional(),
    function_call: z.unknown().optional(),
    refusal: z.unknown().optional(),
    audio: z.unknown().optional(),
  })
  .strict();

const bodySchema = z
  .object({
    model: opt(z.string()),
    messages: z.array(z.unknown()).min(1),
    temperature: opt(z.number().min(0).max(2)),
    top_p: opt(z.number().gt(0).max(1)),
    /** Not OpenAI's; vLLM, llama.cpp server and Ollama accept it. */
    top_k: opt(z.number().int().positive()),
    max_tokens: opt(z.number().int().positive()),
    max_completion_tokens: opt(z.number().int().positive()),
    seed: opt(z.number().int()),
    stop: opt(z.union([z.string(), z.array(z.string()).max(16)])),
    n: opt(z.number().int().min(1).max(MAX_CHOICES)),
    stream: opt(z.boolean()),
    stream_options: opt(
      z
        .object({
          include_usage: opt(z.boolean()),
          // Random padding against side channels on OpenAI's wire; nothing to pad here.
          include_obfuscation: opt(z.boolean()),
        })
        .strict(),
    ),
    // Checked below: refused when they would change the answer.
    frequency_penalty: z.unknown().optional(),
    presence_penalty: z.unknown().optional(),
    logit_bias: z.unknown().optional(),
    logprobs: z.unknown().optional(),
    top_logprobs: z.unknown().optional(),
    response_format: z.unknown().optional(),
    tools: z.unknown().optional(),
    tool_choice: z.unknown().optional(),
    functions: z.unknown().optional(),
    function_call: z.unknown().optional(),
    audio: z.unknown().optional(),
    modalities: z.unknown().optional(),
    reasoning_effort: z.unknown().optional(),
    verbosity: z.unknown().optional(),
    web_search_options: z.unknown().optional(),
    // Accepted and ignored: they cannot change the answer.
    user: z.unknown().optional(),
    metadata: z.unknown().optional(),
    store: z.unknown().optional(),
    service_tier: z.unknown().optional(),
    safety_identifier: z.unknown().optional(),
    prompt_cache_key: z.unknown().optional(),
    prompt_cache_retention: z.unknown().optional(),
    parallel_tool_calls: z.unknown().optional(),
    prediction: z.unknown().optional(),
    // rl4qe's own: {refine: false} skips the refiner.
    rl4qe: opt(z.object({ refine: z.boolean().optional() }).strict()),
  })
  .strict();

type Body = z.infer<typeof bodySchema>;

const isSet = (v: unknown): boolean => v !== undefined && v !== null;
const nonEmpty = (v: unknown): boolean =>
  Array.isArray(v)
    ? v.length > 0
    : v !== undefined && v !== null && !(typeof v === 'object' && Object.keys(v).length === 0);

/** Parameters the service cannot honour, when set to a value that would change the answer. */
const REFUSED: { field: keyof Body; refused: (v: unknown) => boolean; why: string }[] = [
  {
    field: 'frequency_penalty',
    refused: (v) => isSet(v) && v !== 0,
    why: 'penalties are not implemented; send 0 or leave it out',
  },
  {
    field: 'presence_penalty',
    refused: (v) => isSet(v) && v !== 0,
    why: 'penalties are not implemented; send 0 or leave it out',
  },
  { field: 'logit_bias', refused: nonEmpty, why: 'logit bias is not implemented' },
  {
    field: 'logprobs',
    refused: (v) => v === true,
    why: 'log-probabilities are not returned by this server',
  },
  {
    field: 'top_logprobs',
    refused: isSet,
    why: 'log-probabilities are not returned by this server',
  },
  {
    field: 'response_format',
    refused: (v) => isSet(v) && (v as { type?: unknown }).type !== 'text',
    why: "structured output (json_object, json_schema) is not implemented; only {type: 'text'}",
  },
  { field: 'tools', refused: nonEmpty, why: 'tool calling is not implemented' },
  {
    field: 'tool_choice',
    refused: (v) => isSet(v) && v !== 'none' && v !== 'auto',
    why: 'tool calling is not implemented',
  },
  { field: 'functions', refused: nonEmpty, why: 'function calling is not implemented' },
  {
    field: 'function_call',
    refused: (v) => isSet(v) && v !== 'none' && v !== 'auto',
    why: 'function calling is not implemented',
  },
  { field: 'audio', refused: isSet, why: 'audio output is not implemented' },
  {
    field: 'modalities',
    refused: (v) => isSet(v) && !(Array.isArray(v) && v.every((m) => m === 'text')),
    why: "only the 'text' modality is served",
  },
  { field: 'reasoning_effort', refused: isSet, why: 'the served models are not reasoning models' },
  { field: 'verbosity', refused: isSet, why: 'verbosity control is not implemented' },
  { field: 'web_search_options', refused: isSet, why: 'web search is not available' },
];

/** A validated chat request, in the service's terms. */
export interface ChatCall {
  model?: string;
  messages: ChatMessage[];
  /** Index of the user message the refiner rewrites (the last one). */
  lastUser: number;
  params: GeneratorParams;
  n: number;
  stream: boolean;
  includeUsage: boolean;
  refine: boolean;
}

/** Text of a message's content: a string, or an array of text parts joined (as OpenAI does). */
function contentText(content: unknown, where: string): string | HttpError {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  const parts = content as unknown[];
  let text = '';
  for (const [i, p] of parts.entries()) {
    const r = textPart.safeParse(p);
    if (!r.success) {
      const type = (p as { type?: unknown } | null)?.type;
      return invalidField(
        `${where}.${i}`,
        typeof type === 'string' && type !== 'text'
          ? `content parts of type '${type}' are not supported: the served models read text only`
          : `expected a text part {type: 'text', text: string}`,
      );
    }
    text += r.data.text;
  }
  return text;
}

function message(raw: unknown, i: number): ChatMessage | HttpError {
  const where = `messages.${i}`;
  const r = messageSchema.safeParse(raw);
  if (!r.success) return zodError(r.error, where);
  const m = r.data;
  if (m.role === 'tool' || m.role === 'function')
    return invalidField(
      `${where}.role`,
      `role '${m.role}' is not supported: this server does no tool calling, so there is no tool result to read`,
    );
  if (isSet(m.tool_calls) || isSet(m.function_call))
    return invalidField(
      `${where}.${isSet(m.tool_calls) ? 'tool_calls' : 'function_call'}`,
      'tool calls are not supported: this server does no tool calling',
    );
  if (isSet(m.name))
    return invalidField(
      `${where}.name`,
      'participant names are not supported: the chat templates have no place for them; leave the field out',
    );
  if (isSet(m.audio)) return invalidField(`${where}.audio`, 'audio is not supported');
  // developer is the newer name of system (OpenAI's o-series and the SDKs since 2024).
  const role = m.role === 'developer' ? 'system' : m.role;
  if (role !== 'system' && role !== 'user' && role !== 'assistant')
    return invalidField(
      `${where}.role`,
      `unknown role '${m.role}'; expected system, developer, user or assistant`,
    );
  if (role !== 'assistant' && !isSet(m.content))
    return invalidField(`${where}.content`, `a ${m.role} message needs content`);
  const content = contentText(m.content, `${where}.content`);
  if (typeof content !== 'string') return content;
  return { role, content };
}

function zodError(err: z.ZodError, prefix?: string): HttpError {
  const issue = err.issues[0];
  if (issue === undefined) return invalidField(prefix ?? '(body)', 'invalid');
  const path = [...(prefix ? [prefix] : []), ...issue.path.map(String)];
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const field = [...path, key].join('.');
    return invalidField(
      field,
      'unrecognized request argument (not part of the OpenAI chat API)',
      'unknown_parameter',
    );
  }
  const field = path.join('.') || '(body)';
  return invalidField(field, issue.message);
}

/** Validates a parsed JSON body; an HttpError (400) names the first bad field. */
export function parseChatRequest(raw: unknown): ChatCall | HttpError {
  const r = bodySchema.safeParse(raw);
  if (!r.success) return zodError(r.error);
  const b = r.data;
  for (const { field, refused, why } of REFUSED)
    if (refused(b[field])) return invalidField(field, why, 'unsupported_parameter');
  const messages: ChatMessage[] = [];
  for (const [i, raw] of b.messages.entries()) {
    const m = message(raw, i);
    if (isHttpError(m)) return m;
    messages.push(m);
  }
  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0) return invalidField('messages', 'no message with role user to refine');
  if (
    isSet(b.max_tokens) &&
    isSet(b.max_completion_tokens) &&
    b.max_tokens !== b.max_completion_tokens
  )
    return invalidField(
      'max_completion_tokens',
      'max_tokens and max_completion_tokens disagree; send one of them',
    );
  if (b.stream !== true && isSet(b.stream_options))
    return invalidField('stream_options', 'stream_options needs stream: true');
  const params: GeneratorParams = {};
  // Only what the client set: an unset field must leave the generator's default in force.
  if (isSet(b.temperature)) params.temperature = b.temperature ?? undefined;
  if (isSet(b.top_p)) params.topP = b.top_p ?? undefined;
  if (isSet(b.top_k)) params.topK = b.top_k ?? undefined;
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  if (isSet(maxTokens)) params.maxTokens = maxTokens ?? undefined;
  if (isSet(b.seed)) params.seed = b.seed ?? undefined;
  if (isSet(b.stop)) params.stop = typeof b.stop === 'string' ? [b.stop] : (b.stop ?? undefined);
  return {
    ...(isSet(b.model) ? { model: b.model ?? undefined } : {}),
    messages,
    lastUser,
    params,
    n: b.n ?? 1,
    stream: b.stream === true,
    includeUsage: b.stream_options?.include_usage === true,
    refine: b.rl4qe?.refine !== false,
  };
}
