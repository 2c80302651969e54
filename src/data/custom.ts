// Users' own tasks: one JSON object per line.
//   {"id": "t1", "query": "...", "reference": "...", "tests": "assert f(1) == 2",
//    "setup": "import math", "library": "numpy", "group": "fam-3"}
// Required: query, reference. Optional: id (default: the line number), tests (a Python script or
// a list of statements run after the solution; pass = exit 0), setup (run before the solution),
// library (split stratum), group (family key: same group, same split side). See docs/data.md.
import { z } from 'zod';
import type { InvalidRowPolicy } from './jsonl.js';
import { fetchHubDataset, isHubDataPath, parseHubDataPath } from './hub.js';
import { readDataRows } from './rows.js';
import type { CodeTask } from './tasks.js';
import { ConfigError, FormatError } from '../util/errors.js';

export const customRowSchema = z.object({
  id: z.union([z.string().min(1), z.number().int()]).optional(),
  query: z.string().min(1),
  reference: z.string(),
  tests: z.union([z.string(), z.array(z.string())]).optional(),
  setup: z.string().optional(),
  library: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
});
export type CustomRow = z.infer<typeof customRowSchema>;

export function customTask(r: CustomRow, fallbackId: string): CodeTask {
  const id = r.id === undefined ? fallbackId : String(r.id);
  const tests = Array.isArray(r.tests) ? r.tests.join('\n') : r.tests;
  const task: CodeTask = {
    id,
    source: 'custom',
    query: r.query,
    reference: r.reference,
    stratum: r.library ?? 'custom',
    group: r.group ?? id,
  };
  if (tests !== undefined && tests.trim() !== '') {
    task.tests = {
      kind: 'script',
      before: r.setup ? `${r.setup}\n` : '',
      after: `\n${tests}\n`,
    };
  }
  return task;
}

/**
 * Loads a custom task file (.jsonl, .jsonl.gz or .parquet), or such files of a Hub dataset
 * (`hf://datasets/org/name[@rev]/file-or-glob`). Ids must be unique.
 */
export async function loadCustomTasks(
  file: string,
  opts: { onInvalid?: InvalidRowPolicy } = {},
): Promise<CodeTask[]> {
  let files = [file];
  if (isHubDataPath(file)) {
    const r = parseHubDataPath(file);
    if (r.repo === undefined || r.files === undefined) {
      throw new ConfigError('a custom Hub dataset needs its repository and file', {
        where: file,
        expected: 'hf://datasets/<namespace>/<name>[@revision]/<file or glob>',
      });
    }
    files = await fetchHubDataset({
      repo: r.repo,
      files: r.files,
      ...(r.revision !== undefined ? { revision: r.revision } : {}),
    });
  }
  const rows = await readDataRows(files, customRowSchema, {
    what: 'custom task row',
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  });
  const seen = new Map<string, number>();
  return rows.map(({ file: f, line, value }) => {
    const t = customTask(value, files.length > 1 ? `${f}:line${line}` : `line${line}`);
    const first = seen.get(t.id);
    if (first !== undefined) {
      throw new FormatError(`duplicate task id ${JSON.stringify(t.id)}`, {
        where: `${f}:${line} field id`,
        expected: 'unique ids',
        found: `also on line ${first}`,
      });
    }
    seen.set(t.id, line);
    return t;
  });
}
