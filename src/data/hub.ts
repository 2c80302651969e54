// Benchmarks from the Hugging Face Hub. data/ may not import io/ (the import arrows), so the
// download is a function registered from above (the CLI registers io/hub's
// fetchHubDatasetFiles); data/ knows which repository and files each benchmark lives in:
//   ds1000     xlangai/DS-1000                 test.jsonl                (the 1000 problems)
//   humaneval  openai/openai_humaneval         openai_humaneval/test-*.parquet  (164)
//   mbpp       google-research-datasets/mbpp   full/*.parquet  (train, test, validation, prompt:
//                                              974 with the split recovered from task_id)
// A data path `hf://datasets/<namespace>/<name>[@revision][/<file or glob>]` names a Hub dataset
// (Python's HfFileSystem spelling); without a file, the benchmark's default files are taken,
// and `hf://datasets` alone means the benchmark's own repository.
import { ConfigError, NetworkError, Rl4qeError } from '../util/errors.js';
import { sharedDataFile } from './paths.js';

export interface HubDatasetFiles {
  repo: string;
  /** Repository paths or globs (`*` within a folder, `**` across). */
  files: string[];
  revision?: string;
}

/** Downloads (or finds in the Hugging Face cache) the files; local paths in repository order. */
export type HubDatasetFetcher = (req: HubDatasetFiles) => Promise<string[]>;

let hubFetcher: HubDatasetFetcher | undefined;

/** Registers the function that downloads Hub dataset files (io/hub fetchHubDatasetFiles). */
export function setHubDatasetFetcher(f: HubDatasetFetcher | undefined): void {
  hubFetcher = f;
}

/** Where each benchmark lives on the Hub (the files its repository actually carries). */
export const HUB_DATASETS = {
  ds1000: { repo: 'xlangai/DS-1000', files: ['test.jsonl'] },
  humaneval: { repo: 'openai/openai_humaneval', files: ['openai_humaneval/test-*.parquet'] },
  mbpp: { repo: 'google-research-datasets/mbpp', files: ['full/*.parquet'] },
} as const satisfies Record<string, { repo: string; files: readonly string[] }>;
export type HubBenchmark = keyof typeof HUB_DATASETS;

export const HUB_DATA_PREFIX = 'hf://datasets';

export function isHubDataPath(p: string): boolean {
  return p === HUB_DATA_PREFIX || p.startsWith(`${HUB_DATA_PREFIX}/`);
}

const REPO_RE = /^(?![-.])[\w.-]+(?<![-.])\/(?![-.])[\w.-]+(?<![-.])$/;

/** `hf://datasets/org/name[@rev][/file]` → the repository, revision and files (undefined: defaults). */
export function parseHubDataPath(p: string): {
  repo?: string;
  revision?: string;
  files?: string[];
} {
  if (p === HUB_DATA_PREFIX || p === `${HUB_DATA_PREFIX}/`) return {};
  const rest = p.slice(HUB_DATA_PREFIX.length + 1);
  const parts = rest.split('/');
  const bad = (): never => {
    throw new ConfigError('invalid Hugging Face dataset path', {
      where: p,
      expected: 'hf://datasets/<namespace>/<name>[@revision][/<file or glob>]',
      hint: 'e.g. hf://datasets/xlangai/DS-1000 or hf://datasets/google-research-datasets/mbpp/full/test-*.parquet',
    });
  };
  if (parts.length < 2) return bad();
  let name = parts[1]!;
  let revision: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
    if (revision === '') return bad();
  }
  const repo = `${parts[0]}/${name}`;
  if (!REPO_RE.test(repo) || repo.includes('--') || repo.includes('..')) return bad();
  const file = parts.slice(2).join('/');
  if (parts.slice(2).some((s) => s === '..' || s === '.')) return bad();
  return {
    repo,
    ...(revision !== undefined ? { revision } : {}),
    ...(file !== '' ? { files: [file] } : {}),
  };
}

/** Calls the registered fetcher; errors say which repository and what to do instead. */
export async function fetchHubDataset(req: HubDatasetFiles): Promise<string[]> {
  const where = `hf://datasets/${req.repo}${req.revision ? `@${req.revision}` : ''}/${req.files.join(',')}`;
  if (!hubFetcher) {
    throw new NetworkError('cannot download a dataset from the Hugging Face Hub', {
      where,
      expected: 'a registered Hub client (setHubDatasetFetcher(fetchHubDatasetFiles))',
      found: 'no Hub client registered',
      hint: "the rl4qe CLI registers one; in the library call setHubDatasetFetcher(fetchHubDatasetFiles) from 'rl4qe', or use the files in the repository's data/ folder (the default)",
    });
  }
  try {
    const files = await hubFetcher(req);
    if (files.length === 0) {
      throw new NetworkError('the Hub dataset has no such files', { where });
    }
    return files;
  } catch (e) {
    if (e instanceof Rl4qeError) throw e;
    throw new NetworkError('cannot download a dataset from the Hugging Face Hub', {
      where,
      found: (e as Error).message,
      hint: "check the network (HF_HUB_OFFLINE=1 uses the cache only), or use the files in the repository's data/ folder (the default)",
      cause: e,
    });
  }
}

/** A benchmark's data files for a `hf://datasets...` path (defaults filled in). */
export async function hubDataFiles(p: string, benchmark: HubBenchmark): Promise<string[]> {
  const d = HUB_DATASETS[benchmark];
  const r = parseHubDataPath(p);
  return fetchHubDataset({
    repo: r.repo ?? d.repo,
    files: r.files ?? [...d.files],
    ...(r.revision !== undefined ? { revision: r.revision } : {}),
  });
}

/**
 * The files a loader reads: the repository's data/ copy by default, a local file, or a Hub
 * dataset (`hf://datasets/...`).
 */
export async function benchmarkFiles(
  p: string | undefined,
  benchmark: HubBenchmark,
  defaultFile: string,
): Promise<string[]> {
  if (p === undefined) return [sharedDataFile(defaultFile)];
  return isHubDataPath(p) ? hubDataFiles(p, benchmark) : [p];
}
