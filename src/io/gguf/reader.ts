// Validated GGUF reader (versions 2 and 3), after ggml's gguf.cpp: magic, version, counts within
// what the file can hold, unique keys and tensor names, known value and tensor types, at most 4
// dimensions, no size overflow, general.alignment a power of two, tensor data aligned, inside the
// file and non-overlapping. The header is read through a bounded window; tensor data is read by
// offset straight into its destination, so a multi-GB model is never copied whole into memory.
//
// Layout: magic "GGUF" u32 | version u32 | n_tensors u64 | n_kv u64 | kv* | tensor_info* |
// padding to alignment | tensor data. Strings are u64 length + UTF-8 bytes; everything LE.
import { FormatError, NotFoundError, UnsupportedError, ShapeError } from '../../util/errors.js';
import { BufferSource, FileSource, readTensorBytesFrom, type ByteSource } from '../source.js';
import { canDequantize, dequantize } from './dequant.js';
import {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME,
  GgufValueType,
  valueTypeSize,
  type GgufArray,
  type GgufKV,
  type GgufScalar,
} from './types.js';

export interface GgufTensorInfo {
  name: string;
  /** ggml type number (see GgmlType). */
  type: number;
  typeName: string;
  /** ggml order: dims[0] (ne0) varies fastest, i.e. it is the row length. */
  dims: number[];
  /** Row-major shape (dims reversed), as numpy / PyTorch / safetensors write it. */
  shape: number[];
  nElements: number;
  nBytes: number;
  /** Absolute byte offset of the tensor data in the file. */
  offset: number;
}

const MIN_KV_BYTES = 8 + 4 + 1; // empty key, type, 1-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8; // empty name, n_dims 0, type, offset
const WINDOW = 1 << 20;
const MAX_SAFE_HI = 0x1fffff; // high u32 word of a u64 that still fits in 2^53

/** Bounded-window cursor over a ByteSource for the header. */
class Cursor {
  private buf = new Uint8Array(WINDOW);
  private dv = new DataView(this.buf.buffer);
  // A Buffer view of `buf` for UTF-8 decoding without a wrapper object per string.
  private nb = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  private bufStart = 0;
  private bufLen = 0;
  pos = 0;

  constructor(private readonly src: ByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  /** Make bytes [pos, pos+n) available in the window; returns their index in `buf`. */
  need(n: number, what: string): number {
    if (n > this.remaining) {
      throw new FormatError(`file truncated while reading ${what}`, {
        where: this.src.name,
        expected: `${n} more bytes at offset ${this.pos}`,
        found: `${this.remaining} bytes left (file size ${this.src.size})`,
      });
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.bufLen) {
      const cap = Math.max(n, WINDOW);
      if (this.buf.length < cap) {
        this.buf = new Uint8Array(cap);
        this.dv = new DataView(this.buf.buffer);
        this.nb = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.length);
      }
      const len = Math.min(this.buf.length, this.src.size - this.pos);
      this.src.readInto(this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
      this.bufLen = len;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    return this.buf[this.need(1, what)];
  }
  i8(what: string): number {
    return this.dv.getInt8(this.need(1, what));
  }
  u16(what: string): number {
    return this.dv.getUint16(this.need(2, what), true);
  }
  i16(what: string): number {
    return this.dv.getInt16(this.need(2, what), true);
  }
  u32(what: string): number {
    return this.dv.getUint32(this.need(4, what), true);
  }
  i32(what: string): number {
    return this.dv.getInt32(this.need(4, what), true);
  }
  f32(what: string): number {
    return this.dv.getFloat32(this.need(4, what), true);
  }
  f64(what: string): number {
    return this.dv.getFloat64(this.need(8, what), true);
  }
  u64big(what: string): bigint {
    return this.dv.getBigUint64(this.need(8, what), true);
  }
  i64big(what: string): bigint {
    return this.dv.getBigInt64(this.need(8, what), true);
  }
  /** A u64 that must fit in a JS number (counts, lengths, offsets). */
  u64(what: string): number {
    const at = this.need(8, what);
    const lo = this.dv.getUint32(at, true);
    const hi = this.dv.getUint32(at + 4, true);
    if (hi > MAX_SAFE_HI) {
      throw new FormatError(`${what} is too large`, {
        where: this.src.name,
        expected: 'a value below 2^53',
        found: (BigInt(hi) * 2n ** 32n + BigInt(lo)).toString(),
      });
    }
    return hi * 2 ** 32 + lo;
  }
  string(what: string): string {
    // Hot path (vocabularies hold 100k+ strings): no message strings built unless an error.
    const at0 = this.need(8, what);
    const lo = this.dv.getUint32(at0, true);
    const hi = this.dv.getUint32(at0 + 4, true);
    if (hi !== 0 || lo > this.remaining) {
      throw new FormatError(`string length of ${what} exceeds the file`, {
        where: this.src.name,
        expected: `at most ${this.remaining} bytes`,
        found: (BigInt(hi) * 2n ** 32n + BigInt(lo)).toString(),
      });
    }
    const at = this.need(lo, what);
    return this.nb.toString('utf8', at, at + lo);
  }
  /** Copy n bytes out of the file (for numeric arrays). */
  bytes(n: number, what: string): Uint8Array {
    const out = new Uint8Array(n);
    // Large arrays are read straight from the source rather than through the window.
    if (n > WINDOW) {
      if (n > this.remaining) this.need(n, what); // throws the truncation error
      this.src.readInto(out, 0, n, this.pos);
      this.pos += n;
      return out;
    }
    const at = this.need(n, what);
    out.set(this.buf.subarray(at, at + n));
    return out;
  }
}

export interface GgufOpenOptions {
  /** Reject files whose metadata holds more than this many keys (default 1e6). */
  maxKeys?: number;
}

export class GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufKV>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset where the tensor data section starts. */
  readonly dataOffset: number;
  private readonly byName: Map<string, GgufTensorInfo>;
  /** Scratch for readRowsF32 (grown on demand, reused). */
  private chunk = new Uint8Array(0);

  private constructor(
    private readonly src: ByteSource,
    opts: GgufOpenOptions,
  ) {
    const h = parseHeader(src, opts);
    this.version = h.version;
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.alignment = h.alignment;
    this.dataOffset = h.dataOffset;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  /** Open and validate a GGUF file; tensor data stays on disk until read. Call close() when done. */
  static open(path: string, opts: GgufOpenOptions = {}): GgufFile {
    const src = new FileSource(path);
    try {
      return new GgufFile(src, opts);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** Parse a GGUF image held in memory (tests, fuzzing). */
  static fromBuffer(buf: Uint8Array, name = '<buffer>', opts: GgufOpenOptions = {}): GgufFile {
    return new GgufFile(new BufferSource(buf, name), opts);
  }

  get path(): string {
    return this.src.name;
  }
  get fileSize(): number {
    return this.src.size;
  }

  close(): void {
    this.src.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }

  // ---- metadata -------------------------------------------------------------------------

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** The raw typed entry, or undefined. */
  getKV(key: string): GgufKV | undefined {
    return this.metadata.get(key);
  }

  private required(key: string): GgufKV {
    const kv = this.metadata.get(key);
    if (!kv) {
      throw new NotFoundError('metadata key missing', {
        where: `${this.path}: ${key}`,
        expected: `key ${key}`,
        found: 'absent',
      });
    }
    return kv;
  }

  private wrongType(key: string, expected: string, kv: GgufKV): FormatError {
    return new FormatError('metadata value has the wrong type', {
      where: `${this.path}: ${key}`,
      expected,
      found:
        kv.type === GgufValueType.ARRAY
          ? `array of ${GgufValueType[kv.itemType]}`
          : GgufValueType[kv.type],
    });
  }

  getString(key: string): string;
  getString(key: string, fallback: string): string;
  getString(key: string, fallback?: string): string | undefined;
  getString(key: string, fallback?: string): string | undefined {
    if (!this.metadata.has(key) && arguments.length > 1) return fallback;
    const kv = this.required(key);
    if (kv.type !== GgufValueType.STRING) throw this.wrongType(key, 'STRING', kv);
    return kv.value as string;
  }

  /** Any integer or float scalar as a number (64-bit integers must fit in 2^53). */
  getNumber(key: string): number;
  getNumber(key: string, fallback: number): number;
  getNumber(key: string, fallback?: number): number | undefined;
  getNumber(key: string, fallback?: number): number | undefined {
    if (!this.metadata.has(key) && arguments.length > 1) return fallback;
    const kv = this.required(key);
    if (
      kv.type === GgufValueType.ARRAY ||
      kv.type === GgufValueType.STRING ||
      kv.type === GgufValueType.BOOL
    ) {
      throw this.wrongType(key, 'a number', kv);
    }
    const v = kv.value;
    if (typeof v === 'bigint') {
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new FormatError('metadata integer too large for a number', {
          where: `${this.path}: ${key}`,
          expected: '|value| < 2^53',
          found: v.toString(),
        });
      }
      return Number(v);
    }
    return v as number;
  }

  getBool(key: string): boolean;
  getBool(key: string, fallback: boolean): boolean;
  getBool(key: string, fallback?: boolean): boolean | undefined {
    if (!this.metadata.has(key) && arguments.length > 1) return fallback;
    const kv = this.required(key);
    if (kv.type !== GgufValueType.BOOL) throw this.wrongType(key, 'BOOL', kv);
    return kv.value as boolean;
  }

  getArray(key: string): GgufArray {
    const kv = this.required(key);
    if (kv.type !== GgufValueType.ARRAY) throw this.wrongType(key, 'ARRAY', kv);
    return kv.value;
  }

  getStringArray(key: string): string[] {
    const kv = this.required(key);
    if (kv.type !== GgufValueType.ARRAY || kv.itemType !== GgufValueType.STRING) {
      throw this.wrongType(key, 'array of STRING', kv);
    }
    return kv.value as string[];
  }

  /** A numeric array (8-32 bit ints or floats) as an array of numbers. */
  getNumberArray(key: string): ArrayLike<number> & Iterable<number> {
    const kv = this.required(key);
    if (
      kv.type !== GgufValueType.ARRAY ||
      kv.itemType === GgufValueType.STRING ||
      kv.itemType === GgufValueType.BOOL ||
      kv.itemType === GgufValueType.UINT64 ||
      kv.itemType === GgufValueType.INT64 ||
      kv.itemType === GgufValueType.ARRAY
    ) {
      throw this.wrongType(key, 'array of 8-32 bit numbers or floats', kv);
    }
    return kv.value as ArrayLike<number> & Iterable<number>;
  }

  /** general.architecture (e.g. "llama", "qwen2"). */
  get architecture(): string {
    return this.getString('general.architecture');
  }

  // ---- tensors --------------------------------------------------------------------------

  tensor(name: string): GgufTensorInfo {
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

  hasTensor(name: string): boolean {
    return this.byName.has(name);
  }

  /** Raw bytes of a tensor, read by offset into `dest` (allocated when absent). */
  readTensorBytes(name: string | GgufTensorInfo, dest?: Uint8Array): Uint8Array {
    const t = typeof name === 'string' ? this.tensor(name) : name;
    return readTensorBytesFrom(this.src, t, this.path, dest);
  }

  /**
   * A tensor dequantised to float32, in ggml order (row-major over `shape`). Reads and decodes in
   * chunks of whole blocks, so peak extra memory is one chunk, not a second copy of the tensor.
   */
  readTensorF32(name: string | GgufTensorInfo, out?: Float32Array): Float32Array {
    const t = typeof name === 'string' ? this.tensor(name) : name;
    // A zero-sized dimension anywhere means no rows; a 0-dim tensor is one row of one element.
    const rowLen = t.dims[0] ?? 1;
    return this.readRowsF32(t, 0, t.nElements === 0 ? 0 : t.nElements / rowLen, out);
  }

  /**
   * Rows [rowStart, rowStart+rowCount) of a tensor (a row is dims[0] elements), dequantised to
   * float32: an embedding lookup needs only the rows of its tokens.
   */
  readRowsF32(
    name: string | GgufTensorInfo,
    rowStart: number,
    rowCount: number,
    out?: Float32Array,
  ): Float32Array {
    const t = typeof name === 'string' ? this.tensor(name) : name;
    const where = `${this.path}: ${t.name}`;
    if (!canDequantize(t.type)) {
      throw new UnsupportedError(`cannot dequantize tensor type ${t.typeName}`, {
        where,
        expected: 'F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K',
        found: t.typeName,
        hint: 'convert or re-quantize the model (llama-quantize) to a supported type',
      });
    }
    const rowLen = t.dims[0] ?? 1;
    const nRows = rowLen === 0 ? 0 : t.nElements / rowLen;
    if (
      !Number.isInteger(rowStart) ||
      !Number.isInteger(rowCount) ||
      rowStart < 0 ||
      rowCount < 0 ||
      rowStart + rowCount > nRows
    ) {
      throw new ShapeError('row range outside the tensor', {
        where,
        expected: `rows within [0, ${nRows})`,
        found: `[${rowStart}, ${rowStart + rowCount})`,
      });
    }
    const n = rowCount * rowLen;
    const dst = out ?? new Float32Array(n);
    if (dst.length < n) {
      throw new ShapeError('destination too small', {
        where,
        expected: `${n} floats`,
        found: `${dst.length}`,
      });
    }
    const info = GGML_TYPES.get(t.type)!;
    const rowBytes = (rowLen / info.blockSize) * info.typeSize;
    // Chunk = whole rows, about 4 MiB of source bytes (at least one row).
    const rowsPerChunk = Math.max(1, Math.floor((4 << 20) / Math.max(1, rowBytes)));
    // One chunk buffer per file, reused by every call: a model load reads hundreds of tensors,
    // and a fresh 4 MiB buffer each was garbage enough to add ~100 MiB to the load's peak RSS.
    const need = Math.min(rowCount, rowsPerChunk) * rowBytes;
    if (this.chunk.length < need) this.chunk = new Uint8Array(need);
    const chunk = this.chunk;
    for (let r = 0; r < rowCount; r += rowsPerChunk) {
      const k = Math.min(rowsPerChunk, rowCount - r);
      const bytes = chunk.subarray(0, k * rowBytes);
      this.src.readInto(bytes, 0, k * rowBytes, t.offset + (rowStart + r) * rowBytes);
      dequantize({
        type: t.type,
        src: bytes,
        n: k * rowLen,
        out: dst,
        outOffset: r * rowLen,
        where,
      });
    }
    return dst;
  }
}

/** Open a GGUF file (see GgufFile.open). */
export function openGguf(path: string, opts: GgufOpenOptions = {}): GgufFile {
  return GgufFile.open(path, opts);
}

interface ParsedHeader {
  version: number;
  metadata: Map<string, GgufKV>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
}

function parseHeader(src: ByteSource, opts: GgufOpenOptions): ParsedHeader {
  const file = src.name;
  const c = new Cursor(src);
  const fail = (msg: string, d: { where?: string; expected?: string; found?: string }) =>
    new FormatError(msg, { ...d, where: d.where ? `${file}: ${d.where}` : file });

  if (src.size < 4) {
    throw fail('not a GGUF file (too short)', {
      expected: 'magic "GGUF"',
      found: `${src.size} bytes`,
    });
  }
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(magic);
    throw fail('not a GGUF file', {
      expected: 'magic "GGUF" (47 47 55 46)',
      found: JSON.stringify(b.toString('latin1')) + ` (${b.toString('hex')})`,
    });
  }
  const version = c.u32('version');
  if ((version & 0xffff) === 0 && version !== 0) {
    throw new UnsupportedError('big-endian GGUF files are not supported', {
      where: file,
      expected: 'little-endian GGUF v2 or v3',
      found: `version field 0x${version.toString(16)} (byte-swapped)`,
    });
  }
  if (version === 1) {
    throw new UnsupportedError('GGUF v1 is no longer supported', {
      where: file,
      expected: 'GGUF v2 or v3',
      found: 'v1',
      hint: 'convert the model again with a current llama.cpp',
    });
  }
  if (version !== 2 && version !== 3) {
    throw fail('unsupported GGUF version', { expected: '2 or 3', found: String(version) });
  }
  const nTensors = c.u64('tensor count');
  const nKv = c.u64('metadata key count');
  // Counts must be satisfiable by the bytes left: this rejects hostile counts before any loop or
  // allocation, like gguf.cpp's SIZE_MAX checks.
  if (nKv * MIN_KV_BYTES > c.remaining) {
    throw fail('metadata key count exceeds what the file can hold', {
      where: 'n_kv',
      expected: `at most ${Math.floor(c.remaining / MIN_KV_BYTES)}`,
      found: String(nKv),
    });
  }
  if (nTensors * MIN_TENSOR_INFO_BYTES > c.remaining) {
    throw fail('tensor count exceeds what the file can hold', {
      where: 'n_tensors',
      expected: `at most ${Math.floor(c.remaining / MIN_TENSOR_INFO_BYTES)}`,
      found: String(nTensors),
    });
  }
  if (opts.maxKeys !== undefined && nKv > opts.maxKeys) {
    throw fail('too many metadata keys', { expected: `≤ ${opts.maxKeys}`, found: String(nKv) });
  }

  const metadata = new Map<string, GgufKV>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key #${i}`);
    if (metadata.has(key)) {
      throw fail('duplicate metadata key', { where: key, expected: 'unique keys', found: 'twice' });
    }
    const type = c.u32(`type of ${key}`);
    metadata.set(key, readValue(c, type, key, fail));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al) {
    if (al.type !== GgufValueType.UINT32) {
      throw fail('general.alignment has the wrong type', {
        where: 'general.alignment',
        expected: 'UINT32',
        found: GgufValueType[al.type],
      });
    }
    const a = al.value as number;
    if (a === 0 || (a & (a - 1)) !== 0) {
      throw fail('general.alignment is not a power of two', {
        where: 'general.alignment',
        expected: 'a non-zero power of two',
        found: String(a),
      });
    }
    alignment = a;
  }

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`name of tensor #${i}`);
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes >= GGUF_MAX_NAME) {
      throw fail('tensor name too long', {
        where: name,
        expected: `< ${GGUF_MAX_NAME} bytes`,
        found: `${nameBytes}`,
      });
    }
    if (names.has(name)) {
      throw fail('duplicate tensor name', {
        where: name,
        expected: 'unique names',
        found: 'twice',
      });
    }
    names.add(name);
    const nDims = c.u32(`n_dims of ${name}`);
    if (nDims > GGUF_MAX_DIMS) {
      throw fail('too many tensor dimensions', {
        where: name,
        expected: `≤ ${GGUF_MAX_DIMS}`,
        found: String(nDims),
      });
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.u64(`dimension ${d} of ${name}`));
    const type = c.u32(`type of ${name}`);
    const info = GGML_TYPES.get(type);
    if (!info) {
      throw fail('unknown tensor type', {
        where: name,
        expected: 'a ggml type number',
        found: String(type),
      });
    }
    const rel = c.u64(`data offset of ${name}`);
    let nElements = 1;
    for (const d of dims) {
      nElements *= d;
      if (!Number.isSafeInteger(nElements)) {
        throw fail('tensor element count overflows', {
          where: name,
          expected: 'fewer than 2^53 elements',
          found: `dims ${dims.join('x')}`,
        });
      }
    }
    if ((dims[0] ?? 1) % info.blockSize !== 0) {
      throw fail('row length is not a multiple of the block size', {
        where: name,
        expected: `dims[0] multiple of ${info.blockSize} (${info.name})`,
        found: String(dims[0]),
      });
    }
    const nBytes = (nElements / info.blockSize) * info.typeSize;
    if (rel % alignment !== 0) {
      throw fail('tensor data offset is not aligned', {
        where: name,
        expected: `multiple of ${alignment}`,
        found: String(rel),
      });
    }
    tensors.push({
      name,
      type,
      typeName: info.name,
      dims,
      shape: [...dims].reverse(),
      nElements,
      nBytes,
      offset: rel, // made absolute below
    });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  if (tensors.length > 0 && dataOffset > src.size) {
    throw fail('file truncated before the tensor data', {
      expected: `data section at offset ${dataOffset}`,
      found: `file size ${src.size}`,
    });
  }
  for (const t of tensors) {
    const abs = dataOffset + t.offset;
    if (!Number.isSafeInteger(abs + t.nBytes) || abs + t.nBytes > src.size) {
      throw fail('tensor data outside the file', {
        where: t.name,
        expected: `bytes [${abs}, ${abs + t.nBytes}) inside ${src.size}`,
        found: `file size ${src.size}`,
      });
    }
    t.offset = abs;
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    if (p.offset + p.nBytes > sorted[i].offset && p.nBytes > 0 && sorted[i].nBytes > 0) {
      throw fail('tensor data overlaps', {
        where: sorted[i].name,
        expected: `start at or after ${p.offset + p.nBytes} (end of ${p.name})`,
        found: String(sorted[i].offset),
      });
    }
  }
  return { version, metadata, tensors, alignment, dataOffset };
}

type Fail = (msg: string, d: { where?: string; expected?: string; found?: string }) => FormatError;

function readScalar(c: Cursor, type: number, what: string, fail: Fail): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8(what);
    case GgufValueType.INT8:
      return c.i8(what);
    case GgufValueType.UINT16:
      return c.u16(what);
    case GgufValueType.INT16:
      return c.i16(what);
    case GgufValueType.UINT32:
      return c.u32(what);
    case GgufValueType.INT32:
      return c.i32(what);
    case GgufValueType.FLOAT32:
      return c.f32(what);
    case GgufValueType.BOOL: {
      const b = c.u8(what);
      if (b > 1) throw fail('invalid bool', { where: what, expected: '0 or 1', found: String(b) });
      return b === 1;
    }
    case GgufValueType.STRING:
      return c.string(what);
    case GgufValueType.UINT64:
      return c.u64big(what);
    case GgufValueType.INT64:
      return c.i64big(what);
    case GgufValueType.FLOAT64:
      return c.f64(what);
    default:
      throw fail('unknown metadata value type', {
        where: what,
        expected: 'a GGUF value type 0..12',
        found: String(type),
      });
  }
}

function readValue(c: Cursor, type: number, key: string, fail: Fail): GgufKV {
  if (type !== GgufValueType.ARRAY) {
    return { type, value: readScalar(c, type, key, fail) } as GgufKV;
  }
  const itemType = c.u32(`array item type of ${key}`);
  const n = c.u64(`array length of ${key}`);
  if (itemType === GgufValueType.ARRAY) {
    throw fail('nested arrays are not supported', {
      where: key,
      expected: 'an array of scalars or strings',
      found: 'array of arrays',
    });
  }
  if (itemType > GgufValueType.FLOAT64) {
    throw fail('unknown array item type', {
      where: key,
      expected: 'a GGUF value type 0..12',
      found: String(itemType),
    });
  }
  const size = itemType === GgufValueType.STRING ? 8 : valueTypeSize(itemType);
  if (n * size > c.remaining) {
    throw fail('array length exceeds the file', {
      where: key,
      expected: `at most ${Math.floor(c.remaining / size)} items`,
      found: String(n),
    });
  }
  if (itemType === GgufValueType.STRING) {
    const arr = new Array<string>(n);
    // One label for all items: building 150k per-item labels would cost more than the parse.
    for (let i = 0; i < n; i++) arr[i] = c.string(key);
    return { type, itemType, value: arr };
  }
  if (itemType === GgufValueType.BOOL) {
    const raw = c.bytes(n, key);
    const arr = new Array<boolean>(n);
    for (let i = 0; i < n; i++) {
      if (raw[i] > 1) {
        throw fail('invalid bool', {
          where: `${key}[${i}]`,
          expected: '0 or 1',
          found: String(raw[i]),
        });
      }
      arr[i] = raw[i] === 1;
    }
    return { type, itemType, value: arr };
  }
  const raw = c.bytes(n * size, key); // fresh, aligned at 0: typed views are safe (LE hosts)
  const b = raw.buffer;
  let value: GgufArray;
  switch (itemType) {
    case GgufValueType.UINT8:
      value = raw;
      break;
    case GgufValueType.INT8:
      value = new Int8Array(b, 0, n);
      break;
    case GgufValueType.UINT16:
      value = new Uint16Array(b, 0, n);
      break;
    case GgufValueType.INT16:
      value = new Int16Array(b, 0, n);
      break;
    case GgufValueType.UINT32:
      value = new Uint32Array(b, 0, n);
      break;
    case GgufValueType.INT32:
      value = new Int32Array(b, 0, n);
      break;
    case GgufValueType.FLOAT32:
      value = new Float32Array(b, 0, n);
      break;
    case GgufValueType.UINT64:
      value = new BigUint64Array(b, 0, n);
      break;
    case GgufValueType.INT64:
      value = new BigInt64Array(b, 0, n);
      break;
    default:
      value = new Float64Array(b, 0, n);
  }
  return { type, itemType, value };
}
