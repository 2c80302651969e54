// OpenAI-compatible HTTP backend: DeepSeek, OpenAI, vLLM, SGLang, Ollama, llama.cpp server, or
// `rl4qe serve` itself. Chat requests go to {baseUrl}/chat/completions, raw prompts to
// {baseUrl}/completions. Node's built-in fetch (undici): no dependency, AbortSignal timeouts.
//
// Per request: reserve the worst-case cost in the budget, then attempt up to 1 + maxRetries times;
// 429, 408, 5xx, network errors, timeouts and unusable bodies are retried with full-jitter backoff
// that honours Retry-After; everything else fails at once with a typed failure that names the
// backend, the request and what to do.
import { z } from 'zod';
import { ConfigError, NetworkError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { Rng } from '../util/rng.js';
import {
  Budget,
  costUsd,
  estimatePromptTokens,
  priceFor,
  type ModelPrice,
  type PriceTable,
} from './cost.js';
import { Limiter } from './limiter.js';
import {
  backoffDelayMs,
  defaultRetryPolicy,
  parseRetryAfter,
  sleep,
  type RetryPolicy,
} from './retry.js';
import {
  chatOf,
  requestProblem,
  type Completion,
  type FailureKind,
  type FinishReason,
  type GeneratorRequestOptions,
  type GenerationFailure,
  type GenerationRequest,
  type GenerationResult,
  type Generator,
  type GeneratorIdentity,
  type GeneratorParams,
} from './types.js';

const log = createLogger('generators.http');

/** Where the base URL comes from when none is given, as in the official OpenAI SDKs. */
export const OPENAI_BASE_URL_ENV = 'OPENAI_BASE_URL';
export const OPENAI_API_KEY_ENV = 'OPENAI_API_KEY';
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

export interface OpenAIGeneratorOptions {
  /**
   * Base URL including the API version path, e.g. `https://api.deepseek.com/v1`,
   * `http://127.0.0.1:8431/v1`. Default: $OPENAI_BASE_URL, else https://api.openai.com/v1 (as the
   * OpenAI SDKs do).
   */
  baseUrl?: string;
  model: string;
  /** Name of the environment variable holding the API key (e.g. `DEEPSEEK_API_KEY`). Required to be set when given. */
  apiKeyEnv?: string;
  /**
   * The key itself (tests, embedding). Prefer apiKeyEnv: keys in config files leak. With neither,
   * $OPENAI_API_KEY is sent when it is set (as the OpenAI SDKs do), else no key.
   */
  apiKey?: string;
  /** Per-attempt timeout covering connect, headers and body. Default 120 s. */
  timeoutMs?: number;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** USD per million tokens per model. */
  prices?: PriceTable;
  /** Spending cap (share one Budget across generators to cap them together). Needs a price for the model. */
  budget?: Budget;
  /** Seed of the backoff jitter. */
  seed?: number;
  /** Sampling parameters for requests that do not set them. */
  defaultParams?: GeneratorParams;
  /** Extra HTTP headers (e.g. an organisation header). */
  headers?: Record<string, string>;
}

// What we need from a reply; everything else is ignored (passthrough) so servers may add fields.
const usageSchema = z
  .object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
  })
  .partial();
const chatReplySchema = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullable().optional() }),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: usageSchema.nullable().optional(),
});
const completionReplySchema = z.object({
  choices: z
    .array(
      z.object({
        text: z.string().nullable().optional(),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: usageSchema.nullable().optional(),
});

type Attempt =
  | {
      ok: true;
      text: string;
      finishReason: FinishReason;
      promptTokens?: number;
      completionTokens?: number;
    }
  | {
      ok: false;
      kind: FailureKind;
      message: string;
      hint?: string;
      status?: number;
      retryAfterMs?: number;
      retriable: boolean;
    };

export class OpenAIGenerator implements Generator {
  readonly identity: GeneratorIdentity;
  private readonly base: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly limiter: Limiter;
  private readonly policy: RetryPolicy;
  private readonly price: ModelPrice | undefined;
  private readonly rng: Rng;
  private readonly disposer = new AbortController();
  private readonly where: string;

  constructor(private readonly opts: OpenAIGeneratorOptions) {
    const fromEnv = process.env[OPENAI_BASE_URL_ENV];
    const baseUrl = opts.baseUrl ?? (fromEnv || OPENAI_DEFAULT_BASE_URL);
    const urlWhere =
      opts.baseUrl === undefined && fromEnv ? OPENAI_BASE_URL_ENV : 'generator.baseUrl';
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new ConfigError('generator base URL is not a URL', {
        where: urlWhere,
        expected: 'e.g. https://api.deepseek.com/v1 or http://127.0.0.1:8431/v1',
        found: baseUrl,
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new ConfigError('generator base URL must be http(s)', {
        where: urlWhere,
        expected: 'http:// or https://',
        found: baseUrl,
      });
    this.base = url.href.replace(/\/+$/, '');
    if (!opts.model)
      throw new ConfigError('generator model is empty', { where: 'generator.model' });
    if (opts.apiKeyEnv !== undefined) {
      const k = process.env[opts.apiKeyEnv];
      if (!k)
        throw new ConfigError(`API key environment variable ${opts.apiKeyEnv} is not set`, {
          where: `generator (${this.base})`,
          hint: `export ${opts.apiKeyEnv}=... before the run, or remove apiKeyEnv for a server without authentication`,
        });
      this.apiKey = k;
    } else this.apiKey = opts.apiKey ?? (process.env[OPENAI_API_KEY_ENV] || undefined);
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.limiter = new Limiter(opts.concurrency ?? 4);
    this.policy = { ...defaultRetryPolicy, ...opts.retry };
    this.price = priceFor(opts.prices, opts.model);
    if (opts.budget && !this.price)
      throw new ConfigError(`a budget is set but model '${opts.model}' has no price`, {
        where: 'generator.prices',
        expected: `an entry "${opts.model}": {inputPerMTok, outputPerMTok} (or a prefix key ending in *)`,
        found: Object.keys(opts.prices ?? {}).join(', ') || '(empty price table)',
        hint: 'without a price the budget cannot be enforced; add the price or drop the budget',
      });
    this.rng = new Rng(opts.seed ?? 0x5eed);
    this.identity = {
      backend: `openai:${this.base}`,
      model: opts.model,
      params: opts.defaultParams,
    };
    this.where = `openai backend ${this.base} model ${opts.model}`;
  }

  async generate(
    requests: readonly GenerationRequest[],
    opts: GeneratorRequestOptions = {},
  ): Promise<GenerationResult[]> {
    const signal = opts.signal
      ? AbortSignal.any([opts.signal, this.disposer.signal])
      : this.disposer.signal;
    return Promise.all(requests.map((r) => this.limiter.run(() => this.one(r, signal))));
  }

  /**
   * Checks that the server answers and knows the model (GET {baseUrl}/models). Call once before a
   * long run so an unknown model or a wrong URL is a clear error at start, not 10 000 failures.
   */
  async preflight(): Promise<string[]> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/models`, {
        headers: this.headers(),
        signal: AbortSignal.timeout(Math.min(this.timeoutMs, 15_000)),
      });
    } catch (err) {
      throw new NetworkError(`cannot reach the generator server`, {
        where: this.where,
        found: describeFetchError(err),
        hint: `check generator.baseUrl (it must include the version path, e.g. ${this.base.endsWith('/v1') ? this.base : this.base + '/v1'}) and that the server is running`,
        cause: err,
      });
    }
    if (res.status === 401 || res.status === 403)
      throw new ConfigError('the generator server rejected the API key', {
        where: this.where,
        found: `HTTP ${res.status}`,
        hint: this.opts.apiKeyEnv
          ? `check ${this.opts.apiKeyEnv}`
          : `set generator.apiKeyEnv (or ${OPENAI_API_KEY_ENV})`,
      });
    if (!res.ok)
      throw new NetworkError('GET /models failed', {
        where: this.where,
        found: `HTTP ${res.status}`,
      });
    const body = (await res.json().catch(() => undefined)) as
      { data?: { id?: unknown }[] } | undefined;
    const ids = (body?.data ?? []).map((m) => String(m.id));
    if (ids.length > 0 && !ids.includes(this.opts.model))
      throw new ConfigError(`unknown model '${this.opts.model}'`, {
        where: this.where,
        expected: ids.slice(0, 20).join(', '),
        found: this.opts.model,
        hint: 'set generator.model to one the server lists',
      });
    return ids;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json', ...this.opts.headers };
    if (this.apiKey) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  private fail(
    r: GenerationRequest,
    kind: FailureKind,
    message: string,
    attempts: number,
    extra: { hint?: string; status?: number } = {},
  ): GenerationFailure {
    return {
      ok: false,
      id: r.id,
      kind,
      message: `${this.where}, request ${r.id}: ${message}`,
      attempts,
      ...extra,
    };
  }

  private async one(r: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    const problem = requestProblem(r);
    if (problem) return this.fail(r, 'bad_request', problem, 0);
    if (signal.aborted) return this.fail(r, 'aborted', 'aborted before sending', 0);
    const params = { ...this.opts.defaultParams, ...r.params };
    const estPrompt = estimatePromptTokens(r);
    // Worst case without maxTokens: assume 4096 so the reservation is not 0.
    const reserve = costUsd(this.price, estPrompt, params.maxTokens ?? 4096);
    const budget = this.opts.budget;
    if (budget && !budget.reserve(reserve))
      return this.fail(
        r,
        'budget_exceeded',
        `budget of $${budget.limitUsd} reached ($${budget.spentUsd.toFixed(4)} spent); not sent`,
        0,
        {
          hint: 'raise the budget or resume the run later: answered requests are cached',
        },
      );
    const chat = r.messages !== undefined;
    const url = `${this.base}/${chat ? 'chat/completions' : 'completions'}`;
    const body = JSON.stringify(this.body(r, params, chat));
    const t0 = performance.now();
    let attempts = 0;
    let spent = 0;
    try {
      for (;;) {
        attempts++;
        const a = await this.attempt(url, body, chat, signal);
        if (a.ok) {
          const promptTokens = a.promptTokens ?? estPrompt;
          const completionTokens = a.completionTokens ?? Math.ceil(a.text.length / 4);
          spent = costUsd(this.price, promptTokens, completionTokens);
          const c: Completion = {
            ok: true,
            id: r.id,
            text: a.text,
            finishReason: a.finishReason,
            usage: { promptTokens, completionTokens },
            latencyMs: performance.now() - t0,
            costUsd: spent,
            cached: false,
            attempts,
          };
          return c;
        }
        if (a.kind === 'aborted' || !a.retriable || attempts > this.policy.maxRetries)
          return this.fail(
            r,
            a.kind,
            a.message + (attempts > 1 ? ` (after ${attempts} attempts)` : ''),
            attempts,
            {
              hint: a.hint,
              status: a.status,
            },
          );
        if (a.retryAfterMs !== undefined && a.retryAfterMs > this.policy.maxRetryAfterMs)
          return this.fail(
            r,
            a.kind,
            `${a.message}; server asks to wait ${Math.round(a.retryAfterMs / 1000)} s, more than retry.maxRetryAfterMs`,
            attempts,
            {
              hint: a.hint ?? 'lower the concurrency or raise retry.maxRetryAfterMs',
              status: a.status,
            },
          );
        const delay = backoffDelayMs(this.policy, attempts, this.rng, a.retryAfterMs);
        log.debug('retrying', {
          id: r.id,
          kind: a.kind,
          status: a.status,
          attempt: attempts,
          delayMs: Math.round(delay),
        });
        try {
          await sleep(delay, signal);
        } catch {
          return this.fail(
            r,
            'aborted',
            `aborted while waiting to retry after: ${a.message}`,
            attempts,
          );
        }
      }
    } finally {
      budget?.settle(reserve, spent);
    }
  }

  private body(r: GenerationRequest, p: GeneratorParams, chat: boolean): Record<string, unknown> {
    const b: Record<string, unknown> = { model: this.opts.model, stream: false };
    if (chat) b.messages = chatOf(r);
    else b.prompt = r.prompt;
    if (p.temperature !== undefined) b.temperature = p.temperature;
    if (p.topP !== undefined) b.top_p = p.topP;
    if (p.topK !== undefined) b.top_k = p.topK;
    if (p.maxTokens !== undefined) b.max_tokens = p.maxTokens;
    if (p.seed !== undefined) b.seed = p.seed;
    if (p.stop !== undefined && p.stop.length > 0) b.stop = p.stop;
    return b;
  }

  private async attempt(
    url: string,
    body: string,
    chat: boolean,
    signal: AbortSignal,
  ): Promise<Attempt> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    let res: Response;
    let raw: string;
    try {
      res = await fetch(url, { method: 'POST', headers: this.headers(), body, signal: both });
    } catch (err) {
      return this.transportFailure(err, signal, timeout, 'no response');
    }
    try {
      raw = await res.text();
    } catch (err) {
      return this.transportFailure(
        err,
        signal,
        timeout,
        `HTTP ${res.status} but the body broke off (truncated)`,
      );
    }
    if (!res.ok) return this.httpFailure(res, raw);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return {
        ok: false,
        kind: 'bad_response',
        status: res.status,
        retriable: true,
        message: `HTTP ${res.status} with a body that is not JSON (${JSON.stringify(raw.slice(0, 120))}${raw.length > 120 ? '…' : ''})`,
        hint: 'is generator.baseUrl an OpenAI-compatible API (it must include /v1)?',
      };
    }
    const parsed = chat ? chatReplySchema.safeParse(json) : completionReplySchema.safeParse(json);
    if (!parsed.success)
      return {
        ok: false,
        kind: 'bad_response',
        status: res.status,
        retriable: true,
        message: `reply is not an OpenAI ${chat ? 'chat.completion' : 'text_completion'}: ${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`,
        hint: 'check that the server speaks the OpenAI API at generator.baseUrl',
      };
    const choice = parsed.data.choices[0]!;
    const text =
      'message' in choice ? choice.message.content : (choice as { text?: string | null }).text;
    if (typeof text !== 'string')
      return {
        ok: false,
        kind: 'bad_response',
        status: res.status,
        retriable: true,
        message: `reply has no text (finish_reason ${choice.finish_reason ?? 'none'})`,
        hint: 'the model returned no content (refusal, tool call or filter); the sample is dropped',
      };
    return {
      ok: true,
      text,
      finishReason: mapFinish(choice.finish_reason),
      promptTokens: parsed.data.usage?.prompt_tokens,
      completionTokens: parsed.data.usage?.completion_tokens,
    };
  }

  private transportFailure(
    err: unknown,
    caller: AbortSignal,
    timeout: AbortSignal,
    what: string,
  ): Attempt {
    if (caller.aborted)
      return { ok: false, kind: 'aborted', retriable: false, message: 'aborted by the caller' };
    if (timeout.aborted)
      return {
        ok: false,
        kind: 'timeout',
        retriable: true,
        message: `no complete answer within ${this.timeoutMs} ms`,
        hint: 'raise generator.timeoutMs or lower maxTokens / concurrency',
      };
    return {
      ok: false,
      kind: 'network',
      retriable: true,
      message: `${what}: ${describeFetchError(err)}`,
      hint: 'check generator.baseUrl and that the server is running and reachable',
    };
  }

  private httpFailure(res: Response, raw: string): Attempt {
    const s = res.status;
    const detail = errorDetail(raw);
    const message = `HTTP ${s}${detail ? `: ${detail}` : ''}`;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    if (s === 429)
      return {
        ok: false,
        kind: 'rate_limited',
        status: s,
        retriable: true,
        retryAfterMs,
        message,
        hint: 'lower generator.concurrency or raise retry.maxRetries',
      };
    if (s === 408)
      return { ok: false, kind: 'timeout', status: s, retriable: true, retryAfterMs, message };
    if (s >= 500)
      return { ok: false, kind: 'server_error', status: s, retriable: true, retryAfterMs, message };
    if (s === 401 || s === 403)
      return {
        ok: false,
        kind: 'auth',
        status: s,
        retriable: false,
        message,
        hint: this.opts.apiKeyEnv
          ? `check the key in ${this.opts.apiKeyEnv}`
          : `the server wants an API key: set generator.apiKeyEnv (or ${OPENAI_API_KEY_ENV})`,
      };
    if (s === 404)
      return {
        ok: false,
        kind: 'not_found',
        status: s,
        retriable: false,
        message,
        hint: `unknown model '${this.opts.model}' or wrong generator.baseUrl (it must include the version path, e.g. /v1); GET ${this.base}/models lists the models`,
      };
    return {
      ok: false,
      kind: 'bad_request',
      status: s,
      retriable: false,
      message,
      hint: /model/i.test(detail)
        ? `check generator.model ('${this.opts.model}')`
        : 'the server rejected the request parameters',
    };
  }

  async dispose(): Promise<void> {
    this.disposer.abort(new Error('generator disposed'));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

function mapFinish(f: string | null | undefined): FinishReason {
  if (f === 'stop' || f === 'length' || f === 'content_filter') return f;
  if (f === 'eos' || f === 'stop_sequence') return 'stop';
  return 'other';
}

/** The message of an OpenAI-style error body, else the first characters of the body. */
function errorDetail(raw: string): string {
  try {
    const j = JSON.parse(raw) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof j.error === 'string') return j.error.slice(0, 300);
    if (j.error && typeof j.error.message === 'string') return j.error.message.slice(0, 300);
    if (typeof j.message === 'string') return j.message.slice(0, 300);
  } catch {
    // not JSON: fall through
  }
  return raw.trim().slice(0, 200);
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const code = cause?.code ? ` (${cause.code})` : '';
  return `${err.message}${cause?.message && cause.message !== err.message ? `: ${cause.message}` : ''}${code}`;
}
