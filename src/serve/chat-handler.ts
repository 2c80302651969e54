// POST /v1/chat/completions: refine the last user message, generate `n` answers from the refined
// chat, answer as an OpenAI chat.completion — or, with `stream: true`, as server-sent events of
// chat.completion.chunk objects ending in `data: [DONE]`, with a final usage chunk when
// `stream_options.include_usage` is set.
//
// The generators return whole completions, not tokens, so a stream is written once the answer is
// there: the role chunk, one content chunk and the finish chunk per choice. Failures are known
// before anything is written and so keep their HTTP status (an SDK raises them as API errors,
// the same as without streaming).
import type {
  Completion,
  GenerationRequest,
  GenerationResult,
  Generator,
} from '../generators/index.js';
import type { ChatCall } from './chat-request.js';
import { parseChatRequest } from './chat-request.js';
import { failureError, httpError, isHttpError, sendError, type HttpError } from './errors.js';
import { readJson, type ServeContext } from './middleware.js';
import type { Refiner, RefineResult } from './refiner.js';

export interface ChatHandlerOptions {
  refiner: Refiner;
  generator: Generator;
  modelId: string;
}

type RefinementStatus = 'refined' | 'skipped' | 'empty' | 'failed';
type Refinement = { status: RefinementStatus; error?: string } & Partial<RefineResult['metadata']>;

const MAX_HEADER_CHARS = 4096;

/** The refinement as a header value: percent-encoded (headers cannot hold newlines), truncated. */
export function headerValue(s: string): string {
  const enc = encodeURIComponent(s);
  return enc.length <= MAX_HEADER_CHARS
    ? enc
    : enc.slice(0, MAX_HEADER_CHARS).replace(/%[0-9A-F]?$/i, '');
}

/**
 * Refines `original` unless the client opted out. A failed or empty refinement falls back to the
 * original query (the service still answers, and says so); only the deadline is an error.
 */
async function refineStep(
  c: ServeContext,
  refiner: Refiner,
  original: string,
  wanted: boolean,
): Promise<{ refined: string; refinement: Refinement } | HttpError> {
  if (!wanted) return { refined: original, refinement: { status: 'skipped' } };
  const d = c.get('deadline');
  const r = await refiner.refine(original, { signal: d.signal });
  if (d.timedOut())
    return failureError(
      { ok: false, id: 'refine', kind: 'timeout', message: '', attempts: 0 },
      'refiner',
      { timedOut: true, ms: d.ms },
    );
  if (!r.ok)
    return {
      refined: original,
      refinement: { status: 'failed', error: r.failure.message, ...r.metadata },
    };
  if (r.refined === '')
    return { refined: original, refinement: { status: 'empty', ...r.metadata } };
  return { refined: r.refined, refinement: { status: 'refined', ...r.metadata } };
}

/**
 * The generator requests for n choices. A greedy request has one answer, so it is generated once
 * and repeated; sampled choices are separate requests (seed + i when a seed is given, so the
 * choices differ and choice 0 equals the same request with n = 1).
 */
function choiceRequests(
  generator: Generator,
  call: ChatCall,
  request: GenerationRequest,
): GenerationRequest[] {
  const id = generator.identity;
  const temperature = call.params.temperature ?? id.params?.temperature ?? id.defaultTemperature;
  if (call.n === 1 || temperature === 0) return [request];
  return Array.from({ length: call.n }, (_, i) => ({
    ...request,
    id: `${request.id}/${i}`,
    params: {
      ...request.params,
      ...(call.params.seed !== undefined ? { seed: call.params.seed + i } : {}),
    },
  }));
}

function finishReason(c: Completion): 'stop' | 'length' | 'content_filter' {
  return c.finishReason === 'other' ? 'stop' : c.finishReason;
}

export async function handleChat(c: ServeContext, o: ChatHandlerOptions): Promise<Response> {
  const raw = await readJson(c);
  if (isHttpError(raw)) return sendError(c, raw);
  const call = parseChatRequest(raw.body);
  if (isHttpError(call)) return sendError(c, call);
  if (call.model !== undefined && call.model !== o.modelId)
    return sendError(
      c,
      httpError(
        404,
        `model '${call.model}' not found; this server serves '${o.modelId}' (GET /v1/models)`,
        'invalid_request_error',
        'model_not_found',
        'model',
      ),
    );
  const original = call.messages[call.lastUser]?.content ?? '';
  const step = await refineStep(c, o.refiner, original, call.refine);
  if (isHttpError(step)) return sendError(c, step);
  const { refined, refinement } = step;

  // The refined query replaces the last user message, as in the paper.
  const request: GenerationRequest = {
    id: c.get('requestId'),
    messages: call.messages.map((m, i) => (i === call.lastUser ? { ...m, content: refined } : m)),
    params: call.params,
  };
  const sent = choiceRequests(o.generator, call, request);
  const d = c.get('deadline');
  const results = await o.generator.generate(sent, { signal: d.signal });
  const failed = results.find((g): g is Exclude<GenerationResult, Completion> => !g.ok);
  const done = results.filter((g): g is Completion => g.ok);
  c.set('logExtra', {
    refinement: refinement.status,
    refineMs: refinement.latencyMs !== undefined ? Math.round(refinement.latencyMs) : undefined,
    genOk: failed === undefined,
    genKind: failed?.kind,
    genMs: done.length > 0 ? Math.round(Math.max(...done.map((g) => g.latencyMs))) : undefined,
    cached: done.length > 0 ? done.every((g) => g.cached) : undefined,
    choices: call.n,
  });
  c.header('x-rl4qe-refinement-status', refinement.status);
  c.header('x-rl4qe-refined-query', headerValue(refined));
  if (failed !== undefined)
    return sendError(c, failureError(failed, 'generator', { timedOut: d.timedOut(), ms: d.ms }));
  // n copies of one greedy answer, or one answer per choice.
  const choices = Array.from({ length: call.n }, (_, i) => done[done.length === 1 ? 0 : i]);
  const answers = choices.filter((g): g is Completion => g !== undefined);
  const promptTokens = done[0]?.usage.promptTokens ?? 0;
  const completionTokens = answers.reduce((n, g) => n + g.usage.completionTokens, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
  const rl4qe = {
    original_query: original,
    refined_query: refined,
    refinement,
    generator_cached: done.every((g) => g.cached),
  };
  const head = {
    id: `chatcmpl-${c.get('requestId')}`,
    created: Math.floor(Date.now() / 1000),
    model: o.modelId,
    system_fingerprint: null,
  };
  if (!call.stream) return c.json(completionBody(head, answers, usage, rl4qe));
  return c.body(sseBody(head, answers, call.includeUsage ? usage : undefined, rl4qe), 200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
  });
}

/** A chat.completion object for these answers. */
function completionBody(
  head: Record<string, unknown>,
  answers: Completion[],
  usage: Record<string, number>,
  rl4qe: Record<string, unknown>,
): Record<string, unknown> {
  return {
    ...head,
    object: 'chat.completion',
    choices: answers.map((g, index) => ({
      index,
      message: { role: 'assistant', content: g.text, refusal: null },
      logprobs: null,
      finish_reason: finishReason(g),
    })),
    usage,
    rl4qe,
  };
}

/** The chunks OpenAI streams for these answers, as server-sent events. */
function sseBody(
  head: Record<string, unknown>,
  answers: Completion[],
  usage: Record<string, number> | undefined,
  rl4qe: Record<string, unknown>,
): string {
  // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
  const base = { ...head, object: 'chat.completion.chunk', ...(usage ? { usage: null } : {}) };
  const chunk = (index: number, delta: Record<string, unknown>, finish: string | null) => ({
    ...base,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
  });
  const events: unknown[] = [];
  answers.forEach((g, i) => {
    events.push(chunk(i, { role: 'assistant', content: '', refusal: null }, null));
    if (g.text !== '') events.push(chunk(i, { content: g.text }, null));
    // rl4qe's fields ride on the last chunk of the last choice.
    events.push({
      ...chunk(i, {}, finishReason(g)),
      ...(i === answers.length - 1 ? { rl4qe } : {}),
    });
  });
  if (usage) events.push({ ...base, choices: [], usage });
  return events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';
}
