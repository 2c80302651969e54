// Loading a model from a file: GGUF (llama.cpp's format: metadata → ModelConfig, tensors
// dequantised to float32, Llama Q/K rows un-permuted), or any HF-named WeightSource + config.json.
import { openGguf } from '../io/gguf/index.js';
import type { GgufKV } from '../io/gguf/index.js';
import { NotFoundError } from '../util/errors.js';
import { existsSync } from 'node:fs';
import { configFromGguf, configFromHf, type ModelConfig } from './config.js';
import { ggufWeightSource } from './gguf-names.js';
import type { ModelOptions } from './llama.js';
import { loadWeights, type CausalLM } from './model.js';
import { createModel } from './registry.js';
import type { WeightSource } from './weight-source.js';

export interface LoadedModel {
  model: CausalLM;
  config: ModelConfig;
}

/** GGUF metadata as plain values (what configFromGguf reads). */
export function ggufMetadataValues(meta: ReadonlyMap<string, GgufKV>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, kv] of meta) out[k] = kv.value;
  return out;
}

/** Loads a Llama or Qwen2 GGUF into float32 weights on the active backend. */
export function loadGgufModel(path: string, opts: ModelOptions = {}): LoadedModel {
  if (!existsSync(path)) {
    throw new NotFoundError('GGUF file not found', {
      where: path,
      hint: 'for the offline test models run `node scripts/fetch-test-models.mjs`',
    });
  }
  const file = openGguf(path);
  try {
    const config = configFromGguf(ggufMetadataValues(file.metadata), {
      tensorNames: file.tensors.map((t) => t.name),
      where: path,
    });
    const model = createModel(config, opts);
    const source = ggufWeightSource(config, (name) => {
      if (!file.hasTensor(name)) return undefined;
      const info = file.tensor(name);
      return { data: file.readTensorF32(info), shape: info.shape };
    });
    try {
      loadWeights(model, source, path);
    } catch (e) {
      model.release();
      throw e;
    }
    return { model, config };
  } finally {
    file.close();
  }
}

/** A model from a parsed config.json and HF-named weights (safetensors, tests). */
export function loadHfModel(
  configJson: unknown,
  source: WeightSource,
  opts: ModelOptions & { where?: string } = {},
): LoadedModel {
  const config = configFromHf(configJson, opts.where ?? 'config.json');
  const model = createModel(config, opts);
  try {
    loadWeights(model, source, opts.where ?? 'weights');
  } catch (e) {
    model.release();
    throw e;
  }
  return { model, config };
}
