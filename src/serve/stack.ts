// What `rl4qe serve` runs: a refiner and an answer generator built from generator configs. With
// no configuration both are the default offline GGUF through llama.cpp, sharing one loaded model.
// A trained refiner is a `local` generator config (rl4qe's engine + the PEFT adapter training
// wrote) with `refineFormat` set to the prompt format it was trained with.
import {
  CachedGenerator,
  GenerationCache,
  LlamaCppGenerator,
  canonicalJson,
  createGenerator,
  type GeneratorConfig,
  type Generator,
  type GeneratorParams,
} from '../generators/index.js';
import type { RefinerFormat } from '../data/index.js';
import { PromptedRefiner, type Refiner } from './refiner.js';

export interface ServeStackOptions {
  /** The answer generator. Default: llama.cpp on the default offline GGUF. */
  generator?: GeneratorConfig;
  /** The model the prompted refiner uses. Default: the same generator instance. */
  refiner?: GeneratorConfig;
  refinePrompt?: string;
  /** Prompt the refiner in a training format (src/data refinerPrompt) instead of refinePrompt. */
  refineFormat?: RefinerFormat;
  refineParams?: GeneratorParams;
  /** Default true: refinements and answers are cached on disk. */
  cache?: boolean;
  cacheFile?: string;
  /** llama.cpp threads for the default model. */
  threads?: number;
  /** llama.cpp parallel sequences (requests decoded together) for the default model. Default 1. */
  sequences?: number;
}

export interface ServeStack {
  refiner: Refiner;
  generator: Generator;
  /** The shared cache, to report hits and misses. */
  cache?: GenerationCache;
}

export function buildServeStack(opts: ServeStackOptions = {}): ServeStack {
  const useCache = opts.cache !== false;
  const cache = useCache ? new GenerationCache({ file: opts.cacheFile }) : undefined;
  const make = (cfg: GeneratorConfig | undefined): Generator => {
    if (cfg) return createGenerator({ ...cfg, cache: { enabled: false } } as GeneratorConfig);
    return new LlamaCppGenerator({ threads: opts.threads, sequences: opts.sequences ?? 1 });
  };
  const wrap = (g: Generator): Generator => (cache ? new CachedGenerator(g, cache) : g);
  const base = make(opts.generator);
  const generator = wrap(base);
  // A refiner on the same model as the answers shares the instance: one loaded model, and for
  // the local engine one decode queue, so refinements and answers of concurrent requests
  // decode in shared batches.
  const refinerGen =
    opts.refiner && !sameGenerator(opts.refiner, opts.generator)
      ? wrap(make(opts.refiner))
      : generator;
  const refiner = new PromptedRefiner({
    generator: refinerGen,
    systemPrompt: opts.refinePrompt,
    format: opts.refineFormat,
    params: opts.refineParams,
    ownsGenerator: refinerGen !== generator,
  });
  // The cache closes with the answer generator (disposed last by the server).
  return { refiner, generator: new ClosingGenerator(generator, () => cache?.close()), cache };
}

/** Two configs that build the same generator (the cache settings aside). */
function sameGenerator(a: GeneratorConfig, b: GeneratorConfig | undefined): boolean {
  if (b === undefined) return false;
  const strip = (c: GeneratorConfig): string => {
    const { cache: _cache, ...rest } = c;
    return canonicalJson(rest);
  };
  return strip(a) === strip(b);
}

/** Delegates to a generator and runs a cleanup after disposing it. */
class ClosingGenerator implements Generator {
  readonly identity: Generator['identity'];
  constructor(
    private readonly inner: Generator,
    private readonly cleanup: () => void,
  ) {
    this.identity = inner.identity;
  }
  generate(...args: Parameters<Generator['generate']>): ReturnType<Generator['generate']> {
    return this.inner.generate(...args);
  }
  async dispose(): Promise<void> {
    await this.inner.dispose();
    this.cleanup();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
