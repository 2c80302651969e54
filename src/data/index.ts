// Public surface of data/: loaders, splits, prompt formats and code extraction.
export * from './ds1000.js';
export { readJsonl, readLines, type JsonlRow } from './jsonl.js';
export { sharedDataFile, repoRoot } from './paths.js';
