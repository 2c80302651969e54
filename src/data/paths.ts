// Where the offline benchmark files live. They ship in the repository's `data/` folder (see
// data/README.md for provenance and licences), found from this module's own location so that the
// CLI works from any working directory; $RL4QE_DATA_DIR overrides it. A team checkout may still
// keep them in a `shared/data` folder beside the repository, which is searched last.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../util/errors.js';

/** The repository root: the nearest ancestor of this module holding package.json. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** The default data directory: `data/` under the package root (never the cwd). */
export function defaultDataDir(): string {
  return path.join(repoRoot(), 'data');
}

/**
 * Resolves a benchmark data file: $RL4QE_DATA_DIR/<name> if set and present, else
 * `<package root>/data/<name>`, else the first `shared/data/<name>` found in the package root or
 * one of its ancestors (the team layout before the data moved into the repository).
 */
export function sharedDataFile(name: string): string {
  const tried: string[] = [];
  const env = process.env.RL4QE_DATA_DIR;
  if (env) {
    const p = path.resolve(env, name);
    if (existsSync(p)) return p;
    tried.push(p);
  }
  const own = path.join(defaultDataDir(), name);
  if (existsSync(own)) return own;
  tried.push(own);
  let dir = repoRoot();
  for (;;) {
    const p = path.join(dir, 'shared', 'data', name);
    if (existsSync(p)) return p;
    tried.push(p);
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new NotFoundError(`benchmark data file ${name} not found`, {
    where: name,
    expected: `the repository's data folder (${defaultDataDir()}) or $RL4QE_DATA_DIR`,
    found: `none of: ${tried.slice(0, 4).join(', ')}${tried.length > 4 ? ', ...' : ''}`,
    hint: 'restore data/ from the repository (git checkout data/), or set RL4QE_DATA_DIR to the folder holding it',
  });
}
