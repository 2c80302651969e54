// GGML tensor types and GGUF metadata value types, numbered as in ggml.h / gguf.h.

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

export interface GgmlTypeInfo {
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

/** Block layout of every type ggml knows (so sizes of tensors we cannot dequantise still validate). */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  (
    [
      [GgmlType.F32, 1, 4],
      [GgmlType.F16, 1, 2],
      [GgmlType.Q4_0, 32, 18],
      [GgmlType.Q4_1, 32, 20],
      [GgmlType.Q5_0, 32, 22],
      [GgmlType.Q5_1, 32, 24],
      [GgmlType.Q8_0, 32, 34],
      [GgmlType.Q8_1, 32, 36],
      [GgmlType.Q2_K, 256, 84],
      [GgmlType.Q3_K, 256, 110],
      [GgmlType.Q4_K, 256, 144],
      [GgmlType.Q5_K, 256, 176],
      [GgmlType.Q6_K, 256, 210],
      [GgmlType.Q8_K, 256, 292],
      [GgmlType.IQ2_XXS, 256, 66],
      [GgmlType.IQ2_XS, 256, 74],
      [GgmlType.IQ3_XXS, 256, 98],
      [GgmlType.IQ1_S, 256, 50],
      [GgmlType.IQ4_NL, 32, 18],
      [GgmlType.IQ3_S, 256, 110],
      [GgmlType.IQ2_S, 256, 82],
      [GgmlType.IQ4_XS, 256, 136],
      [GgmlType.I8, 1, 1],
      [GgmlType.I16, 1, 2],
      [GgmlType.I32, 1, 4],
      [GgmlType.I64, 1, 8],
      [GgmlType.F64, 1, 8],
      [GgmlType.IQ1_M, 256, 56],
      [GgmlType.BF16, 1, 2],
      [GgmlType.TQ1_0, 256, 54],
      [GgmlType.TQ2_0, 256, 66],
      [GgmlType.MXFP4, 32, 17],
    ] as const
  ).map(([t, blockSize, typeSize]) => [t, { name: GgmlType[t], blockSize, typeSize }]),
);

export function ggmlTypeName(t: number): string {
  return GGML_TYPES.get(t)?.name ?? `unknown(${t})`;
}

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Byte size of a scalar value type (0 for STRING and ARRAY, which are variable). */
export function valueTypeSize(t: GgufValueType): number {
  switch (t) {
    case GgufValueType.UINT8:
    case GgufValueType.INT8:
    case GgufValueType.BOOL:
      return 1;
    case GgufValueType.UINT16:
    case GgufValueType.INT16:
      return 2;
    case GgufValueType.UINT32:
    case GgufValueType.INT32:
    case GgufValueType.FLOAT32:
      return 4;
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
    case GgufValueType.FLOAT64:
      return 8;
    default:
      return 0;
  }
}

/**
 * A metadata value. Scalars: number (8-32 bit ints, floats), bigint (u64/i64), boolean, string.
 * Arrays: typed arrays for numbers (BigInt64Array/BigUint64Array for 64-bit ints), string[] and
 * boolean[].
 */
export type GgufScalar = number | bigint | boolean | string;
export type GgufArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | string[]
  | boolean[];

export type GgufKV =
  | { type: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType; value: GgufArray };

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS: tensors have at most 4 dimensions. */
export const GGUF_MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME: a tensor name must be shorter than 64 bytes. */
export const GGUF_MAX_NAME = 64;
