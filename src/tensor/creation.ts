// Creation functions. Memory comes from the backend of the dtype (float64: reference).
import type { Buf, DType } from '../backend/backend.js';
import { ShapeError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import {
  backendFor,
  emptyOn,
  fmtShape,
  sizeOf,
  type Tensor,
  type TensorOptions,
  wrapBuf,
} from './tensor.js';

function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError('invalid shape', {
      where: `${op}: shape`,
      expected: 'an array of non-negative integers',
      found: Array.isArray(shape) ? fmtShape(shape) : String(shape),
    });
  }
}

function finish(t: Tensor, opts: TensorOptions | undefined): Tensor {
  if (opts?.requiresGrad) t.requiresGrad = true;
  if (opts?.name !== undefined) t.name = opts.name;
  return t;
}

function make(op: string, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  checkShape(op, shape);
  return emptyOn(backendFor(dtype), shape, dtype);
}

/** A tensor holding a copy of values. */
export function tensor(
  values: ArrayLike<number>,
  shape: readonly number[],
  opts?: TensorOptions,
): Tensor {
  checkShape('tensor', shape);
  if (values.length !== sizeOf(shape)) {
    throw new ShapeError('value count does not match the shape', {
      where: 'tensor: values',
      expected: `${sizeOf(shape)} values for shape ${fmtShape(shape)}`,
      found: `${values.length} values`,
    });
  }
  const t = make('tensor', shape, opts?.dtype);
  t.data.set(values);
  return finish(t, opts);
}

/**
 * A tensor over an existing buffer, without copying. The caller keeps ownership: release() drops
 * the tensor but does not free buf. The dtype follows the buffer type.
 */
export function fromBuf(
  buf: Buf,
  shape: readonly number[],
  opts?: Omit<TensorOptions, 'dtype'>,
): Tensor {
  checkShape('fromBuf', shape);
  if (
    !(buf instanceof Float32Array || buf instanceof Float64Array) ||
    buf.length !== sizeOf(shape)
  ) {
    throw new ShapeError('buffer does not match the shape', {
      where: 'fromBuf: buf',
      expected: `a Float32Array or Float64Array of ${sizeOf(shape)} elements (${fmtShape(shape)})`,
      found: `${(buf as object)?.constructor?.name ?? typeof buf} of ${(buf as Buf)?.length} elements`,
    });
  }
  return finish(wrapBuf(buf, shape), opts);
}

export function zeros(shape: readonly number[], opts?: TensorOptions): Tensor {
  return finish(make('zeros', shape, opts?.dtype), opts);
}

export function full(shape: readonly number[], value: number, opts?: TensorOptions): Tensor {
  const t = make('full', shape, opts?.dtype);
  backendFor(t.dtype).fill(t.data, value);
  return finish(t, opts);
}

export function ones(shape: readonly number[], opts?: TensorOptions): Tensor {
  return full(shape, 1, opts);
}

export interface RandnOptions extends TensorOptions {
  /** Standard deviation (default 1). */
  std?: number;
  mean?: number;
}

/** Normal samples from rng (seeded, reproducible). */
export function randn(shape: readonly number[], rng: Rng, opts?: RandnOptions): Tensor {
  const t = make('randn', shape, opts?.dtype);
  const std = opts?.std ?? 1;
  const m = opts?.mean ?? 0;
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = m + std * rng.normal();
  return finish(t, opts);
}

/** Uniform samples in [lo, hi) from rng. */
export function uniform(
  shape: readonly number[],
  lo: number,
  hi: number,
  rng: Rng,
  opts?: TensorOptions,
): Tensor {
  const t = make('uniform', shape, opts?.dtype);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = rng.uniform(lo, hi);
  return finish(t, opts);
}
