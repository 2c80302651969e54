// Architecture → model class. The one place that knows which file implements which config.
import { UnsupportedError } from '../util/errors.js';
import type { Architecture, ModelConfig } from './config.js';
import { Llama, type ModelOptions } from './llama.js';
import type { CausalLM } from './model.js';
import { Qwen2 } from './qwen2.js';

const ARCHITECTURES: Record<Architecture, (c: ModelConfig, o: ModelOptions) => CausalLM> = {
  llama: (c, o) => new Llama(c, o),
  qwen2: (c, o) => new Qwen2(c, o),
};

export const supportedArchitectures = Object.keys(ARCHITECTURES) as Architecture[];

/** A model with zero-initialised weights (fill them with loadWeights). */
export function createModel(config: ModelConfig, opts: ModelOptions = {}): CausalLM {
  const make = ARCHITECTURES[config.architecture];
  if (!make) {
    throw new UnsupportedError(`no model file for architecture '${String(config.architecture)}'`, {
      where: 'createModel',
      expected: supportedArchitectures.join(', '),
      found: String(config.architecture),
    });
  }
  return make(config, opts);
}
