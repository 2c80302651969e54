// Public surface of data/: loaders, splits, prompt formats and code extraction.
export * from './ds1000.js';
export * from './hub.js';
export { readDataRows, type DataRow } from './rows.js';
export { readParquetRows, canReadParquet } from './parquet.js';
export { readJsonl, readLines, type JsonlRow } from './jsonl.js';
export { sharedDataFile } from './paths.js';
export * from './tasks.js';
export * from './humaneval.js';
export * from './mbpp.js';
export * from './custom.js';
export * from './splits.js';
export * from './load.js';
export * from './prompts.js';
export * from './extract.js';
