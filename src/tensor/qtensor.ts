// QTensor: a frozen 2-D weight kept in a ggml block-quantised format exactly as GGUF stores it
// (Q4_K, Q8_0, ...), for models loaded with `weights: 'quantized'`. Its values are by definition
// the dequantised float32 numbers (src/backend/quant.ts), so a product with it equals the product
// with the float32 matrix up to summation order; it is never trained (LoRA adapters beside it
// are). Decoding reads every weight once per token, so holding 4.5–8.5 bits instead of 32 makes
// each step read 4–7× fewer bytes, and the model takes that much less memory.
//
// Only a few ops take one: qlinear (x·Wᵀ, with the gradient for x), qembedding (row gather),
// logits, and dequantizeWeight (a float32 copy, for anything else).
import type { QuantWeight } from '../backend/backend.js';
import { QUANT_BLOCKS } from '../backend/quant.js';
import { ShapeError } from '../util/errors.js';

export class QTensor {
  /** [rows, cols]: [out, in] for a linear weight, [vocab, dim] for an embedding. */
  readonly shape: readonly [number, number];
  /** ggml type id (see QuantWeight). */
  readonly type: number;
  name?: string;
  private w: QuantWeight | null;

  constructor(w: QuantWeight, name?: string) {
    const where = `QTensor${name ? ` ${name}` : ''}`;
    const info = QUANT_BLOCKS.get(w.type);
    if (!info) {
      throw new ShapeError('not a supported block format', {
        where,
        expected: `one of ggml types ${[...QUANT_BLOCKS.keys()].join(', ')}`,
        found: `type ${w.type}`,
      });
    }
    if (!(Number.isInteger(w.rows) && w.rows > 0 && Number.isInteger(w.cols) && w.cols > 0)) {
      throw new ShapeError('invalid shape', {
        where,
        expected: 'positive integer rows and cols',
        found: `[${w.rows}, ${w.cols}]`,
      });
    }
    if (w.cols % info.blockSize !== 0) {
      throw new ShapeError('row length is not a whole number of blocks', {
        where,
        expected: `cols a multiple of ${info.blockSize}`,
        found: String(w.cols),
      });
    }
    const bytes = w.rows * (w.cols / info.blockSize) * info.typeSize;
    if (w.data.length !== bytes) {
      throw new ShapeError('data size does not match the shape', {
        where,
        expected: `${bytes} bytes for [${w.rows}, ${w.cols}]`,
        found: `${w.data.length} bytes`,
      });
    }
    this.shape = Object.freeze([w.rows, w.cols]) as readonly [number, number];
    this.type = w.type;
    this.name = name;
    this.w = w;
  }

  get released(): boolean {
    return this.w === null;
  }

  /** Bytes of the blocks. */
  get byteLength(): number {
    return this.w?.data.length ?? 0;
  }

  /** The blocks for a kernel; a released QTensor is an error naming the op. */
  weightFor(op: string): QuantWeight {
    if (!this.w) {
      throw new ShapeError('use of a released quantised tensor', {
        where: `${op}${this.name ? ` (${this.name})` : ''}`,
        expected: 'a live QTensor',
        found: 'released',
      });
    }
    return this.w;
  }

  /** Drops the blocks (JavaScript memory: the garbage collector frees them). */
  release(): void {
    this.w = null;
  }
}
