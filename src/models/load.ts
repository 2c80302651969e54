// Loading a model from a file: GGUF (llama.cpp's format: metadata → ModelConfig, tensors
// dequantised to float32, Llama Q/K rows un-permuted), a Hugging Face directory (config.json +
// safetensors, sharded or not), or any HF-named WeightSource + config.json. Every loader takes a
// path or a Hugging Face repo id (`Qwen/Qwen2.5-Coder-0.5B-Instruct`, `repo@revision`,
// `repo/file.gguf`): resolveModel() is the one place that turns either into a local path (the
// Hugging Face cache, downloading when missing; io/hub/resolve.ts).
import { openGguf } from '../io/gguf/index.js';
import type { GgufKV } from '../io/gguf/index.js';
import { SafetensorsCheckpoint } from '../io/safetensors/index.js';
import { ConfigError, FormatError, NotFoundError } from '../util/errors.js';
import { GgmlType } from '../io/gguf/index.js';
import { QUANT_BLOCKS } from '../backend/quant.js';
import { getBackend } from '../tensor/index.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolveModelPath, type ResolveModelOptions } from '../io/hub/resolve.js';
import nodePath from 'node:path';
import { configFromGguf, configFromHf, type ModelConfig } from './config.js';
import { ggufWeightSource } from './gguf-names.js';
import type { ModelOptions } from './llama.js';
import { loadWeights, type CausalLM } from './model.js';
import { createModel } from './registry.js';
import type { WeightSource } from './weight-source.js';

/**
 * The one model resolver: a path that exists is returned (resolved); a Hugging Face repo id is
 * found in the Hugging Face cache ($HF_HUB_CACHE) or downloaded there, and its snapshot path
 * returned. `opts.revision` (a CLI's --revision) or `repo@revision` picks the branch/tag/commit.
 */
export function resolveModel(spec: string, opts: ResolveModelOptions = {}): string {
  return resolveModelPath(spec, opts);
}

/** Where a model comes from besides its path: the Hub revision (see resolveModel). */
export interface ModelSourceOptions {
  /** Branch, tag or commit of a Hub repo id (default main, or the id's @revision). */
  revision?: string;
}

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

export interface GgufLoadOptions extends ModelOptions, ModelSourceOptions {
  /**
   * 'float32' (default): every weight dequantised to float32, what training and the parity
   * fixtures use. 'quantized': linear and embedding weights stay in their GGUF block format
   * (QTensor) where the backend can read it — 4–7× less memory and fewer bytes per decoding step,
   * the same values (results differ from float32 only by summation order); LoRA adapters train
   * beside them as usual. Norms, biases and unsupported formats are dequantised either way.
   */
  weights?: 'float32' | 'quantized';
}

/** Loads a Llama or Qwen2 GGUF onto the active backend (float32, or quantised blocks kept). */
export function loadGgufModel(spec: string, opts: GgufLoadOptions = {}): LoadedModel {
  const path = resolveModel(spec, opts.revision !== undefined ? { revision: opts.revision } : {});
  const keepQuant = (opts.weights ?? 'float32') === 'quantized';
  if (opts.weights !== undefined && opts.weights !== 'float32' && opts.weights !== 'quantized') {
    throw new ConfigError('unknown weights option', {
      where: 'loadGgufModel',
      expected: "'float32' or 'quantized'",
      found: String(opts.weights),
    });
  }
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
      const [rows, cols] = info.shape;
      if (
        keepQuant &&
        info.shape.length === 2 &&
        info.type !== GgmlType.F32 &&
        QUANT_BLOCKS.has(info.type) &&
        getBackend().qsupports(info.type)
      ) {
        const data = file.readTensorBytes(info);
        return { quant: { type: info.type, rows: rows!, cols: cols!, data }, shape: info.shape };
      }
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

/** Loads a Hugging Face model directory: config.json + model.safetensors (or a sharded index). */
export function loadSafetensorsModel(
  spec: string,
  opts: ModelOptions & ModelSourceOptions = {},
): LoadedModel {
  const dir = resolveModel(spec, opts.revision !== undefined ? { revision: opts.revision } : {});
  const cfgPath = nodePath.join(dir, 'config.json');
  if (!existsSync(cfgPath)) {
    throw new NotFoundError('config.json not found', {
      where: dir,
      expected: 'a Hugging Face model directory with config.json and *.safetensors',
      hint: 'give a Hugging Face model directory or a Hub repo id (namespace/name)',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new FormatError('config.json is not valid JSON', { where: cfgPath, cause: e });
  }
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    return loadHfModel(
      json,
      (name) =>
        ckpt.has(name) ? { data: ckpt.readF32(name), shape: ckpt.info(name).shape } : undefined,
      { ...opts, where: cfgPath },
    );
  } finally {
    ckpt.close();
  }
}

/**
 * A model by path or Hub repo id: a GGUF file (float32 or quantised weights, `opts.weights`), or
 * a Hugging Face directory (config.json + safetensors).
 */
export function loadModel(spec: string, opts: GgufLoadOptions = {}): LoadedModel {
  const p = resolveModel(spec, opts.revision !== undefined ? { revision: opts.revision } : {});
  if (existsSync(p) && statSync(p).isDirectory()) {
    if (opts.weights === 'quantized') {
      throw new ConfigError('quantized weights need a GGUF model', {
        where: p,
        expected: "a GGUF file with weights: 'quantized'",
        found: 'a Hugging Face model directory (safetensors)',
      });
    }
    const { weights: _w, revision: _r, ...mopts } = opts;
    return loadSafetensorsModel(p, mopts);
  }
  const { revision: _r, ...gopts } = opts;
  return loadGgufModel(p, gopts);
}
