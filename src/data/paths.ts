// Where the offline benchmark files live. The team keeps them in a `shared/data` folder next to
// (or inside) the repository checkout; $RL4QE_DATA_DIR overrides the search.
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

/**
 * Resolves a file of the shared data folder: $RL4QE_DATA_DIR/<name> if set, else the first
 * `shared/data/<name>` found in the repository root or one of its ancestors (so `../shared/data`
 * from a checkout, and `shared/data` inside one, both work).
 */
export function sharedDataFile(name: string): string {
  const tried: string[] = [];
  const env = process.env.RL4QE_DATA_DIR;
  if (env) {
    const p = path.resolve(env, name);
    if (existsSync(p)) return p;
    tried.push(p);
  }
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
    expected: 'the offline data folder ../shared/data next to the repository',
    found: `none of: ${tried.slice(0, 4).join(', ')}${tried.length > 4 ? ', ...' : ''}`,
    hint: 'set RL4QE_DATA_DIR to the folder holding it, or pass an explicit path',
  });
}
