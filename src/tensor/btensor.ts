// BTensor: a frozen 2-D weight rounded to bf16 for the bf16 compute mode (models converted with
// `useBf16Compute`, src/models/compute.ts). Its values are by definition the bf16 roundings of the
// float32 weight it was made from (round to nearest even), and a product with it (`blinear`)
// rounds the activations to bf16 as well and sums in fp32: the point is the hardware's bf16
// units (AVX512-BF16 vdpbf16ps here), which do twice the multiply-adds per instruction of fp32
// FMAs. It is never trained (LoRA adapters beside it are, in fp32), so it needs no gradient; the
// gradient for the activations goes through bf16 products as well.
//
// The words are laid out once, by the backend that will multiply with them (Bf16Weight.layout),
// from a float32 weight the caller may then release: the native layout takes 2 bytes per value
// for inference, and 2 more once a backward has asked for the input gradient's layout.
import type { Bf16Weight } from '../backend/backend.js';
import { ShapeError } from '../util/errors.js';

export class BTensor {
  /** [rows, cols]: [out, in] for a linear weight. */
  readonly shape: readonly [number, number];
  name?: string;
  private w: Bf16Weight | null;

  constructor(w: Bf16Weight, name?: string) {
    const where = `BTensor${name ? ` ${name}` : ''}`;
    if (!(Number.isInteger(w.rows) && w.rows > 0 && Number.isInteger(w.cols) && w.cols > 0)) {
      throw new ShapeError('invalid shape', {
        where,
        expected: 'positive integer rows and cols',
        found: `[${w.rows}, ${w.cols}]`,
      });
    }
    this.shape = Object.freeze([w.rows, w.cols]) as readonly [number, number];
    this.name = name;
    this.w = w;
  }

  get released(): boolean {
    return this.w === null;
  }

  /** Which backend laid the words out (see Bf16Weight). */
  get layout(): Bf16Weight['layout'] | 'released' {
    return this.w?.layout ?? 'released';
  }

  /** Bytes held: the forward packing, and the input-gradient packing once it exists. */
  get byteLength(): number {
    return (this.w?.data.byteLength ?? 0) + (this.w?.dataT?.byteLength ?? 0);
  }

  /** The packed weight for a kernel; a released BTensor is an error naming the op. */
  weightFor(op: string): Bf16Weight {
    if (!this.w) {
      throw new ShapeError('use of a released bf16 tensor', {
        where: `${op}${this.name ? ` (${this.name})` : ''}`,
        expected: 'a live BTensor',
        found: 'released',
      });
    }
    return this.w;
  }

  /** Drops the words (JavaScript memory: the garbage collector frees them). */
  release(): void {
    this.w = null;
  }
}
