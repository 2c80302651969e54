// DS-1000 (Lai et al. 2022), the simplified format of xlang-ai/DS-1000 `data/ds1000.jsonl.gz`
// and of the Hub dataset xlangai/DS-1000: one JSON object per line with `prompt`,
// `reference_code`, `code_context` and `metadata`. Rows are validated at the edge and renamed to
// camelCase; inside rl4qe they are trusted.
import { z } from 'zod';
import { readJsonl, type InvalidRowPolicy } from './jsonl.js';
import { sharedDataFile } from './paths.js';
import { FormatError, NetworkError } from '../util/errors.js';

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
  /** A local .jsonl or .jsonl.gz file; default `data/ds1000.jsonl.gz` (see data/paths.ts). */
  path?: string;
  /** Malformed rows: throw (default), or report each to this function and skip it. */
  onInvalid?: InvalidRowPolicy;
}

/**
 * Loads and validates DS-1000. Problem ids must be unique (a duplicate is a FormatError naming
 * both lines). The result is ordered as in the file.
 */
export async function loadDs1000(opts: LoadDs1000Options = {}): Promise<Ds1000Problem[]> {
  const file = opts.path ?? sharedDataFile(DS1000_FILE);
  const rows = await readJsonl(file, ds1000RowSchema, {
    what: 'DS-1000 row',
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  });
  const seen = new Map<number, number>();
  const out: Ds1000Problem[] = [];
  for (const { line, value } of rows) {
    const id = value.metadata.problem_id;
    const first = seen.get(id);
    if (first !== undefined) {
      throw new FormatError(`duplicate problem_id ${id}`, {
        where: `${file}:${line} field metadata.problem_id`,
        expected: 'unique problem ids',
        found: `problem_id ${id} also on line ${first}`,
      });
    }
    seen.set(id, line);
    out.push(ds1000FromRow(value));
  }
  return out;
}

/**
 * Hook for downloading a Hub dataset file (set by the io layer once its Hub client exists).
 * TODO(io): register the Hub client here (`setHubDatasetFetcher`) so `loadDs1000FromHub` can
 * download `xlangai/DS-1000` on a connected machine; data/ may not import io/ (import arrows).
 */
export type HubDatasetFetcher = (req: {
  repo: string;
  file: string;
  revision?: string;
}) => Promise<string>;
let hubFetcher: HubDatasetFetcher | undefined;

/** Registers the function that downloads a Hub dataset file and returns its local path. */
export function setHubDatasetFetcher(f: HubDatasetFetcher | undefined): void {
  hubFetcher = f;
}

export const DS1000_HUB_REPO = 'xlangai/DS-1000';
/** The file of the Hub dataset that holds the same rows as the shared ds1000.jsonl.gz. */
export const DS1000_HUB_FILE = 'test.jsonl';

/**
 * Downloads DS-1000 from the Hugging Face Hub (dataset xlangai/DS-1000) and loads it. Fails with
 * a NetworkError when no Hub client is registered or the Hub cannot be reached.
 */
export async function loadDs1000FromHub(
  opts: { repo?: string; file?: string; revision?: string } = {},
): Promise<Ds1000Problem[]> {
  const repo = opts.repo ?? DS1000_HUB_REPO;
  const file = opts.file ?? DS1000_HUB_FILE;
  if (!hubFetcher) {
    throw new NetworkError('cannot download DS-1000 from the Hugging Face Hub', {
      where: `hf://datasets/${repo}/${file}`,
      expected: 'a registered Hub client and network access',
      found: 'no Hub client registered (offline build)',
      hint: 'use the offline copy: loadDs1000() reads ../shared/data/ds1000.jsonl.gz, or pass {path}',
    });
  }
  let local: string;
  try {
    local = await hubFetcher({ repo, file, revision: opts.revision });
  } catch (e) {
    if (e instanceof NetworkError) throw e;
    throw new NetworkError('cannot download DS-1000 from the Hugging Face Hub', {
      where: `hf://datasets/${repo}/${file}`,
      found: (e as Error).message,
      hint: 'check the network, or use the offline copy with loadDs1000({path})',
      cause: e,
    });
  }
  return loadDs1000({ path: local });
}
