// safetensors read and write (https://github.com/huggingface/safetensors): u64 LE header length N,
// N bytes of JSON {"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}},
// then the data (offsets relative to the end of the header). Validated like the Rust crate:
// header size bounds, JSON object, known dtypes, shape × dtype size == byte range, ranges inside
// the data section and non-overlapping. Tensor data is read by offset, never the whole file.
import fs from 'node:fs';
import { z } from 'zod';
import {
  ConfigError,
  FormatError,
  NotFoundError,
  ShapeError,
  UnsupportedError,
} from '../../util/errors.js';
import { decodeBf16Array, decodeF16Array, f32ToBf16Bits, f32ToF16Bits } from '../../util/half.js';
import { BufferSource, FileSource, readTensorBytesFrom, type ByteSource } from '../source.js';

export type SafetensorsDtype =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The Rust crate's limit on the JSON header (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  nElements: number;
  nBytes: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

export class SafetensorsFile {
  readonly metadata: Readonly<Record<string, string>> | undefined;
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** Absolute offset where the data section starts (8 + header length). */
  readonly dataOffset: number;
  private readonly byName: Map<string, SafetensorsTensorInfo>;

  private constructor(private readonly src: ByteSource) {
    const h = parseHeader(src);
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.dataOffset = h.dataOffset;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  static open(path: string): SafetensorsFile {
    const src = new FileSource(path);
    try {
      return new SafetensorsFile(src);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  static fromBuffer(buf: Uint8Array, name = '<buffer>'): SafetensorsFile {
    return new SafetensorsFile(new BufferSource(buf, name));
  }

  get path(): string {
    return this.src.name;
  }

  close(): void {
    this.src.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }

  hasTensor(name: string): boolean {
    return this.byName.has(name);
  }

  tensor(name: string): SafetensorsTensorInfo {
    const t = this.byName.get(name);
    if (!t) {
      throw new NotFoundError('tensor not in file', {
        where: `${this.path}: ${name}`,
        expected: `a tensor named ${name}`,
        found: `${this.tensors.length} tensors, e.g. ${this.tensors
          .slice(0, 3)
          .map((x) => x.name)
          .join(', ')}`,
      });
    }
    return t;
  }

  readBytes(name: string | SafetensorsTensorInfo, dest?: Uint8Array): Uint8Array {
    const t = typeof name === 'string' ? this.tensor(name) : name;
    return readTensorBytesFrom(this.src, t, this.path, dest);
  }

  /** A F32, F16 or BF16 tensor as float32 (row-major over `shape`). */
  readF32(name: string | SafetensorsTensorInfo, out?: Float32Array): Float32Array {
    const t = typeof name === 'string' ? this.tensor(name) : name;
    const where = `${this.path}: ${t.name}`;
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new UnsupportedError('tensor dtype cannot be read as float32', {
        where,
        expected: 'F32, F16 or BF16',
        found: t.dtype,
      });
    }
    const dst = out ?? new Float32Array(t.nElements);
    if (dst.length < t.nElements) {
      throw new ShapeError('destination too small', {
        where,
        expected: `${t.nElements} floats`,
        found: `${dst.length}`,
      });
    }
    if (t.dtype === 'F32') {
      this.src.readInto(
        new Uint8Array(dst.buffer, dst.byteOffset, t.nBytes),
        0,
        t.nBytes,
        t.offset,
      );
      return dst;
    }
    // Half types: decode in chunks so we never hold a second full-size copy.
    const CH = 1 << 21; // elements per chunk
    const buf = new Uint8Array(Math.min(CH, t.nElements) * 2);
    for (let i = 0; i < t.nElements; i += CH) {
      const n = Math.min(CH, t.nElements - i);
      this.src.readInto(buf, 0, 2 * n, t.offset + 2 * i);
      if (t.dtype === 'F16') decodeF16Array(buf, 0, n, dst, i);
      else decodeBf16Array(buf, 0, n, dst, i);
    }
    return dst;
  }
}

function parseHeader(src: ByteSource): {
  metadata: Record<string, string> | undefined;
  tensors: SafetensorsTensorInfo[];
  dataOffset: number;
} {
  const file = src.name;
  const fail = (msg: string, d: { where?: string; expected?: string; found?: string } = {}) =>
    new FormatError(msg, { ...d, where: d.where ? `${file}: ${d.where}` : file });
  if (src.size < 8) {
    throw fail('not a safetensors file (too short)', {
      expected: 'at least 8 bytes (header length)',
      found: `${src.size} bytes`,
    });
  }
  const lenBuf = new Uint8Array(8);
  src.readInto(lenBuf, 0, 8, 0);
  const dv = new DataView(lenBuf.buffer);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi !== 0 || n > MAX_HEADER_BYTES) {
    throw fail('header length too large', {
      expected: `at most ${MAX_HEADER_BYTES} bytes`,
      found: (BigInt(hi) * 2n ** 32n + BigInt(lo)).toString(),
    });
  }
  if (n < 2 || 8 + n > src.size) {
    throw fail('header length outside the file', {
      expected: `2 ≤ N ≤ ${src.size - 8}`,
      found: String(n),
    });
  }
  const hb = new Uint8Array(n);
  src.readInto(hb, 0, n, 8);
  if (hb[0] !== 0x7b) {
    throw fail('header is not a JSON object', {
      expected: "'{'",
      found: JSON.stringify(String.fromCharCode(hb[0])),
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
  } catch (e) {
    throw fail('header is not valid UTF-8 JSON', {
      expected: 'a JSON object',
      found: e instanceof Error ? e.message : String(e),
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fail('header is not a JSON object', { expected: 'object', found: typeof json });
  }
  const dataOffset = 8 + n;
  const dataLen = src.size - dataOffset;
  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      const m = z.record(z.string(), z.string()).safeParse(raw);
      if (!m.success) {
        throw fail('__metadata__ must map strings to strings', {
          where: '__metadata__',
          expected: '{"key": "value", ...}',
          found: JSON.stringify(raw).slice(0, 200),
        });
      }
      metadata = m.data;
      continue;
    }
    const e = entrySchema.safeParse(raw);
    if (!e.success) {
      throw fail('invalid tensor entry', {
        where: name,
        expected: '{"dtype": str, "shape": [int ≥ 0, ...], "data_offsets": [begin, end]}',
        found: JSON.stringify(raw).slice(0, 200),
      });
    }
    const { dtype, shape, data_offsets: off } = e.data;
    if (!(dtype in SAFETENSORS_DTYPE_SIZE)) {
      throw fail('unknown dtype', {
        where: name,
        expected: Object.keys(SAFETENSORS_DTYPE_SIZE).join(', '),
        found: dtype,
      });
    }
    let nElements = 1;
    for (const d of shape) {
      nElements *= d;
      if (!Number.isSafeInteger(nElements)) {
        throw fail('tensor element count overflows', {
          where: name,
          expected: 'fewer than 2^53 elements',
          found: `[${shape.join(', ')}]`,
        });
      }
    }
    const nBytes = nElements * SAFETENSORS_DTYPE_SIZE[dtype as SafetensorsDtype];
    const [begin, end] = off;
    if (end < begin || end > dataLen) {
      throw fail('data_offsets outside the data section', {
        where: name,
        expected: `0 ≤ begin ≤ end ≤ ${dataLen}`,
        found: `[${begin}, ${end}]`,
      });
    }
    if (end - begin !== nBytes) {
      throw fail('byte range does not match dtype and shape', {
        where: name,
        expected: `${nBytes} bytes (${dtype} [${shape.join(', ')}])`,
        found: `${end - begin} bytes [${begin}, ${end}]`,
      });
    }
    tensors.push({
      name,
      dtype: dtype as SafetensorsDtype,
      shape,
      nElements,
      nBytes,
      offset: dataOffset + begin,
    });
  }
  const sorted = tensors.filter((t) => t.nBytes > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    if (p.offset + p.nBytes > sorted[i].offset) {
      throw fail('tensor data overlaps', {
        where: sorted[i].name,
        expected: `begin ≥ ${p.offset + p.nBytes - dataOffset} (end of ${p.name})`,
        found: String(sorted[i].offset - dataOffset),
      });
    }
  }
  return { metadata, tensors, dataOffset };
}

// ---- writing ---------------------------------------------------------------------------------

export interface SafetensorsTensorInput {
  name: string;
  shape: number[];
  /** F32, F16 or BF16 from float32 data; any dtype from `raw` bytes. */
  dtype: SafetensorsDtype;
  data?: Float32Array;
  raw?: Uint8Array;
}

export interface SafetensorsWriteSpec {
  tensors: SafetensorsTensorInput[];
  metadata?: Record<string, string>;
}

function encodeData(t: SafetensorsTensorInput): Uint8Array {
  const nElements = t.shape.reduce((a, b) => a * b, 1);
  const nBytes = nElements * SAFETENSORS_DTYPE_SIZE[t.dtype];
  if (t.raw) {
    if (t.raw.length !== nBytes) {
      throw new ShapeError('raw bytes do not match dtype and shape', {
        where: t.name,
        expected: `${nBytes} bytes`,
        found: `${t.raw.length}`,
      });
    }
    return t.raw;
  }
  const d = t.data;
  if (!d) throw new ConfigError('tensor has neither data nor raw bytes', { where: t.name });
  if (d.length !== nElements) {
    throw new ShapeError('data length does not match the shape', {
      where: t.name,
      expected: `${nElements} ([${t.shape.join(', ')}])`,
      found: `${d.length}`,
    });
  }
  const out = Buffer.alloc(nBytes);
  if (t.dtype === 'F32') out.set(new Uint8Array(d.buffer, d.byteOffset, nBytes));
  else if (t.dtype === 'F16')
    for (let i = 0; i < nElements; i++) out.writeUInt16LE(f32ToF16Bits(d[i]), 2 * i);
  else if (t.dtype === 'BF16')
    for (let i = 0; i < nElements; i++) out.writeUInt16LE(f32ToBf16Bits(d[i]), 2 * i);
  else {
    throw new ConfigError('float32 data can only be written as F32, F16 or BF16', {
      where: t.name,
      found: t.dtype,
      hint: 'pass encoded bytes as `raw`',
    });
  }
  return out;
}

function plan(spec: SafetensorsWriteSpec): { header: Uint8Array; data: Uint8Array[] } {
  const header: Record<string, unknown> = {};
  if (spec.metadata) header.__metadata__ = spec.metadata;
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const t of spec.tensors) {
    if (t.name === '__metadata__' || Object.prototype.hasOwnProperty.call(header, t.name)) {
      throw new ConfigError('duplicate or reserved tensor name', { where: t.name });
    }
    if (t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new ShapeError('invalid shape', { where: t.name, found: `[${t.shape.join(', ')}]` });
    }
    if (!(t.dtype in SAFETENSORS_DTYPE_SIZE)) {
      throw new ConfigError('unknown dtype', { where: t.name, found: String(t.dtype) });
    }
    const bytes = encodeData(t);
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    data.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the Python library does.
  const len = Buffer.byteLength(json);
  json += ' '.repeat((8 - (len % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hb.length);
  out.writeBigUInt64LE(BigInt(hb.length), 0);
  out.set(hb, 8);
  return { header: out, data };
}

export function encodeSafetensors(spec: SafetensorsWriteSpec): Uint8Array {
  const p = plan(spec);
  return Buffer.concat([p.header, ...p.data]);
}

/** Write a safetensors file atomically (`<path>.partial`, then rename). */
export function writeSafetensors(path: string, spec: SafetensorsWriteSpec): void {
  const p = plan(spec);
  const tmp = `${path}.partial`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, p.header);
    for (const d of p.data) fs.writeSync(fd, d);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
}
