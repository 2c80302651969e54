// JSONL reading shared by every loader: plain or gzipped files, read as a stream (DS-1000 stays
// compressed on disk: its authors ask that the unzipped data not be posted), each line parsed and
// validated with a zod schema. Every failure names the file, the 1-based line and the field.
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { FormatError, NotFoundError } from '../util/errors.js';

export interface JsonlRow<T> {
  /** 1-based line number in the (uncompressed) file. */
  line: number;
  value: T;
}

/** True when the file name says gzip (.gz) or its first two bytes are the gzip magic. */
async function isGzip(file: string): Promise<boolean> {
  if (file.endsWith('.gz')) return true;
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Yields the raw lines of a .jsonl or .jsonl.gz file with their 1-based numbers. */
export async function* readLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
  } catch (e) {
    throw new NotFoundError('data file not found', {
      where: file,
      expected: 'a readable .jsonl or .jsonl.gz file',
      found: (e as Error).message,
      cause: e,
    });
  }
  let stream: Readable = createReadStream(file);
  if (await isGzip(file)) stream = stream.pipe(createGunzip());
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      yield { line, text };
    }
  } catch (e) {
    throw new FormatError('cannot read data file (corrupt gzip or I/O error)', {
      where: `${file}:${line + 1}`,
      found: (e as Error).message,
      cause: e,
    });
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Formats a zod issue path like `metadata.problem_id` or `test_list[2]`. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(row)' : out;
}

/** What happens to a malformed row: 'fail' (default) throws; a function is told and the row skipped. */
export type InvalidRowPolicy = 'fail' | ((error: FormatError) => void);

/**
 * Reads a JSONL file and validates each non-blank line with `schema`. By default throws
 * FormatError at the first malformed line (invalid JSON, or a missing / mistyped field), naming
 * file, line, field; with `onInvalid` a function, each malformed line is reported to it (the same
 * FormatError) and skipped.
 */
export async function readJsonl<S extends z.ZodType>(
  file: string,
  schema: S,
  opts: { what?: string; onInvalid?: InvalidRowPolicy } = {},
): Promise<JsonlRow<z.output<S>>[]> {
  const what = opts.what ?? 'row';
  const rows: JsonlRow<z.output<S>>[] = [];
  const bad = (e: FormatError): void => {
    if (typeof opts.onInvalid === 'function') opts.onInvalid(e);
    else throw e;
  };
  for await (const { line, text } of readLines(file)) {
    if (text.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      bad(
        new FormatError(`line is not valid JSON`, {
          where: `${file}:${line}`,
          expected: `one JSON object per line (${what})`,
          found: `${(e as Error).message}; text starts ${JSON.stringify(text.slice(0, 60))}`,
          cause: e,
        }),
      );
      continue;
    }
    const r = schema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0];
      const field = issue ? fieldPath(issue.path) : '(row)';
      bad(
        new FormatError(`invalid ${what}: field ${field}: ${issue?.message ?? 'invalid'}`, {
          where: `${file}:${line} field ${field}`,
          expected: `a valid ${what}`,
          found: issue?.message ?? 'invalid value',
          hint: 'fix or remove this line; the documented row formats are in docs/data.md',
        }),
      );
      continue;
    }
    rows.push({ line, value: r.data });
  }
  return rows;
}
