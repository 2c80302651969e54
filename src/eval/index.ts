// Public surface of eval/: paired evaluation, its statistics, the run-directory guards, reports.
export * from './stats.js';
export * from './summary.js';
export * from './runs.js';
export * from './prompt-search.js';
export * from './evaluate.js';
export * from './report.js';
export * from './experiments.js';
