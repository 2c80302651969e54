// Dequantisation of a GGUF tensor's bytes to float32: validates the type and the sizes (errors name
// the tensor) and decodes with the block decoders of src/backend/quant.ts, which define the
// values of every ggml block format we read (checked against gguf-py on fixtures in
// dequant.test.ts).
import { UnsupportedError, ShapeError } from '../../util/errors.js';
import { decodeBlocks, QUANT_BLOCKS } from '../../backend/quant.js';
import { GGML_TYPES, ggmlTypeName } from './types.js';

/** Types {@link dequantize} can convert to float32. */
export function canDequantize(type: number): boolean {
  return QUANT_BLOCKS.has(type);
}

/** Bytes that n elements of `type` occupy (n must be a multiple of the block size). */
export function byteSizeOf(type: number, n: number): number {
  const info = GGML_TYPES.get(type);
  if (!info) throw new UnsupportedError('unknown ggml type', { found: String(type) });
  if (n % info.blockSize !== 0) {
    throw new ShapeError(`element count is not a multiple of the ${info.name} block size`, {
      expected: `multiple of ${info.blockSize}`,
      found: String(n),
    });
  }
  return (n / info.blockSize) * info.typeSize;
}

export interface DequantizeOptions {
  /** ggml type of `src`. */
  type: number;
  /** Raw bytes; element 0 starts at src[0]. */
  src: Uint8Array;
  /** Number of elements to decode (a multiple of the type's block size). */
  n: number;
  /** Destination (allocated when absent); written at [outOffset, outOffset + n). */
  out?: Float32Array;
  outOffset?: number;
  /** Named in errors (a tensor name, file). */
  where?: string;
}

/** Decode `n` elements of a ggml type into float32. */
export function dequantize(opts: DequantizeOptions): Float32Array {
  const { type, src, n } = opts;
  const where = opts.where;
  if (!QUANT_BLOCKS.has(type)) {
    throw new UnsupportedError(`cannot dequantize ggml type ${ggmlTypeName(type)}`, {
      where,
      expected: [...QUANT_BLOCKS.keys()].map(ggmlTypeName).join(', '),
      found: ggmlTypeName(type),
      hint: 're-quantize the model to one of the supported types (e.g. Q4_K_M, Q8_0 or F16) with llama-quantize',
    });
  }
  const nbytes = byteSizeOf(type, n);
  if (src.length < nbytes) {
    throw new ShapeError('source buffer too small', {
      where,
      expected: `${nbytes} bytes`,
      found: `${src.length} bytes`,
    });
  }
  const outOffset = opts.outOffset ?? 0;
  const out = opts.out ?? new Float32Array(n);
  if (out.length < outOffset + n) {
    throw new ShapeError('destination too small', {
      where,
      expected: `${outOffset + n} elements`,
      found: `${out.length}`,
    });
  }
  decodeBlocks(type, src, n, out, outOffset);
  return out;
}
