// Validated rows from a loader's data files: .jsonl / .jsonl.gz (jsonl.ts) or .parquet
// (parquet.ts), one or several files (a Hub dataset split in shards), in order. Each row keeps
// where it came from (file and 1-based line or row) for error messages.
import type { z } from 'zod';
import { FormatError } from '../util/errors.js';
import { fieldPath, readJsonl, type InvalidRowPolicy } from './jsonl.js';
import { readParquetRows } from './parquet.js';

export interface DataRow<T> {
  file: string;
  /** 1-based line (JSONL) or row (parquet). */
  line: number;
  value: T;
}

export function isParquet(file: string): boolean {
  return file.toLowerCase().endsWith('.parquet');
}

export async function readDataRows<S extends z.ZodType>(
  files: readonly string[],
  schema: S,
  opts: { what: string; onInvalid?: InvalidRowPolicy },
): Promise<DataRow<z.output<S>>[]> {
  const out: DataRow<z.output<S>>[] = [];
  for (const file of files) {
    if (!isParquet(file)) {
      for (const r of await readJsonl(file, schema, opts)) out.push({ file, ...r });
      continue;
    }
    const rows = await readParquetRows(file);
    rows.forEach((raw, i) => {
      const r = schema.safeParse(raw);
      if (r.success) {
        out.push({ file, line: i + 1, value: r.data });
        return;
      }
      const issue = r.error.issues[0];
      const field = issue ? fieldPath(issue.path) : '(row)';
      const e = new FormatError(
        `invalid ${opts.what}: field ${field}: ${issue?.message ?? 'invalid'}`,
        {
          where: `${file} row ${i + 1} field ${field}`,
          expected: `a valid ${opts.what}`,
          found: issue?.message ?? 'invalid value',
        },
      );
      if (typeof opts.onInvalid === 'function') opts.onInvalid(e);
      else throw e;
    });
  }
  return out;
}
