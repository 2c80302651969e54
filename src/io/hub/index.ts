// Hugging Face Hub download.
export {
  pullModel,
  repoCacheDir,
  stderrProgress,
  globToRegExp,
  DEFAULT_ENDPOINT,
  DEFAULT_INCLUDE,
  HF_SIDE_FILES,
  type PullOptions,
  type PullResult,
  type PulledFile,
  type PullProgress,
} from './hub.js';
