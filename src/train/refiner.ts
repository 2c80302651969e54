// The refiner policy π_θ: a base LM (GGUF or Hugging Face directory, loaded by the local engine's
// loader so tokenizer, chat template and stop tokens are the same as `rl4qe serve` uses) with LoRA
// adapters on the configured projections, or every weight trainable (full fine-tuning).
//
// It turns a task into prompt token ids (the refiner format of data/prompts.ts, the instruction
// cue never cut: an over-long QUERY loses its middle behind a marker, or the task is skipped),
// samples K rewrites per prompt from one prefill, and exposes the trainable parameters by their
// PEFT names.
import { LocalEngineGenerator, type LocalEngine } from '../generators/local.js';
import {
  addLora,
  applyCompute,
  loraParameters,
  type CausalLM,
  type ComputeMode,
  type ComputeReport,
} from '../models/index.js';
import { generate, type Generation } from '../sampling/index.js';
import type { Tensor } from '../tensor/index.js';
import { extractRefinement, refinerPrompt, type RefinerFormat } from '../data/prompts.js';
import type { CodeTask } from '../data/tasks.js';
import { Rng } from '../util/rng.js';
import { ConfigError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { fitQuery, tokenizePrompt, type RenderedPrompt } from './prompt.js';

export { TRUNCATION_MARKER } from './prompt.js';

export interface RefinerOptions {
  model: string;
  tokenizer?: string;
  chatTemplate?: string;
  weights: 'float32' | 'quantized';
  /**
   * The frozen products' compute mode (models/compute.ts): 'bf16' rounds the float32 projection
   * weights to bf16 once, after loading; prefill, scoring and the update then use the bf16 units.
   * Default 'fp32'.
   */
  compute?: ComputeMode;
  format: RefinerFormat;
  template?: string;
  maxPromptTokens: number;
  overlong: 'truncate-middle' | 'skip';
  /** Longest prompt + rewrite the model must hold (sets the RoPE table size). */
  contextSize: number;
}

export interface AdapterOptions {
  kind: 'lora' | 'full';
  r: number;
  alpha: number;
  dropout: number;
  targets: readonly string[];
  /** Seed for LoRA A's initialisation. */
  seed: number;
}

export interface RefinerPromptIds {
  ids: number[];
  /** The prompt as text (template applied). */
  text: string;
  /** Whether the query's middle was cut to fit maxPromptTokens. */
  truncated: boolean;
}

export interface SampledRewrite extends Generation {
  /** The refinement read from the decoded text (extractRefinement). */
  rewrite: string;
}

const log = createLogger('refiner');

export class Refiner {
  readonly opts: RefinerOptions;
  /** What the compute mode did (for the run manifest): units, converted weights, a fallback note. */
  compute: ComputeReport | undefined;
  private readonly loader: LocalEngineGenerator;
  private engineState: LocalEngine | undefined;
  /** Trainable parameters by PEFT / Hugging Face name. */
  params = new Map<string, Tensor>();

  private constructor(opts: RefinerOptions) {
    this.opts = opts;
    this.loader = new LocalEngineGenerator({
      model: opts.model,
      ...(opts.tokenizer !== undefined ? { tokenizer: opts.tokenizer } : {}),
      ...(opts.chatTemplate !== undefined ? { chatTemplate: opts.chatTemplate } : {}),
      weights: opts.weights,
      contextSize: opts.contextSize,
    });
  }

  /** Loads the base model and adds the adapter (or makes every weight trainable). */
  static async load(opts: RefinerOptions, adapter: AdapterOptions): Promise<Refiner> {
    const r = new Refiner(opts);
    r.engineState = await r.loader.engine();
    const model = r.engineState.model;
    if (adapter.kind === 'lora') {
      r.params = addLora(model, {
        r: adapter.r,
        alpha: adapter.alpha,
        dropout: adapter.dropout,
        targets: adapter.targets,
        rng: new Rng(adapter.seed),
      });
    } else {
      for (const s of model.slots()) {
        const w = s.get();
        if (!('requiresGrad' in w) || w.dtype !== 'f32') {
          throw new ConfigError('full fine-tuning needs float32 weights', {
            where: `refiner (${s.name})`,
            expected: 'float32 weights',
            found: 'quantised blocks',
            hint: 'set refiner.weights: float32 (or adapter.kind: lora)',
          });
        }
        w.requiresGrad = true;
        r.params.set(s.name, w);
      }
    }
    // After the adapter: a trainable base weight (full fine-tuning) is refused here too.
    r.compute = applyCompute(model, opts.compute ?? 'fp32', { where: 'refiner.compute' });
    if (r.compute.note) log.warn(r.compute.note);
    return r;
  }

  get engine(): LocalEngine {
    if (!this.engineState) throw new ConfigError('the refiner is not loaded', { where: 'Refiner' });
    return this.engineState;
  }

  get model(): CausalLM {
    return this.engine.model;
  }

  /** LoRA parameters currently on the model (empty for full fine-tuning). */
  loraParams(): Map<string, Tensor> {
    return loraParameters(this.model);
  }

  private render(query: string): RenderedPrompt {
    const p = refinerPrompt(query, {
      format: this.opts.format,
      ...(this.opts.template !== undefined ? { template: this.opts.template } : {}),
    });
    const E = this.engine;
    return tokenizePrompt(
      p,
      { tokenizer: E.tokenizer, chatTemplate: E.chatTemplate },
      { where: 'refiner.format', format: this.opts.format },
    );
  }

  /**
   * The prompt of a task within maxPromptTokens: an over-long query loses its middle (the
   * instruction and its cue are kept), or undefined when overlong is 'skip' (train/prompt.ts
   * fitQuery, the same fitting evaluation applies).
   */
  promptFor(task: CodeTask): RefinerPromptIds | undefined {
    const p = fitQuery(task.query, (q) => this.render(q), this.opts);
    return p && { ids: p.ids, text: p.text, truncated: p.truncated };
  }

  /**
   * Samples `k` rewrites of each prompt (one prefill per prompt, the KV cache repeated), in
   * prompt-major order: out[p·k + j]. seeds has prompts.length · k entries.
   */
  sample(
    prompts: readonly number[][],
    k: number,
    opts: {
      temperature: number;
      topP: number;
      topK: number;
      maxNewTokens: number;
      seeds: number[];
      /** Replaces the model's stop tokens ([] = always maxNewTokens). */
      stopTokens?: readonly number[];
    },
  ): SampledRewrite[] {
    const E = this.engine;
    const gens = generate(this.model, {
      prompts,
      samplesPerPrompt: k,
      maxNewTokens: opts.maxNewTokens,
      temperature: opts.temperature,
      topP: opts.topP,
      ...(opts.topK > 0 ? { topK: opts.topK } : {}),
      stopTokens: opts.stopTokens ?? E.stopTokenIds,
      decode: (ids) => E.tokenizer.decode(ids, { skipSpecialTokens: true }),
      seeds: opts.seeds,
    });
    return gens.map((g) => ({ ...g, rewrite: extractRefinement(g.text ?? '') }));
  }

  release(): void {
    this.engineState?.model.release();
    this.engineState = undefined;
  }
}
