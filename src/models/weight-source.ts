// Weights by Hugging Face name, from safetensors, GGUF (after renaming) or a test. A loader
// (models/model.ts loadWeights) pulls every weight a model needs through one of these: raw
// float32 data, or (a GGUF loaded with weights: 'quantized') the ggml blocks as stored.
import type { QuantWeight } from '../tensor/index.js';

export type WeightData =
  | { data: Float32Array; shape: readonly number[] }
  | { quant: QuantWeight; shape: readonly number[] };

export type WeightSource = (name: string) => WeightData | undefined;
