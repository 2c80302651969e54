// Parquet rows for the loaders (the HumanEval and MBPP repositories on the Hub carry only
// parquet). Read with `hyparquet` (pure JavaScript, no dependencies; snappy built in, which is
// what the Hub's parquet conversions use) when it is installed: it is an optional dependency,
// imported on first use, so nothing else pays for it. Without it a clear error says what to do.
import { UnsupportedError, FormatError } from '../util/errors.js';

/** The part of hyparquet's API used here. */
interface Hyparquet {
  asyncBufferFromFile(file: string): Promise<unknown>;
  parquetReadObjects(opts: { file: unknown }): Promise<Record<string, unknown>[]>;
}

let lib: Promise<Hyparquet | undefined> | undefined;

async function hyparquet(): Promise<Hyparquet | undefined> {
  // A variable specifier: TypeScript does not need the package's types to compile rl4qe.
  const name = 'hyparquet';
  lib ??= import(name).then(
    (m: unknown) => m as Hyparquet,
    () => undefined,
  );
  return lib;
}

/** Whether .parquet files can be read here. */
export async function canReadParquet(): Promise<boolean> {
  return (await hyparquet()) !== undefined;
}

/** Plain JSON-like values: BigInt (int64 columns) → number when exact, typed arrays → arrays. */
function plain(v: unknown, where: string): unknown {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new FormatError('an integer does not fit a JavaScript number', {
        where,
        found: String(v),
      });
    }
    return Number(v);
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, where));
  if (ArrayBuffer.isView(v) && !(v instanceof DataView))
    return Array.from(v as unknown as ArrayLike<number>, (x) => plain(x, where));
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x, where)]));
  }
  return v;
}

/** Every row of a parquet file as a plain object (column name → value). */
export async function readParquetRows(file: string): Promise<Record<string, unknown>[]> {
  const h = await hyparquet();
  if (!h) {
    throw new UnsupportedError('reading .parquet files needs the hyparquet package', {
      where: file,
      expected: 'hyparquet installed (an optional dependency of rl4qe)',
      found: 'no hyparquet module',
      hint: "npm install hyparquet, or use the .jsonl(.gz) files in the repository's data/ folder (the default)",
    });
  }
  let rows: Record<string, unknown>[];
  try {
    rows = await h.parquetReadObjects({ file: await h.asyncBufferFromFile(file) });
  } catch (e) {
    throw new FormatError('cannot read the parquet file', {
      where: file,
      found: (e as Error).message,
      hint: 'a compression other than snappy/gzip needs hyparquet-compressors; or the file is damaged',
      cause: e,
    });
  }
  return rows.map((r, i) => plain(r, `${file} row ${i + 1}`) as Record<string, unknown>);
}
