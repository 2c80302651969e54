// One entry point from a dataset name (config files, CLI flags) to CodeTasks.
import { loadDs1000 } from './ds1000.js';
import { loadHumanEval, humanEvalTask } from './humaneval.js';
import { loadMbpp, mbppTask } from './mbpp.js';
import { loadCustomTasks } from './custom.js';
import { ds1000Tasks } from './splits.js';
import type { CodeTask } from './tasks.js';
import type { InvalidRowPolicy } from './jsonl.js';
import { ConfigError } from '../util/errors.js';

export const DATASETS = ['ds1000', 'humaneval', 'mbpp', 'custom'] as const;
export type DatasetName = (typeof DATASETS)[number];

/** Loads a dataset as CodeTasks. `path` overrides the shared file (required for 'custom'). */
export async function loadTasks(opts: {
  dataset: string;
  path?: string;
  /** Malformed rows: throw (default) or report each to this function and skip it. */
  onInvalid?: InvalidRowPolicy;
}): Promise<CodeTask[]> {
  const p = {
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  };
  switch (opts.dataset) {
    case 'ds1000':
      return ds1000Tasks(await loadDs1000(p));
    case 'humaneval':
      return (await loadHumanEval(p)).map(humanEvalTask);
    case 'mbpp':
      return (await loadMbpp(p)).map(mbppTask);
    case 'custom':
      if (opts.path === undefined) {
        throw new ConfigError('the custom dataset needs a file', {
          where: 'path',
          expected: 'a .jsonl or .jsonl.gz file of {query, reference, tests?} rows',
          hint: 'pass --path FILE (format: docs/data.md)',
        });
      }
      return loadCustomTasks(opts.path, opts.onInvalid ? { onInvalid: opts.onInvalid } : {});
    default:
      throw new ConfigError(`unknown dataset '${opts.dataset}'`, {
        where: 'dataset',
        expected: DATASETS.join(', '),
        found: opts.dataset,
      });
  }
}
