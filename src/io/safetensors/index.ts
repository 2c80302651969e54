// safetensors: validated reader, writer, sharded checkpoints.
export {
  SafetensorsFile,
  encodeSafetensors,
  writeSafetensors,
  SAFETENSORS_DTYPE_SIZE,
  MAX_HEADER_BYTES,
  type SafetensorsDtype,
  type SafetensorsTensorInfo,
  type SafetensorsTensorInput,
  type SafetensorsWriteSpec,
} from './safetensors.js';
export {
  SafetensorsCheckpoint,
  writeSafetensorsCheckpoint,
  INDEX_FILE,
  SINGLE_FILE,
  type ShardOptions,
} from './checkpoint.js';
