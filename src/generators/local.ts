// The local-engine backend: rl4qe's own models (src/models + src/sampling), batched, so training
// can run refiner and generator in one process without llama.cpp. Not available yet: the models
// and sampling layers have not landed. The slot exists so configs can name it and get a clear
// answer instead of a silent fallback.
import { UnsupportedError } from '../util/errors.js';
import type {
  GenerateOptions,
  GenerationRequest,
  GenerationResult,
  Generator,
  GeneratorIdentity,
} from './types.js';

export interface LocalEngineGeneratorOptions {
  /** A model directory or GGUF file for rl4qe's own engine. */
  model: string;
  /** Optional LoRA adapter directory. */
  adapter?: string;
}

export class LocalEngineGenerator implements Generator {
  readonly identity: GeneratorIdentity;

  constructor(opts: LocalEngineGeneratorOptions) {
    this.identity = { backend: 'local', model: opts.model };
    throw new UnsupportedError('the local-engine generator backend is not available yet', {
      where: 'generator backend local',
      found: opts.model,
      hint: "rl4qe's own engine (src/models, src/sampling) has not landed; use backend 'llama.cpp' with the same GGUF, or 'openai' against a server",
    });
  }

  async generate(
    _requests: readonly GenerationRequest[],
    _opts?: GenerateOptions,
  ): Promise<GenerationResult[]> {
    throw new UnsupportedError('the local-engine generator backend is not available yet');
  }

  async dispose(): Promise<void> {}

  async [Symbol.asyncDispose](): Promise<void> {}
}
