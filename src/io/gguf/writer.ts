// Minimal validated GGUF writer (v3): metadata of every scalar/array type, tensors as F32, F16
// or BF16 from float32 data, or raw bytes of any ggml type. Used for GGUF LoRA adapter export
// (llama.cpp's format: general.type=adapter, adapter.type=lora, adapter.lora.alpha, tensors
// `<base>.lora_a` / `<base>.lora_b`) and to build small test files. The output is re-validated by
// our reader in tests, and follows gguf-py's layout (tensor data aligned, in order).
import fs from 'node:fs';
import { ConfigError, ShapeError } from '../../util/errors.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../util/half.js';
import {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME,
  GgmlType,
  GgufValueType,
  valueTypeSize,
  type GgufKV,
} from './types.js';

/** Helpers to build typed metadata values. */
export const kv = {
  u8: (v: number): GgufKV => ({ type: GgufValueType.UINT8, value: v }),
  i8: (v: number): GgufKV => ({ type: GgufValueType.INT8, value: v }),
  u16: (v: number): GgufKV => ({ type: GgufValueType.UINT16, value: v }),
  i16: (v: number): GgufKV => ({ type: GgufValueType.INT16, value: v }),
  u32: (v: number): GgufKV => ({ type: GgufValueType.UINT32, value: v }),
  i32: (v: number): GgufKV => ({ type: GgufValueType.INT32, value: v }),
  f32: (v: number): GgufKV => ({ type: GgufValueType.FLOAT32, value: v }),
  f64: (v: number): GgufKV => ({ type: GgufValueType.FLOAT64, value: v }),
  u64: (v: bigint | number): GgufKV => ({ type: GgufValueType.UINT64, value: BigInt(v) }),
  i64: (v: bigint | number): GgufKV => ({ type: GgufValueType.INT64, value: BigInt(v) }),
  bool: (v: boolean): GgufKV => ({ type: GgufValueType.BOOL, value: v }),
  str: (v: string): GgufKV => ({ type: GgufValueType.STRING, value: v }),
  strArray: (v: string[]): GgufKV => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.STRING,
    value: v,
  }),
  i32Array: (v: ArrayLike<number>): GgufKV => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.INT32,
    value: Int32Array.from(v),
  }),
  f32Array: (v: ArrayLike<number>): GgufKV => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.FLOAT32,
    value: Float32Array.from(v),
  }),
};

export interface GgufTensorInput {
  name: string;
  /** Row-major shape (PyTorch order); written reversed as ggml dims. */
  shape: number[];
  /** F32, F16 or BF16 when `data` is float32; any ggml type when `raw` is given. */
  type: GgmlType;
  data?: Float32Array;
  /** Already-encoded bytes of `type` (length must match the shape). */
  raw?: Uint8Array;
}

export interface GgufWriteSpec {
  /** Insertion order is kept. */
  metadata: Iterable<[string, GgufKV]>;
  tensors: GgufTensorInput[];
  /** Data alignment (default 32; other values are recorded as general.alignment). */
  alignment?: number;
}

class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  concat(): Uint8Array {
    return Buffer.concat(this.chunks, this.length);
  }
}

function scalarBytes(type: GgufValueType, v: unknown, key: string): Uint8Array {
  const b = Buffer.alloc(valueTypeSize(type));
  const bad = () =>
    new ConfigError('metadata value does not fit its type', {
      where: key,
      expected: GgufValueType[type],
      found: String(v),
    });
  const int = (lo: number, hi: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad();
    return v;
  };
  switch (type) {
    case GgufValueType.UINT8:
      b.writeUInt8(int(0, 255));
      break;
    case GgufValueType.INT8:
      b.writeInt8(int(-128, 127));
      break;
    case GgufValueType.UINT16:
      b.writeUInt16LE(int(0, 65535));
      break;
    case GgufValueType.INT16:
      b.writeInt16LE(int(-32768, 32767));
      break;
    case GgufValueType.UINT32:
      b.writeUInt32LE(int(0, 2 ** 32 - 1));
      break;
    case GgufValueType.INT32:
      b.writeInt32LE(int(-(2 ** 31), 2 ** 31 - 1));
      break;
    case GgufValueType.FLOAT32:
      if (typeof v !== 'number') throw bad();
      b.writeFloatLE(v);
      break;
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') throw bad();
      b.writeDoubleLE(v);
      break;
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw bad();
      b.writeUInt8(v ? 1 : 0);
      break;
    case GgufValueType.UINT64:
      if (typeof v !== 'bigint' || v < 0n || v >= 2n ** 64n) throw bad();
      b.writeBigUInt64LE(v);
      break;
    case GgufValueType.INT64:
      if (typeof v !== 'bigint' || v < -(2n ** 63n) || v >= 2n ** 63n) throw bad();
      b.writeBigInt64LE(v);
      break;
    default:
      throw bad();
  }
  return b;
}

function encodeKV(out: Bytes, key: string, entry: GgufKV): void {
  out.str(key);
  out.u32(entry.type);
  if (entry.type === GgufValueType.STRING) {
    if (typeof entry.value !== 'string') {
      throw new ConfigError('metadata value is not a string', { where: key });
    }
    out.str(entry.value);
  } else if (entry.type === GgufValueType.ARRAY) {
    out.u32(entry.itemType);
    const arr = entry.value as ArrayLike<unknown>;
    out.u64(arr.length);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (entry.itemType === GgufValueType.STRING) {
        if (typeof v !== 'string')
          throw new ConfigError('array item is not a string', { where: `${key}[${i}]` });
        out.str(v);
      } else {
        out.push(scalarBytes(entry.itemType, v, `${key}[${i}]`));
      }
    }
  } else {
    out.push(scalarBytes(entry.type, entry.value, key));
  }
}

function encodeTensorData(t: GgufTensorInput, nElements: number): Uint8Array {
  const info = GGML_TYPES.get(t.type);
  if (!info) throw new ConfigError('unknown ggml type', { where: t.name, found: String(t.type) });
  const nBytes = (nElements / info.blockSize) * info.typeSize;
  if (t.raw) {
    if (t.raw.length !== nBytes) {
      throw new ShapeError('raw tensor bytes do not match the shape', {
        where: t.name,
        expected: `${nBytes} bytes (${info.name} ${t.shape.join('x')})`,
        found: `${t.raw.length}`,
      });
    }
    return t.raw;
  }
  const d = t.data;
  if (!d) throw new ConfigError('tensor has neither data nor raw bytes', { where: t.name });
  if (d.length !== nElements) {
    throw new ShapeError('tensor data length does not match the shape', {
      where: t.name,
      expected: `${nElements} (${t.shape.join('x')})`,
      found: `${d.length}`,
    });
  }
  const out = Buffer.alloc(nBytes);
  if (t.type === GgmlType.F32) {
    out.set(new Uint8Array(d.buffer, d.byteOffset, nBytes));
  } else if (t.type === GgmlType.F16) {
    for (let i = 0; i < nElements; i++) out.writeUInt16LE(f32ToF16Bits(d[i]), 2 * i);
  } else if (t.type === GgmlType.BF16) {
    for (let i = 0; i < nElements; i++) out.writeUInt16LE(f32ToBf16Bits(d[i]), 2 * i);
  } else {
    throw new ConfigError('float32 data can only be written as F32, F16 or BF16', {
      where: t.name,
      found: info.name,
      hint: 'pass already-quantised bytes as `raw`',
    });
  }
  return out;
}

interface Planned {
  header: Uint8Array;
  data: Array<{ bytes: Uint8Array; pad: number }>;
}

function plan(spec: GgufWriteSpec): Planned {
  const alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new ConfigError('alignment must be a power of two', { found: String(alignment) });
  }
  const meta = new Map<string, GgufKV>();
  for (const [k, v] of spec.metadata) {
    if (meta.has(k)) throw new ConfigError('duplicate metadata key', { where: k });
    meta.set(k, v);
  }
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !meta.has('general.alignment')) {
    meta.set('general.alignment', kv.u32(alignment));
  }
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(spec.tensors.length);
  h.u64(meta.size);
  for (const [k, v] of meta) encodeKV(h, k, v);
  const names = new Set<string>();
  const data: Planned['data'] = [];
  let offset = 0;
  for (const t of spec.tensors) {
    if (Buffer.byteLength(t.name) >= GGUF_MAX_NAME) {
      throw new ConfigError('tensor name too long for GGUF', {
        where: t.name,
        expected: `< ${GGUF_MAX_NAME} bytes`,
      });
    }
    if (names.has(t.name)) throw new ConfigError('duplicate tensor name', { where: t.name });
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > GGUF_MAX_DIMS) {
      throw new ShapeError('GGUF tensors have 1 to 4 dimensions', {
        where: t.name,
        found: `[${t.shape.join(', ')}]`,
      });
    }
    if (t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new ShapeError('invalid dimension', {
        where: t.name,
        found: `[${t.shape.join(', ')}]`,
      });
    }
    const nElements = t.shape.reduce((a, b) => a * b, 1);
    const info = GGML_TYPES.get(t.type);
    const dims = [...t.shape].reverse();
    if (info && dims[0] % info.blockSize !== 0) {
      throw new ShapeError('row length is not a multiple of the block size', {
        where: t.name,
        expected: `multiple of ${info.blockSize}`,
        found: String(dims[0]),
      });
    }
    const bytes = encodeTensorData(t, nElements);
    h.str(t.name);
    h.u32(dims.length);
    for (const d of dims) h.u64(d);
    h.u32(t.type);
    h.u64(offset);
    const pad = (alignment - (bytes.length % alignment)) % alignment;
    data.push({ bytes, pad });
    offset += bytes.length + pad;
  }
  const headerPad = (alignment - (h.length % alignment)) % alignment;
  h.push(new Uint8Array(headerPad));
  return { header: h.concat(), data };
}

/** Encode a GGUF file in memory (small files, tests). */
export function encodeGguf(spec: GgufWriteSpec): Uint8Array {
  const p = plan(spec);
  const parts: Uint8Array[] = [p.header];
  for (const d of p.data) parts.push(d.bytes, new Uint8Array(d.pad));
  return Buffer.concat(parts);
}

/** Write a GGUF file atomically (to `<path>.partial`, then renamed). */
export function writeGguf(path: string, spec: GgufWriteSpec): void {
  const p = plan(spec);
  const tmp = `${path}.partial`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, p.header);
    for (const d of p.data) {
      fs.writeSync(fd, d.bytes);
      if (d.pad) fs.writeSync(fd, new Uint8Array(d.pad));
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
}
