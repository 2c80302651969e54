// The Refiner contract: a user's query in, a refined query out. `rl4qe serve` and evaluation use
// only this interface. PromptedRefiner prompts any Generator backend with a refine instruction:
// an untrained refiner (the baseline), or a trained one — the local-engine backend with the LoRA
// adapter training wrote, prompted in the format it was trained with (`format`, src/data's
// refinerPrompt, so serving sees exactly the prompt training saw).
import type {
  GenerationFailure,
  GenerationRequest,
  Generator,
  GeneratorParams,
} from '../generators/index.js';
import { extractRefinement, refinerPrompt, type RefinerFormat } from '../data/index.js';

export interface RefineMetadata {
  /** Which refiner produced it (e.g. `prompted:llama.cpp:smollm2...`). */
  refiner: string;
  latencyMs: number;
  /** Tokens the refiner wrote, when known. */
  completionTokens?: number;
  /** True when the refinement came from the generator cache. */
  cached?: boolean;
  [key: string]: unknown;
}

export type RefineResult =
  | { ok: true; refined: string; metadata: RefineMetadata }
  | { ok: false; failure: GenerationFailure; metadata: RefineMetadata };

export interface Refiner {
  readonly name: string;
  /** Never rejects for a model or transport problem: that is an ok: false result. */
  refine(query: string, opts?: { signal?: AbortSignal }): Promise<RefineResult>;
  dispose(): Promise<void>;
}

/** The default refine instruction (close to the paper's: rewrite the query, keep its intent, answer nothing). */
export const DEFAULT_REFINE_SYSTEM_PROMPT =
  'You improve programming questions before they are sent to a code generator. Rewrite the ' +
  "user's question so it is complete, precise and unambiguous: keep every requirement, name the " +
  'inputs, outputs, libraries and edge cases. Do not answer it and do not write code. Reply with ' +
  'the rewritten question only.';

export interface PromptedRefinerOptions {
  generator: Generator;
  /** The refine instruction (system prompt) when no `format` is given. */
  systemPrompt?: string;
  /**
   * Prompt the refiner as training did (src/data refinerPrompt: 'paper' completion, 'paper-chat',
   * 'chat', 'chat-ds1000') and read the refinement with extractRefinement. Overrides systemPrompt.
   */
  format?: RefinerFormat;
  /** Defaults: temperature 0 (deterministic, cacheable), maxTokens 256. */
  params?: GeneratorParams;
  /** Dispose the generator with the refiner (false when it is shared with the answer generator). */
  ownsGenerator?: boolean;
}

/** A refiner that asks a Generator to rewrite the query with a refine prompt. */
export class PromptedRefiner implements Refiner {
  readonly name: string;

  constructor(private readonly opts: PromptedRefinerOptions) {
    this.name = `prompted:${opts.generator.identity.backend}:${opts.generator.identity.model}`;
  }

  async refine(query: string, opts: { signal?: AbortSignal } = {}): Promise<RefineResult> {
    const t0 = performance.now();
    const params = { temperature: 0, maxTokens: 256, ...this.opts.params };
    let request: GenerationRequest;
    if (this.opts.format !== undefined) {
      const p = refinerPrompt(query, { format: this.opts.format });
      request =
        p.kind === 'completion'
          ? { id: 'refine', prompt: p.prompt, params }
          : { id: 'refine', messages: p.messages, params };
    } else
      request = {
        id: 'refine',
        system: this.opts.systemPrompt ?? DEFAULT_REFINE_SYSTEM_PROMPT,
        messages: [{ role: 'user', content: query }],
        params,
      };
    const [r] = await this.opts.generator.generate([request], opts);
    const latencyMs = performance.now() - t0;
    if (r === undefined) throw new Error(`${this.name}: the generator returned no result`);
    if (!r.ok) return { ok: false, failure: r, metadata: { refiner: this.name, latencyMs } };
    return {
      ok: true,
      refined: this.opts.format !== undefined ? extractRefinement(r.text) : r.text.trim(),
      metadata: {
        refiner: this.name,
        latencyMs,
        completionTokens: r.usage.completionTokens,
        cached: r.cached,
        finishReason: r.finishReason,
      },
    };
  }

  async dispose(): Promise<void> {
    if (this.opts.ownsGenerator) await this.opts.generator.dispose();
  }
}
