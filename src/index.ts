// The public API of rl4qe: explicit exports only.
export * from './util/errors.js';
export { Rng, type RngState } from './util/rng.js';
export type { Backend, Buf, DType } from './backend/backend.js';
export * from './generators/index.js';
export * from './serve/index.js';
