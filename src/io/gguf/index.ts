// GGUF: validated reader, dequantisation to float32, minimal writer.
export { GgufFile, openGguf, type GgufTensorInfo, type GgufOpenOptions } from './reader.js';
export { dequantize, canDequantize, byteSizeOf, type DequantizeOptions } from './dequant.js';
export { encodeGguf, writeGguf, kv, type GgufTensorInput, type GgufWriteSpec } from './writer.js';
export {
  GgmlType,
  GgufValueType,
  GGML_TYPES,
  ggmlTypeName,
  type GgufKV,
  type GgufArray,
  type GgufScalar,
} from './types.js';
export {
  writeGgufLoraAdapter,
  readGgufLoraAdapter,
  type GgufLoraPair,
  type GgufLoraSpec,
  type GgufLoraAdapter,
} from './lora.js';
