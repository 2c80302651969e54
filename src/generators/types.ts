// The one generator contract. A batch of requests goes in; for each request exactly one result
// comes out, in the same order: a Completion (text the generator wrote) or a GenerationFailure
// (a typed reason why there is no text). A failure is never text: the trainer drops failed samples
// from the update and counts them, so an API error string can never be scored as code (the bug of
// the paper's released code). Generators are transport only: prompt formats and code extraction
// live in src/data.

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface GeneratorParams {
  /** 0 = greedy. Default: the backend's default (OpenAI: 1). */
  temperature?: number;
  topP?: number;
  /** Not part of the OpenAI API; sent as `top_k` (vLLM, llama.cpp server and Ollama accept it). */
  topK?: number;
  /** Upper bound on generated tokens. */
  maxTokens?: number;
  /** Seed for sampling where the backend supports it. Part of the cache key. */
  seed?: number;
  /** Generation stops before any of these strings (not included in the text). */
  stop?: string[];
}

/** One request. Give `messages` (chat, with an optional `system` prompt) or `prompt` (raw completion). */
export interface GenerationRequest {
  /** Caller's id, echoed in the result (e.g. `problem42/sample3`). Not part of the cache key. */
  id: string;
  system?: string;
  messages?: ChatMessage[];
  prompt?: string;
  params?: GeneratorParams;
}

export type FinishReason = 'stop' | 'length' | 'content_filter' | 'other';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface Completion {
  ok: true;
  id: string;
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  /** Wall time of this request including retries (a cache hit: the lookup time). */
  latencyMs: number;
  /** Money spent on this request in USD (0 for a cache hit, a local backend or an unpriced model). */
  costUsd: number;
  /** True when the answer came from the cache and no generator was called. */
  cached: boolean;
  /** HTTP attempts made (1 = no retry; 0 = cache hit). */
  attempts: number;
}

export type FailureKind =
  /** 429 after every retry (or a Retry-After longer than allowed). */
  | 'rate_limited'
  /** No answer within the per-request timeout, after every retry. */
  | 'timeout'
  /** 5xx after every retry. */
  | 'server_error'
  /** The server answered, but not with a usable completion (non-JSON, truncated, no text). */
  | 'bad_response'
  /** The run's budget cap is reached: this request was not sent. */
  | 'budget_exceeded'
  /** Connection refused, reset, DNS failure... after every retry. */
  | 'network'
  /** 401/403: missing or wrong API key. */
  | 'auth'
  /** 404: unknown model or wrong base URL / path. */
  | 'not_found'
  /** 400/422 or an invalid request object (e.g. both `messages` and `prompt`). */
  | 'bad_request'
  /** The caller aborted (AbortSignal) or the generator was disposed. */
  | 'aborted'
  /** A local backend failed (model error, context overflow...). */
  | 'backend_error';

export interface GenerationFailure {
  ok: false;
  id: string;
  kind: FailureKind;
  /** Names the backend, the request and the cause. */
  message: string;
  /** What to do about it. */
  hint?: string;
  /** Attempts made (0 when nothing was sent, e.g. budget_exceeded). */
  attempts: number;
  /** HTTP status of the last attempt, when there was one. */
  status?: number;
}

export type GenerationResult = Completion | GenerationFailure;

export interface GeneratorRequestOptions {
  /** Aborts every request still pending; they come back as `aborted` failures. */
  signal?: AbortSignal;
}

/** What identifies a generator's answers for the cache: same identity + same request ⇒ same answer. */
export interface GeneratorIdentity {
  /** Backend kind and where it is: `openai:http://host/v1`, `llama.cpp`, `local`. */
  backend: string;
  /** Model name or file digest. */
  model: string;
  /** Sampling defaults the backend applies to requests that leave a parameter unset (they change answers). */
  params?: GeneratorParams;
  /**
   * The temperature the backend uses when neither the request nor `params` sets one (local
   * engine and llama.cpp: 0, greedy). Undefined: not known (an HTTP server's own default, OpenAI
   * 1), so such a request counts as sampled. Not part of the cache key.
   */
  defaultTemperature?: number;
}

export interface Generator {
  readonly identity: GeneratorIdentity;
  /**
   * One result per request, same order. Never rejects for a per-request problem (those are
   * failures); rejects only for programming errors.
   */
  generate(
    requests: readonly GenerationRequest[],
    opts?: GeneratorRequestOptions,
  ): Promise<GenerationResult[]>;
  /** Frees models, contexts and sockets. Idempotent. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function isCompletion(r: GenerationResult): r is Completion {
  return r.ok;
}

export interface ResultSummary {
  completions: number;
  failures: number;
  cached: number;
  byKind: Partial<Record<FailureKind, number>>;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** Counts for logs and metrics: failures per kind, tokens, money, cache hits. */
export function summarizeResults(results: readonly GenerationResult[]): ResultSummary {
  const s: ResultSummary = {
    completions: 0,
    failures: 0,
    cached: 0,
    byKind: {},
    promptTokens: 0,
    completionTokens: 0,
    costUsd: 0,
  };
  for (const r of results) {
    if (r.ok) {
      s.completions++;
      if (r.cached) s.cached++;
      s.promptTokens += r.usage.promptTokens;
      s.completionTokens += r.usage.completionTokens;
      s.costUsd += r.costUsd;
    } else {
      s.failures++;
      s.byKind[r.kind] = (s.byKind[r.kind] ?? 0) + 1;
    }
  }
  return s;
}

/** Checks the shape rules the type cannot express. Returns a reason, or undefined when valid. */
export function requestProblem(r: GenerationRequest): string | undefined {
  const hasMessages = r.messages !== undefined;
  const hasPrompt = r.prompt !== undefined;
  if (hasMessages === hasPrompt) return 'give exactly one of `messages` (chat) or `prompt` (raw)';
  if (hasPrompt && r.system !== undefined)
    return '`system` needs `messages`: a raw `prompt` has no system slot (put it in the prompt)';
  if (hasMessages && r.messages!.length === 0) return '`messages` is empty';
  const p = r.params ?? {};
  if (p.maxTokens !== undefined && !(Number.isInteger(p.maxTokens) && p.maxTokens > 0))
    return `params.maxTokens must be a positive integer, found ${p.maxTokens}`;
  if (p.temperature !== undefined && !(p.temperature >= 0))
    return `params.temperature must be >= 0, found ${p.temperature}`;
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1))
    return `params.topP must be in (0, 1], found ${p.topP}`;
  return undefined;
}

/**
 * True when a request asks for a random sample nobody can reproduce: a temperature above 0 (or
 * the backend's unknown default) and no seed. The cache neither replays nor stores such answers,
 * so every such request gets a fresh sample.
 */
export function isUnseededSample(identity: GeneratorIdentity, r: GenerationRequest): boolean {
  const seed = r.params?.seed ?? identity.params?.seed;
  if (seed !== undefined) return false;
  const t = r.params?.temperature ?? identity.params?.temperature ?? identity.defaultTemperature;
  return t === undefined || t > 0;
}

/** The full chat a request stands for (system prompt first). */
export function chatOf(r: GenerationRequest): ChatMessage[] {
  const msgs = r.messages ?? [];
  return r.system !== undefined ? [{ role: 'system', content: r.system }, ...msgs] : msgs;
}
