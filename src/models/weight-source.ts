// Raw float32 weights by Hugging Face name, from safetensors, GGUF (after renaming) or a test.
// A loader (models/model.ts loadWeights) pulls every weight a model needs through one of these.
export type WeightSource = (
  name: string,
) => { data: Float32Array; shape: readonly number[] } | undefined;
