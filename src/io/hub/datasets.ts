// Dataset files from the Hub for data/ (which may not import io/): the function that
// `setHubDatasetFetcher` registers. Files land in the Hugging Face cache
// (datasets--org--name/...), where Python's `datasets`/huggingface_hub find them too.
import { downloadSnapshot, type HubDownloadOptions } from './download.js';

export interface HubDatasetRequest {
  repo: string;
  /** Repository paths or globs, e.g. ["test.jsonl"] or ["full/*.parquet"]. */
  files: string[];
  revision?: string;
}

/** Downloads (or finds in the cache) a dataset's files; local paths sorted by repository path. */
export async function fetchHubDatasetFiles(
  req: HubDatasetRequest,
  opts: Pick<HubDownloadOptions, 'cacheDir' | 'endpoint' | 'token' | 'offline' | 'onProgress'> = {},
): Promise<string[]> {
  const snap = await downloadSnapshot({
    ...opts,
    repo: req.repo,
    type: 'dataset',
    ...(req.revision !== undefined ? { revision: req.revision } : {}),
    include: req.files,
  });
  return [...snap.files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => f.path);
}
