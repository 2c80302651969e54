// The public API of rl4qe: explicit exports only.
export * from './util/errors.js';
export { Rng, type RngState } from './util/rng.js';
export type { Backend, Buf, DType } from './backend/backend.js';
export * from './data/index.js';
export * from './sandbox/index.js';
