// Downloads from the Hugging Face Hub into the standard Hugging Face cache, through
// @huggingface/hub: `modelInfo`/`datasetInfo` resolve the revision to a commit, `listFiles` lists
// the repository, `downloadFileToCacheDir` writes blobs/<etag> and snapshots/<commit>/<path>.
// The cache is the one Python's huggingface_hub uses ($HF_HUB_CACHE), so a file either of them
// downloaded is found by the other without a download.
//
// What rl4qe adds around the library (it has none of these):
// - include patterns (the library's snapshotDownload takes the whole repository);
// - refs/<revision> for any revision, and the cache-only path: HF_HUB_OFFLINE=1, or the Hub
//   unreachable and the revision already cached (Python's fallback);
// - checksums: each new blob is hashed against the listing (sha256 for LFS files, the git blob
//   SHA-1 otherwise) and removed on a mismatch;
// - resume: a dropped connection continues with a Range request (fetch.ts), and a
//   blobs/<etag>.incomplete left by an interrupted run (rl4qe's or Python's) is continued;
// - retries, progress, and errors that name the URL and what to do.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import {
  datasetInfo,
  downloadFileToCacheDir,
  HubApiError,
  listFiles,
  modelInfo,
  type ListFileEntry,
} from '@huggingface/hub';
import { NetworkError, NotFoundError, Rl4qeError } from '../../util/errors.js';
import {
  blobPath,
  cachedCommit,
  cachedFile,
  COMMIT_RE,
  repoCacheFolder,
  snapshotDir,
  snapshotFiles,
  validateRepoId,
  writeRef,
  type RepoRef,
  type RepoType,
} from './cache.js';
import { hfEnv } from './env.js';
import { HubUnreachableError, hubFetch, OFFLINE_HINT } from './fetch.js';
import { globToRegExp } from './glob.js';

export interface PullProgress {
  file: string;
  /** Bytes of this file present so far (including resumed bytes). */
  done: number;
  /** Total size when known. */
  total?: number;
  /** 'skip': already in the cache. 'retry': a dropped connection is being resumed. */
  phase: 'start' | 'data' | 'done' | 'skip' | 'retry';
}

export interface HubDownloadOptions {
  /** "owner/name". */
  repo: string;
  /** 'model' (default) or 'dataset'. */
  type?: RepoType;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Glob patterns of repository paths (`*` within a segment, `**` across); default every file. */
  include?: string[];
  /** Default $HF_HUB_CACHE (see env.ts). */
  cacheDir?: string;
  /** Default $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default HF_TOKEN or the saved `hf auth login` token; '' sends none. */
  token?: string;
  /** Default $HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Tries per request for transient failures (default 4). */
  attempts?: number;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
}

export interface PulledFile {
  /** Repository path, e.g. "model-00001-of-00002.safetensors". */
  name: string;
  /** The file in the snapshot (snapshots/<commit>/<name>, a link to its blob). */
  path: string;
  size: number;
  sha256?: string;
  /** Already in the cache (nothing downloaded). */
  cached: boolean;
}

export interface HubSnapshot {
  repo: string;
  type: RepoType;
  revision: string;
  commit: string;
  /** snapshots/<commit>: a directory laid out like the repository. */
  dir: string;
  files: PulledFile[];
  /** Served from the cache without asking the Hub (offline mode or Hub unreachable). */
  fromCache: boolean;
}

interface Resolved {
  ref: RepoRef & { type: RepoType };
  revision: string;
  cacheDir: string;
  endpoint: string;
  token?: string;
  tokenSource?: string;
  offline: boolean;
  include: RegExp[];
  patterns: string[];
}

function resolveOptions(o: HubDownloadOptions): Resolved {
  validateRepoId(o.repo);
  const env = hfEnv();
  const token = o.token !== undefined ? o.token || undefined : env.token;
  const patterns = o.include?.length ? o.include : ['**'];
  return {
    ref: { repo: o.repo, type: o.type ?? 'model' },
    revision: o.revision ?? 'main',
    cacheDir: o.cacheDir ?? env.hubCache,
    endpoint: (o.endpoint ?? env.endpoint).replace(/\/+$/, ''),
    token,
    tokenSource: o.token !== undefined ? 'the token option' : env.tokenSource,
    offline: o.offline ?? env.offline,
    include: patterns.map(globToRegExp),
    patterns,
  };
}

function label(r: Resolved): string {
  return `${r.ref.type === 'dataset' ? 'dataset ' : ''}${r.ref.repo}@${r.revision}`;
}

/** The cached snapshot of a revision, for the files matching the patterns (no network). */
export function cachedSnapshot(o: HubDownloadOptions): HubSnapshot | undefined {
  const r = resolveOptions(o);
  return fromCache(r);
}

function fromCache(r: Resolved): HubSnapshot | undefined {
  const commit = cachedCommit(r.ref, r.revision, r.cacheDir);
  if (!commit) return undefined;
  const names = snapshotFiles(r.ref, commit, r.cacheDir).filter((f) =>
    r.include.some((re) => re.test(f)),
  );
  if (names.length === 0) return undefined;
  const files = names.map((name) => {
    const p = cachedFile(r.ref, commit, name, r.cacheDir)!;
    return { name, path: p, size: fs.statSync(p).size, cached: true };
  });
  return snapshotOf(r, commit, files, true);
}

/** The snapshot a resolution or a download ends with. */
function snapshotOf(
  r: Resolved,
  commit: string,
  files: HubSnapshot['files'],
  fromCache: boolean,
): HubSnapshot {
  return {
    repo: r.ref.repo,
    type: r.ref.type,
    revision: r.revision,
    commit,
    dir: snapshotDir(r.ref, commit, r.cacheDir),
    files,
    fromCache,
  };
}

function notCachedError(r: Resolved, why: string): NetworkError {
  return new NetworkError(`${label(r)} is not in the Hugging Face cache and ${why}`, {
    where: repoCacheFolder(r.ref, r.cacheDir),
    expected: `refs/${r.revision} and snapshots/<commit>/ with ${r.patterns.join(' ')}`,
    hint: r.offline
      ? 'unset HF_HUB_OFFLINE on a connected machine once (rl4qe pull, or Python huggingface_hub), or copy that cache folder here'
      : OFFLINE_HINT,
  });
}

/** Maps the library's errors to rl4qe's (which URL, what to do). */
function mapError(e: unknown, r: Resolved, what: string): Error {
  if (e instanceof Rl4qeError) return e;
  if (e instanceof HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new NetworkError(`the Hub refused access to ${what} (HTTP ${e.statusCode})`, {
        where: e.url,
        found: e.message.split('\n')[0],
        hint: r.token
          ? `the token from ${r.tokenSource ?? 'the environment'} lacks access: accept the repository's terms on its Hub page, or log in with another token (hf auth login)`
          : 'this repository needs a login: run `hf auth login` or set HF_TOKEN to a Hugging Face access token (private and gated repositories also 404 without one)',
      });
    }
    if (e.statusCode === 404) {
      return new NotFoundError(`not found on the Hub: ${what}`, {
        where: e.url,
        found: 'HTTP 404',
        hint: `check the repository id${r.ref.type === 'dataset' ? ' (a dataset)' : ''}, the revision and the file name; private or gated repositories need a login (hf auth login / HF_TOKEN)`,
      });
    }
    return new NetworkError(`the Hub answered HTTP ${e.statusCode} for ${what}`, {
      where: e.url,
      found: e.message.split('\n')[0],
    });
  }
  return new NetworkError(`downloading ${what} failed`, {
    where: `${r.endpoint} (${label(r)})`,
    found: e instanceof Error ? e.message : String(e),
    cause: e,
  });
}

/** Hash the file the way the Hub identifies it: sha256 for LFS, git blob SHA-1 otherwise. */
function hasherFor(entry: ListFileEntry): { h: Hash; want: string; kind: string } {
  if (entry.lfs) return { h: createHash('sha256'), want: entry.lfs.oid, kind: 'sha256' };
  const h = createHash('sha1');
  h.update(`blob ${entry.size}\0`);
  return { h, want: entry.oid ?? '', kind: 'git blob sha1' };
}

async function hashFile(file: string, h: Hash): Promise<string> {
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) {
    h.update(chunk as Buffer);
  }
  return h.digest('hex');
}

function etagOf(entry: ListFileEntry): string | undefined {
  return entry.lfs?.oid ?? entry.xetHash ?? entry.oid;
}

function resolveUrl(r: Resolved, commit: string, file: string): string {
  const prefix = r.ref.type === 'dataset' ? 'datasets/' : '';
  return `${r.endpoint}/${prefix}${r.ref.repo}/resolve/${commit}/${file
    .split('/')
    .map(encodeURIComponent)
    .join('/')}`;
}

/**
 * The library prints "Downloading …" with console.debug, i.e. on stdout: keep stdout for results
 * (`--json`). Counted, so overlapping downloads restore the original only when the last ends.
 */
let quietDepth = 0;
let savedDebug: typeof console.debug = console.debug;
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  if (quietDepth++ === 0) {
    savedDebug = console.debug;
    console.debug = () => undefined;
  }
  try {
    return await fn();
  } finally {
    if (--quietDepth === 0) console.debug = savedDebug;
  }
}

/**
 * Downloads the files of a repository revision that match `include` into the Hugging Face cache
 * (skipping what is there) and returns the snapshot. Offline (HF_HUB_OFFLINE) or with the Hub
 * unreachable, a cached snapshot of the revision is returned; without one, a NetworkError says
 * which URL failed and how to go on.
 */
export async function downloadSnapshot(o: HubDownloadOptions): Promise<HubSnapshot> {
  const r = resolveOptions(o);
  if (r.offline) {
    const c = fromCache(r);
    if (c) return c;
    throw notCachedError(r, 'HF_HUB_OFFLINE is set');
  }
  const progress = o.onProgress;
  let current: { file: string; done: number; total?: number } | undefined;
  const fetchImpl = hubFetch({
    endpoint: r.endpoint,
    token: r.token,
    tokenSource: r.tokenSource,
    attempts: o.attempts,
    signal: o.signal,
    onBytes: (n) => {
      if (!current) return;
      current.done += n;
      progress?.({ file: current.file, done: current.done, total: current.total, phase: 'data' });
    },
    onResume: (offset) => {
      if (!current) return;
      current.done = offset;
      progress?.({ file: current.file, done: offset, total: current.total, phase: 'retry' });
    },
  });
  const lib = { hubUrl: r.endpoint, fetch: fetchImpl };
  const repoId = { type: r.ref.type, name: r.ref.repo };

  // 1. The revision's commit.
  let commit: string;
  try {
    const info =
      r.ref.type === 'dataset'
        ? await datasetInfo({
            ...lib,
            name: r.ref.repo,
            revision: r.revision,
            additionalFields: ['sha'],
          })
        : await modelInfo({
            ...lib,
            name: r.ref.repo,
            revision: r.revision,
            additionalFields: ['sha'],
          });
    const sha = (info as { sha?: unknown }).sha;
    if (typeof sha !== 'string' || !COMMIT_RE.test(sha)) {
      throw new NetworkError('the Hub did not say which commit the revision is', {
        where: `${r.endpoint}/api/${r.ref.type}s/${r.ref.repo}/revision/${r.revision}`,
        expected: 'a 40-hex "sha"',
        found: JSON.stringify(sha),
      });
    }
    commit = sha;
  } catch (e) {
    if (e instanceof HubUnreachableError) {
      // Python's fallback: an unreachable Hub serves what the cache has for this revision.
      const c = fromCache(r);
      if (c) return c;
      throw new HubUnreachableError(`cannot reach the Hub to download ${label(r)}`, {
        where: e.where,
        found: e.found,
        hint: `${OFFLINE_HINT}; nothing of ${label(r)} is cached in ${repoCacheFolder(r.ref, r.cacheDir)} yet`,
        cause: e,
      });
    }
    throw mapError(e, r, label(r));
  }

  // 2. The files, filtered by the patterns.
  const entries: ListFileEntry[] = [];
  try {
    for await (const e of listFiles({ ...lib, repo: repoId, recursive: true, revision: commit })) {
      if (e.type === 'file') entries.push(e);
    }
  } catch (e) {
    throw mapError(e, r, `the file list of ${label(r)}`);
  }
  const wanted = entries.filter((e) => r.include.some((re) => re.test(e.path)));
  if (wanted.length === 0) {
    throw new NotFoundError('no files of the repository match the include patterns', {
      where: label(r),
      expected: r.patterns.join(' '),
      found:
        entries
          .map((e) => e.path)
          .slice(0, 20)
          .join(', ') || 'no files',
    });
  }

  // 3. Each file into blobs/ + snapshots/<commit>/.
  const files: PulledFile[] = [];
  for (const entry of wanted) {
    const size = entry.lfs?.size ?? entry.size;
    const have = cachedFile(r.ref, commit, entry.path, r.cacheDir);
    if (have) {
      progress?.({ file: entry.path, done: size, total: size, phase: 'skip' });
      files.push({ name: entry.path, path: have, size, sha256: entry.lfs?.oid, cached: true });
      continue;
    }
    const etag = etagOf(entry);
    if (!etag) {
      throw new NetworkError('the Hub listed a file without a hash', {
        where: `${label(r)}: ${entry.path}`,
        expected: 'oid or lfs.oid',
      });
    }
    const blob = blobPath(r.ref, etag, r.cacheDir);
    const hadBlob = fs.existsSync(blob);
    current = { file: entry.path, done: 0, total: size };
    progress?.({ file: entry.path, done: 0, total: size, phase: 'start' });
    if (!hadBlob) await resumeIncomplete(r, commit, entry, blob, fetchImpl, current);
    const blobBefore = fs.existsSync(blob);
    let p: string;
    try {
      p = await quietly(() =>
        downloadFileToCacheDir({
          ...lib,
          repo: repoId,
          path: entry.path,
          revision: commit,
          cacheDir: r.cacheDir,
        }),
      );
    } catch (e) {
      current = undefined;
      throw mapError(e, r, `${entry.path} of ${label(r)}`);
    }
    current = undefined;
    if (!blobBefore) await verifyBlob(r, entry, blob, p);
    progress?.({ file: entry.path, done: size, total: size, phase: 'done' });
    files.push({ name: entry.path, path: p, size, sha256: entry.lfs?.oid, cached: hadBlob });
  }
  writeRef(r.ref, r.revision, commit, r.cacheDir);
  return snapshotOf(r, commit, files, false);
}

async function verifyBlob(
  r: Resolved,
  entry: ListFileEntry,
  blob: string,
  pointer: string,
): Promise<void> {
  const { h, want, kind } = hasherFor(entry);
  if (!want) return;
  const got = await hashFile(blob, h);
  if (got === want.toLowerCase()) return;
  fs.rmSync(blob, { force: true });
  fs.rmSync(pointer, { force: true });
  throw new NetworkError(`checksum mismatch for ${entry.path}`, {
    where: `${label(r)}: ${entry.path}`,
    expected: `${kind} ${want}`,
    found: got,
    hint: 'the download was corrupted or the server sent another file; it was deleted: run the command again',
  });
}

/**
 * Continues blobs/<etag>.incomplete (left by an interrupted run of rl4qe or Python) with a Range
 * request; on success the blob is complete and checked, and the library only links it.
 */
async function resumeIncomplete(
  r: Resolved,
  commit: string,
  entry: ListFileEntry,
  blob: string,
  fetchImpl: typeof fetch,
  current: { done: number },
): Promise<void> {
  const partial = `${blob}.incomplete`;
  let have: number;
  try {
    have = fs.statSync(partial).size;
  } catch {
    return;
  }
  const size = entry.lfs?.size ?? entry.size;
  if (have === 0 || have >= size) {
    fs.rmSync(partial, { force: true });
    return;
  }
  const res = await fetchImpl(resolveUrl(r, commit, entry.path), {
    headers: { range: `bytes=${have}-` },
  });
  const cr = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
  if (res.status !== 206 || !res.body || !cr || Number(cr[1]) !== have) {
    // Cannot continue: let the library download it from the start.
    await res.body?.cancel().catch(() => undefined);
    fs.rmSync(partial, { force: true });
    return;
  }
  current.done = have;
  await pipeline(
    Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>),
    fs.createWriteStream(partial, { flags: 'a' }),
  );
  const { h, want } = hasherFor(entry);
  if (
    fs.statSync(partial).size === size &&
    (!want || (await hashFile(partial, h)) === want.toLowerCase())
  ) {
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    fs.renameSync(partial, blob);
  } else fs.rmSync(partial, { force: true });
}

/** Checks an explicit file list against what a cached snapshot holds (e.g. every index shard). */
export function missingFromSnapshot(dir: string, names: readonly string[]): string[] {
  return names.filter((n) => {
    try {
      return !fs.statSync(path.join(dir, ...n.split('/'))).isFile();
    } catch {
      return true;
    }
  });
}
