// The Hugging Face cache layout, read without the network (what HF_HUB_OFFLINE=1 sees):
//   <hubCache>/models--org--name/            (datasets--org--name/ for datasets)
//     blobs/<etag>                          file contents: sha256 for LFS files, git blob sha1 else
//     snapshots/<commit>/<path>             -> ../../blobs/<etag> (a relative symlink; a copy where
//                                             symlinks are not possible)
//     refs/<branch or tag>                  the commit the revision pointed at when downloaded
//     .no_exist/<commit>/<path>             Python's record that a file is absent at that commit
// Python's huggingface_hub and @huggingface/hub both write this; rl4qe reads what either wrote.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../util/errors.js';

export type RepoType = 'model' | 'dataset';

export interface RepoRef {
  /** "org/name". */
  repo: string;
  type?: RepoType;
}

export const COMMIT_RE = /^[0-9a-f]{40}$/;

/**
 * huggingface_hub's validate_repo_id: "name" or "namespace/name", letters, digits, "-", "_", ".",
 * no "--" or "..", not starting or ending with "-" or ".", at most 96 characters. rl4qe asks for
 * the namespace (every model and dataset it uses has one).
 */
export const REPO_ID_RE = /^(?![-.])[\w.-]+(?<![-.])\/(?![-.])[\w.-]+(?<![-.])$/;

export function isRepoId(s: string): boolean {
  return s.length <= 96 && REPO_ID_RE.test(s) && !s.includes('--') && !s.includes('..');
}

export function validateRepoId(repo: string, where = 'repository id'): void {
  if (!isRepoId(repo)) {
    throw new ConfigError('invalid Hugging Face repository id', {
      where,
      expected: 'namespace/name (letters, digits, "-", "_", "."; no "--" or "..")',
      found: JSON.stringify(repo),
    });
  }
}

/** The repository's folder name in the cache: models--org--name. */
export function repoFolderName(r: RepoRef): string {
  return [`${r.type ?? 'model'}s`, ...r.repo.split('/')].join('--');
}

export function repoCacheFolder(r: RepoRef, cacheDir: string): string {
  return path.join(cacheDir, repoFolderName(r));
}

/** Revisions become one file under refs/ (a branch "a/b" becomes refs/a/b, as in Python). */
function refFile(folder: string, revision: string): string {
  const p = path.join(folder, 'refs', revision);
  if (!p.startsWith(path.join(folder, 'refs') + path.sep)) {
    throw new ConfigError('invalid revision', {
      where: revision,
      expected: 'a branch, tag or commit',
    });
  }
  return p;
}

/** The commit a revision resolves to in the cache (a commit hash is itself), or undefined. */
export function cachedCommit(r: RepoRef, revision: string, cacheDir: string): string | undefined {
  const folder = repoCacheFolder(r, cacheDir);
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = fs.readFileSync(refFile(folder, revision), 'utf8').trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Records that `revision` pointed at `commit` (what Python's snapshot_download writes). */
export function writeRef(r: RepoRef, revision: string, commit: string, cacheDir: string): void {
  if (revision === commit) return;
  const f = refFile(repoCacheFolder(r, cacheDir), revision);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  let old: string | undefined;
  try {
    old = fs.readFileSync(f, 'utf8');
  } catch {
    old = undefined;
  }
  if (old !== commit) fs.writeFileSync(f, commit);
}

export function snapshotDir(r: RepoRef, commit: string, cacheDir: string): string {
  return path.join(repoCacheFolder(r, cacheDir), 'snapshots', commit);
}

export function blobPath(r: RepoRef, etag: string, cacheDir: string): string {
  return path.join(repoCacheFolder(r, cacheDir), 'blobs', etag);
}

/** A snapshot's file if present (a dangling symlink counts as absent). */
export function cachedFile(
  r: RepoRef,
  commit: string,
  file: string,
  cacheDir: string,
): string | undefined {
  const p = path.join(snapshotDir(r, commit, cacheDir), ...file.split('/'));
  try {
    return fs.statSync(p).isFile() ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Whether Python recorded the file as absent at this commit (.no_exist/<commit>/<file>). */
export function knownMissing(r: RepoRef, commit: string, file: string, cacheDir: string): boolean {
  return fs.existsSync(
    path.join(repoCacheFolder(r, cacheDir), '.no_exist', commit, ...file.split('/')),
  );
}

/** Every file of a cached snapshot, as repository paths ("a/b.json"), sorted. */
export function snapshotFiles(r: RepoRef, commit: string, cacheDir: string): string[] {
  const root = snapshotDir(r, commit, cacheDir);
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      const relPath = rel ? `${rel}/${n}` : n;
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        continue; // dangling link: a blob was deleted
      }
      if (st.isDirectory()) walk(p, relPath);
      else if (st.isFile()) out.push(relPath);
    }
  };
  walk(root, '');
  return out.sort();
}
