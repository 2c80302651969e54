// Hugging Face Hub: downloads into the Hugging Face cache (through @huggingface/hub), the
// environment Python's huggingface_hub reads, the cache layout, and the one model resolver.
export {
  downloadSnapshot,
  cachedSnapshot,
  type HubDownloadOptions,
  type HubSnapshot,
  type PulledFile,
  type PullProgress,
} from './download.js';
export { fetchHubDatasetFiles, type HubDatasetRequest } from './datasets.js';
export {
  resolveModelPath,
  resolveHubModel,
  parseHubModelRef,
  cachedModelPath,
  modelDirMissing,
  includeFor,
  DEFAULT_INCLUDE,
  HF_SIDE_FILES,
  type HubModelRef,
  type ResolveModelOptions,
  type ResolvedModel,
} from './resolve.js';
export {
  hfEnv,
  hfHome,
  hfHubCache,
  hfToken,
  hfTokenPath,
  envIsTrue,
  DEFAULT_ENDPOINT,
  type HfEnv,
} from './env.js';
export {
  repoFolderName,
  repoCacheFolder,
  snapshotDir,
  cachedCommit,
  isRepoId,
  type RepoType,
  type RepoRef,
} from './cache.js';
export { HubUnreachableError } from './fetch.js';
export { globToRegExp } from './glob.js';
export { stderrProgress } from './progress.js';
