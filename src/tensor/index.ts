// The tensor API (docs/engine.md): import everything from here.
export {
  Tensor,
  type TensorOptions,
  noGrad,
  enableGrad,
  isGradEnabled,
  setCheckNan,
  isCheckNanEnabled,
  tidy,
} from './tensor.js';
export {
  tensor,
  fromBuf,
  zeros,
  ones,
  full,
  randn,
  uniform,
  type RandnOptions,
} from './creation.js';
export * from './ops.js';
export { QTensor } from './qtensor.js';
export { BTensor } from './btensor.js';
export { ropeTable, ropeInvFreq, type RopeScaling, type RopeTableOptions } from './rope.js';
export {
  setBackend,
  getBackend,
  backendInfo,
  type BackendInfo,
  type BackendName,
} from '../backend/index.js';
export type { Bf16Weight, Buf, DType, QuantWeight } from '../backend/backend.js';
