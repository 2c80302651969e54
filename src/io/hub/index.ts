// Hugging Face Hub download.
export {
  pullModel,
  repoCacheDir,
  stderrProgress,
  globToRegExp,
  DEFAULT_ENDPOINT,
  DEFAULT_INCLUDE,
  type PullOptions,
  type PullResult,
  type PulledFile,
  type PullProgress,
} from './hub.js';
