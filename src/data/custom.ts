// Users' own tasks: one JSON object per line.
//   {"id": "t1", "query": "...", "reference": "...", "tests": "assert f(1) == 2",
//    "setup": "import math", "library": "numpy", "group": "fam-3"}
// Required: query, reference. Optional: id (default: the line number), tests (a Python script or
// a list of statements run after the solution; pass = exit 0), setup (run before the solution),
// library (split stratum), group (family key: same group, same split side). See docs/data.md.
import { z } from 'zod';
import { readJsonl, type InvalidRowPolicy } from './jsonl.js';
import type { CodeTask } from './tasks.js';
import { FormatError } from '../util/errors.js';

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

/** Loads a custom task file (.jsonl or .jsonl.gz). Ids must be unique. */
export async function loadCustomTasks(
  file: string,
  opts: { onInvalid?: InvalidRowPolicy } = {},
): Promise<CodeTask[]> {
  const rows = await readJsonl(file, customRowSchema, {
    what: 'custom task row',
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  });
  const seen = new Map<string, number>();
  return rows.map(({ line, value }) => {
    const t = customTask(value, `line${line}`);
    const first = seen.get(t.id);
    if (first !== undefined) {
      throw new FormatError(`duplicate task id ${JSON.stringify(t.id)}`, {
        where: `${file}:${line} field id`,
        expected: 'unique ids',
        found: `also on line ${first}`,
      });
    }
    seen.set(t.id, line);
    return t;
  });
}
