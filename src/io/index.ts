// Model file formats and downloads: GGUF (validated reader, dequantisation, writer, LoRA
// adapter export), safetensors (files and sharded checkpoints), Hugging Face Hub pull.
export {
  GgufFile,
  openGguf,
  dequantize,
  canDequantize,
  byteSizeOf,
  encodeGguf,
  writeGguf,
  kv as ggufKv,
  writeGgufLoraAdapter,
  readGgufLoraAdapter,
  GgmlType,
  GgufValueType,
  GGML_TYPES,
  ggmlTypeName,
  type GgufTensorInfo,
  type GgufOpenOptions,
  type DequantizeOptions,
  type GgufTensorInput,
  type GgufWriteSpec,
  type GgufKV,
  type GgufArray,
  type GgufScalar,
  type GgufLoraPair,
  type GgufLoraSpec,
  type GgufLoraAdapter,
} from './gguf/index.js';
export {
  writePeftAdapter,
  readPeftAdapterTensors,
  peftAdapterConfig,
  PEFT_ADAPTER_CONFIG,
  PEFT_ADAPTER_WEIGHTS,
  PEFT_PREFIX,
  type PeftAdapterSpec,
  type PeftWriteResult,
  type LoraTensor,
} from './peft.js';
export { writeDirAtomic, writeFileAtomic } from './atomic.js';
export * from './safetensors/index.js';
export * from './hub/index.js';
export {
  f16ToF32Table,
  f32ToF16Bits,
  bf16ToF32,
  f32ToBf16Bits,
  decodeF16Array,
  decodeBf16Array,
} from '../util/half.js';
