// DS-1000 (Lai et al. 2022), the simplified format of xlang-ai/DS-1000 `data/ds1000.jsonl.gz`
// and of the Hub dataset xlangai/DS-1000 (`test.jsonl`): one JSON object per line with `prompt`,
// `reference_code`, `code_context` and `metadata`. Rows are validated at the edge and renamed to
// camelCase; inside rl4qe they are trusted.
import { z } from 'zod';
import type { InvalidRowPolicy } from './jsonl.js';
import { benchmarkFiles, fetchHubDataset, HUB_DATASETS } from './hub.js';
import { readDataRows } from './rows.js';
import { FormatError } from '../util/errors.js';

export const DS1000_PERTURBATIONS = ['Origin', 'Surface', 'Semantic', 'Difficult-Rewrite'] as const;
export type Ds1000Perturbation = (typeof DS1000_PERTURBATIONS)[number];

/** The seven libraries of DS-1000 (the loader accepts any non-empty name). */
export const DS1000_LIBRARIES = [
  'Pandas',
  'Numpy',
  'Matplotlib',
  'Tensorflow',
  'Scipy',
  'Sklearn',
  'Pytorch',
] as const;

export interface Ds1000Metadata {
  problemId: number;
  /** Index within the library (0-based per library). */
  libraryProblemId: number;
  library: string;
  testCaseCnt: number;
  perturbationType: Ds1000Perturbation;
  /**
   * The `library_problem_id` of the problem this one was perturbed from (library-local: the
   * family key is (library, perturbationOriginId); see splits.ts).
   */
  perturbationOriginId: number;
}

export interface Ds1000Problem {
  /** The natural-language problem with its code scaffold, ending in `BEGIN SOLUTION\n<code>`. */
  prompt: string;
  referenceCode: string;
  /** The test program: defines test_execution(solution) and maybe test_string(solution). */
  codeContext: string;
  metadata: Ds1000Metadata;
}

const nonNegInt = z.number().int().nonnegative();

export const ds1000RowSchema = z.object({
  prompt: z.string(),
  reference_code: z.string(),
  code_context: z.string(),
  metadata: z.object({
    problem_id: nonNegInt,
    library_problem_id: nonNegInt,
    library: z.string().min(1),
    test_case_cnt: nonNegInt,
    perturbation_type: z.enum(DS1000_PERTURBATIONS),
    perturbation_origin_id: nonNegInt,
  }),
});
export type Ds1000Row = z.infer<typeof ds1000RowSchema>;

/** The default file name in the shared data folder. */
export const DS1000_FILE = 'ds1000.jsonl.gz';

export function ds1000FromRow(r: Ds1000Row): Ds1000Problem {
  const m = r.metadata;
  return {
    prompt: r.prompt,
    referenceCode: r.reference_code,
    codeContext: r.code_context,
    metadata: {
      problemId: m.problem_id,
      libraryProblemId: m.library_problem_id,
      library: m.library,
      testCaseCnt: m.test_case_cnt,
      perturbationType: m.perturbation_type,
      perturbationOriginId: m.perturbation_origin_id,
    },
  };
}

export interface LoadDs1000Options {
  /**
   * A local .jsonl / .jsonl.gz / .parquet file, or a Hub dataset `hf://datasets/org/name[@rev][/file]`
   * (`hf://datasets` alone: xlangai/DS-1000); default `data/ds1000.jsonl.gz` (see data/paths.ts).
   */
  path?: string;
  /** Malformed rows: throw (default), or report each to this function and skip it. */
  onInvalid?: InvalidRowPolicy;
}

/**
 * Loads and validates DS-1000. Problem ids must be unique (a duplicate is a FormatError naming
 * both lines). The result is ordered as in the file.
 */
export async function loadDs1000(opts: LoadDs1000Options = {}): Promise<Ds1000Problem[]> {
  const files = await benchmarkFiles(opts.path, 'ds1000', DS1000_FILE);
  return ds1000FromFiles(files, opts.onInvalid);
}

async function ds1000FromFiles(
  files: readonly string[],
  onInvalid: InvalidRowPolicy | undefined,
): Promise<Ds1000Problem[]> {
  const rows = await readDataRows(files, ds1000RowSchema, {
    what: 'DS-1000 row',
    ...(onInvalid ? { onInvalid } : {}),
  });
  const seen = new Map<number, string>();
  const out: Ds1000Problem[] = [];
  for (const { file, line, value } of rows) {
    const id = value.metadata.problem_id;
    const first = seen.get(id);
    if (first !== undefined) {
      throw new FormatError(`duplicate problem_id ${id}`, {
        where: `${file}:${line} field metadata.problem_id`,
        expected: 'unique problem ids',
        found: `problem_id ${id} also on line ${first}`,
      });
    }
    seen.set(id, files.length > 1 ? `${file}:${line}` : String(line));
    out.push(ds1000FromRow(value));
  }
  return out;
}

export const DS1000_HUB_REPO = HUB_DATASETS.ds1000.repo;
/** The file of the Hub dataset that holds the same rows as data/ds1000.jsonl.gz. */
export const DS1000_HUB_FILE = HUB_DATASETS.ds1000.files[0];

/**
 * Downloads DS-1000 from the Hugging Face Hub (dataset xlangai/DS-1000, `test.jsonl`, into the
 * Hugging Face cache) and loads it. Needs a registered Hub client (setHubDatasetFetcher; the CLI
 * registers one); fails with a NetworkError naming the repository when there is none or the
 * Hub cannot be reached (HF_HUB_OFFLINE=1 uses the cache only).
 */
export async function loadDs1000FromHub(
  opts: { repo?: string; file?: string; revision?: string; onInvalid?: InvalidRowPolicy } = {},
): Promise<Ds1000Problem[]> {
  const files = await fetchHubDataset({
    repo: opts.repo ?? DS1000_HUB_REPO,
    files: [opts.file ?? DS1000_HUB_FILE],
    ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
  });
  return ds1000FromFiles(files, opts.onInvalid);
}
