// Public surface of rewards/.
export * from './types.js';
export * from './text.js';
export * from './text-rewards.js';
export * from './execution.js';
export * from './composite.js';
export { pySplit, pyStrip, pyLower, paperTokens, codeTokens } from './tokenize.js';
export { sequenceRatio } from './difflib.js';
export * from './factory.js';
