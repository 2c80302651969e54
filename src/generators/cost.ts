// Money: a price table per model, a budget cap that stops a run cleanly, and the dry-run
// estimator that says what a configured run would cost before anything is spent.
import { ConfigError } from '../util/errors.js';
import type { GenerationRequest } from './types.js';
import { chatOf } from './types.js';

/** USD per million tokens, as providers publish them. */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
}

/** Model name → price. Keys are matched exactly, then as a prefix ending in `*` (`gpt-4o*`). */
export type PriceTable = Record<string, ModelPrice>;

export function priceFor(table: PriceTable | undefined, model: string): ModelPrice | undefined {
  if (!table) return undefined;
  if (table[model]) return table[model];
  let best: { len: number; p: ModelPrice } | undefined;
  for (const [k, p] of Object.entries(table)) {
    if (!k.endsWith('*')) continue;
    const prefix = k.slice(0, -1);
    if (model.startsWith(prefix) && (!best || prefix.length > best.len))
      best = { len: prefix.length, p };
  }
  return best?.p;
}

export function costUsd(
  price: ModelPrice | undefined,
  promptTokens: number,
  completionTokens: number,
): number {
  if (!price) return 0;
  return (promptTokens * price.inputPerMTok + completionTokens * price.outputPerMTok) / 1e6;
}

/**
 * A spending cap shared by every request of a run (share one Budget between generators to cap
 * them together). Before a request is sent, its worst case (estimated prompt tokens + maxTokens)
 * is reserved; a request whose reservation would cross the cap is not sent and fails as
 * budget_exceeded, and from then on the budget is closed: every later request fails the same way
 * without a call, so a run stops cleanly instead of trickling on. The cap is never overshot by
 * more than the estimation error of in-flight requests.
 */
export class Budget {
  private spent = 0;
  private reserved = 0;
  private closed = false;

  constructor(readonly limitUsd: number) {
    if (!(limitUsd >= 0))
      throw new ConfigError('budget must be >= 0 USD', { found: String(limitUsd) });
  }

  get spentUsd(): number {
    return this.spent;
  }

  get exhausted(): boolean {
    return this.closed;
  }

  /** Reserves `worstCaseUsd`; false (and the budget closes) when that would cross the cap. */
  reserve(worstCaseUsd: number): boolean {
    if (this.closed) return false;
    if (this.spent + this.reserved + worstCaseUsd > this.limitUsd) {
      this.closed = true;
      return false;
    }
    this.reserved += worstCaseUsd;
    return true;
  }

  /** Replaces a reservation by what the request really cost (0 when it failed before billing). */
  settle(reservedUsd: number, actualUsd: number): void {
    this.reserved = Math.max(0, this.reserved - reservedUsd);
    this.spent += actualUsd;
    if (this.spent >= this.limitUsd) this.closed = true;
  }
}

/**
 * Token estimate without a tokenizer: ~4 characters per token for English and code with BPE
 * vocabularies (OpenAI's rule of thumb), plus a few tokens of chat framing per message. Used for
 * budget reservations and the dry run; actual usage always comes from the server.
 */
export function estimatePromptTokens(r: GenerationRequest): number {
  if (r.prompt !== undefined) return Math.ceil(r.prompt.length / 4);
  let n = 3;
  for (const m of chatOf(r)) n += 4 + Math.ceil(m.content.length / 4);
  return n;
}

export interface DryRunEstimate {
  calls: number;
  promptTokens: number;
  /** Upper bound: every call writes maxTokens. */
  maxCompletionTokens: number;
  /** Cost if every completion used maxTokens. */
  maxCostUsd: number;
  /** Cost if completions average `expectedCompletionFraction` of maxTokens. */
  expectedCostUsd: number;
  /** The price used, or undefined when the model is not in the table (costs are then 0). */
  price?: ModelPrice;
  /** Calls the cache would answer (when a cache was consulted). */
  cachedCalls: number;
}

export interface DryRunOptions {
  model: string;
  prices?: PriceTable;
  /** maxTokens for requests that do not set it. */
  defaultMaxTokens: number;
  /** Expected share of maxTokens a completion uses (default 0.5). */
  expectedCompletionFraction?: number;
  /** Requests the cache already answers are free: pass a predicate to count them. */
  isCached?: (r: GenerationRequest) => boolean;
}

/** What a batch of requests would cost, before spending anything. */
export function estimateRequests(
  requests: readonly GenerationRequest[],
  opts: DryRunOptions,
): DryRunEstimate {
  const price = priceFor(opts.prices, opts.model);
  const frac = opts.expectedCompletionFraction ?? 0.5;
  const e: DryRunEstimate = {
    calls: 0,
    promptTokens: 0,
    maxCompletionTokens: 0,
    maxCostUsd: 0,
    expectedCostUsd: 0,
    price,
    cachedCalls: 0,
  };
  for (const r of requests) {
    if (opts.isCached?.(r)) {
      e.cachedCalls++;
      continue;
    }
    const pt = estimatePromptTokens(r);
    const mt = r.params?.maxTokens ?? opts.defaultMaxTokens;
    e.calls++;
    e.promptTokens += pt;
    e.maxCompletionTokens += mt;
    e.maxCostUsd += costUsd(price, pt, mt);
    e.expectedCostUsd += costUsd(price, pt, mt * frac);
  }
  return e;
}

/**
 * A training run's generator traffic from its shape: steps × queries per step × samples per
 * query, each with a prompt of about `promptTokens` tokens.
 */
export function estimateRun(opts: {
  steps: number;
  queriesPerStep: number;
  samplesPerQuery: number;
  promptTokens: number;
  maxTokens: number;
  model: string;
  prices?: PriceTable;
  expectedCompletionFraction?: number;
}): DryRunEstimate {
  const calls = opts.steps * opts.queriesPerStep * opts.samplesPerQuery;
  const price = priceFor(opts.prices, opts.model);
  const frac = opts.expectedCompletionFraction ?? 0.5;
  return {
    calls,
    promptTokens: calls * opts.promptTokens,
    maxCompletionTokens: calls * opts.maxTokens,
    maxCostUsd: calls * costUsd(price, opts.promptTokens, opts.maxTokens),
    expectedCostUsd: calls * costUsd(price, opts.promptTokens, opts.maxTokens * frac),
    price,
    cachedCalls: 0,
  };
}
