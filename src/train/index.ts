// train: configuration, the REINFORCE estimator, the training loop, checkpoints and the run
// directory's records (see records.ts for its layout).
export * from './records.js';
export * from './config.js';
export * from './reinforce.js';
export * from './schedule.js';
export {
  Refiner as RefinerPolicy,
  TRUNCATION_MARKER,
  type RefinerOptions,
  type AdapterOptions,
} from './refiner.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  checkpointDir,
  checkpointName,
  type CheckpointState,
  type LoadedCheckpoint,
} from './checkpoint.js';
export { readRunInfo, readJsonlRecords, modelDigest } from './run-dir.js';
export { train, Trainer, type TrainOptions, type TrainResult } from './trainer.js';
export { renderReport, writeReport, type ReportInput } from './report.js';
export {
  exportRun,
  openRunForExport,
  EXPORT_FORMATS,
  type ExportFormat,
  type ExportOptions,
  type ExportResult,
  type RunForExport,
} from './export.js';
