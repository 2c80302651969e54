// Seeded train / validation / test splits, written as a JSON manifest into each run.
//
// Strategies:
// - `paper`: the RL4QE paper's split, a seeded uniform shuffle of all tasks cut into 800 train
//   and 200 test. Perturbations of one DS-1000 problem can land on both sides (a leak: the test
//   set then holds near-copies of training problems).
// - `leak-free` (default): tasks are grouped into families (CodeTask.group; for DS-1000 the root
//   origin problem of each perturbation family) and whole families are assigned, stratified by
//   CodeTask.stratum (the DS-1000 library), so each library's share of the test set is its share
//   of the data. Sizes hit the target exactly whenever small families allow (they do on DS-1000).
// The validation set is carved from train with the same strategy and its own derived seed.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Ds1000Problem } from './ds1000.js';
import { ds1000Task, type CodeTask } from './tasks.js';
import { Rng } from '../util/rng.js';
import { ConfigError, FormatError, NotFoundError } from '../util/errors.js';
import { fieldPath } from './jsonl.js';

export type SplitStrategy = 'paper' | 'leak-free';

export interface SplitOptions {
  seed: number;
  /** Default 'leak-free'. */
  strategy?: SplitStrategy;
  /** Test-set size in tasks (default: 20% of the tasks, i.e. the paper's 200 of 1000). */
  testSize?: number;
  /** Validation-set size carved from train (default 0 for 'paper', 10% of train for 'leak-free'). */
  validationSize?: number;
  /** A name recorded in the manifest (e.g. "ds1000"). */
  dataset?: string;
}

export interface SplitManifest {
  version: 1;
  dataset: string;
  strategy: SplitStrategy;
  seed: number;
  createdAt: string;
  sizes: { train: number; validation: number; test: number };
  /** Task counts per stratum (library) and split. */
  countsByStratum: Record<string, { train: number; validation: number; test: number }>;
  /** Task ids per split, in a seeded order. */
  ids: { train: string[]; validation: string[]; test: string[] };
}

/**
 * DS-1000 problems → CodeTasks whose `group` is the root of each perturbation family.
 * perturbation_origin_id is a library-local library_problem_id, and a few perturbations point at
 * another perturbation (Sklearn 54 → 53 → 51), so families are followed to their root.
 */
export function ds1000Tasks(problems: Ds1000Problem[]): CodeTask[] {
  const key = (lib: string, id: number): string => `${lib}/${id}`;
  const parent = new Map<string, string>();
  for (const p of problems) {
    const m = p.metadata;
    parent.set(key(m.library, m.libraryProblemId), key(m.library, m.perturbationOriginId));
  }
  const root = (k: string): string => {
    const seen = new Set<string>();
    let cur = k;
    for (;;) {
      const up = parent.get(cur);
      if (up === undefined || up === cur || seen.has(up)) return cur;
      seen.add(cur);
      cur = up;
    }
  };
  return problems.map((p) => {
    const r = root(key(p.metadata.library, p.metadata.libraryProblemId));
    const t = ds1000Task(p);
    t.group = r;
    return t;
  });
}

interface Family {
  group: string;
  stratum: string;
  ids: string[];
}

function families(tasks: CodeTask[]): Family[] {
  const byGroup = new Map<string, Family>();
  for (const t of tasks) {
    let f = byGroup.get(t.group);
    if (!f) {
      f = { group: t.group, stratum: t.stratum, ids: [] };
      byGroup.set(t.group, f);
    }
    // A family spanning strata is assigned whole, under the stratum of its first task.
    f.ids.push(t.id);
  }
  return [...byGroup.values()];
}

/** Largest-remainder apportionment of `total` over `weights` (sums exactly to total). */
export function apportion(weights: Map<string, number>, total: number): Map<string, number> {
  const sum = [...weights.values()].reduce((a, b) => a + b, 0);
  const out = new Map<string, number>();
  if (sum === 0) return out;
  const rema: [string, number][] = [];
  let given = 0;
  for (const [k, w] of weights) {
    const exact = (w * total) / sum;
    const fl = Math.floor(exact);
    out.set(k, fl);
    given += fl;
    rema.push([k, exact - fl]);
  }
  rema.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 0; given < total && i < rema.length; i++, given++) {
    const k = rema[i]![0];
    out.set(k, out.get(k)! + 1);
  }
  return out;
}

/**
 * Picks whole families to hold `target` tasks: per stratum, a seeded shuffle of its families,
 * taking each family that still fits; the stratum targets are apportioned by stratum size.
 * Returns the ids taken and the ids left.
 */
function pickLeakFree(
  tasks: CodeTask[],
  target: number,
  rng: Rng,
): { taken: string[]; rest: string[] } {
  const fams = families(tasks);
  const byStratum = new Map<string, Family[]>();
  const sizes = new Map<string, number>();
  for (const f of fams) {
    if (!byStratum.has(f.stratum)) byStratum.set(f.stratum, []);
    byStratum.get(f.stratum)!.push(f);
    sizes.set(f.stratum, (sizes.get(f.stratum) ?? 0) + f.ids.length);
  }
  const targets = apportion(sizes, target);
  const taken: string[] = [];
  const rest: string[] = [];
  let deficit = 0;
  const leftovers: Family[] = [];
  // Strata in a fixed (sorted) order so the result depends only on the seed and the data.
  for (const s of [...byStratum.keys()].sort()) {
    const fs = rng.shuffle([...byStratum.get(s)!]);
    const want = targets.get(s) ?? 0;
    let got = 0;
    for (const f of fs) {
      if (got + f.ids.length <= want) {
        taken.push(...f.ids);
        got += f.ids.length;
      } else leftovers.push(f);
    }
    deficit += want - got;
  }
  // Rare: big families left a stratum short; fill from any leftover family that fits.
  for (const f of leftovers) {
    if (deficit > 0 && f.ids.length <= deficit) {
      taken.push(...f.ids);
      deficit -= f.ids.length;
    } else rest.push(...f.ids);
  }
  return { taken, rest };
}

function pickUniform(ids: string[], target: number, rng: Rng): { taken: string[]; rest: string[] } {
  const xs = rng.shuffle([...ids]);
  return { taken: xs.slice(0, target), rest: xs.slice(target) };
}

function checkSize(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new ConfigError(`invalid ${name}`, {
      where: name,
      expected: `an integer in [0, ${max}]`,
      found: String(v),
    });
  }
}

/** Splits tasks into train / validation / test and describes the result as a manifest. */
export function makeSplit(tasks: CodeTask[], opts: SplitOptions): SplitManifest {
  const strategy = opts.strategy ?? 'leak-free';
  if (strategy !== 'paper' && strategy !== 'leak-free') {
    throw new ConfigError('unknown split strategy', {
      where: 'strategy',
      expected: "'paper' or 'leak-free'",
      found: String(strategy),
    });
  }
  const n = tasks.length;
  const ids = new Set(tasks.map((t) => t.id));
  if (ids.size !== n) {
    throw new ConfigError('task ids are not unique', {
      where: 'tasks',
      found: `${n - ids.size} duplicates`,
    });
  }
  const testSize = opts.testSize ?? Math.round(n * 0.2);
  checkSize('testSize', testSize, n);
  const rng = new Rng(opts.seed);
  const testRng = rng.fork();
  const valRng = rng.fork();
  const byId = new Map(tasks.map((t) => [t.id, t]));

  const pick = strategy === 'paper' ? pickUniform : null;
  const first =
    pick !== null
      ? pick(
          tasks.map((t) => t.id),
          testSize,
          testRng,
        )
      : pickLeakFree(tasks, testSize, testRng);
  const trainAll = first.rest;
  const valSize =
    opts.validationSize ?? (strategy === 'paper' ? 0 : Math.round(trainAll.length * 0.1));
  checkSize('validationSize', valSize, trainAll.length);
  const second =
    pick !== null
      ? pick(trainAll, valSize, valRng)
      : pickLeakFree(
          trainAll.map((id) => byId.get(id)!),
          valSize,
          valRng,
        );
  const split = { train: second.rest, validation: second.taken, test: first.taken };
  // Seeded order inside each split (training iterates in this order unless it reshuffles).
  const orderRng = rng.fork();
  for (const k of ['train', 'validation', 'test'] as const) orderRng.shuffle(split[k]);

  const counts: SplitManifest['countsByStratum'] = {};
  for (const k of ['train', 'validation', 'test'] as const) {
    for (const id of split[k]) {
      const s = byId.get(id)!.stratum;
      counts[s] ??= { train: 0, validation: 0, test: 0 };
      counts[s][k]++;
    }
  }
  const sortedCounts = Object.fromEntries(
    Object.keys(counts)
      .sort()
      .map((k) => [k, counts[k]!]),
  );
  return {
    version: 1,
    dataset: opts.dataset ?? tasks[0]?.source ?? 'tasks',
    strategy,
    seed: opts.seed,
    createdAt: new Date().toISOString(),
    sizes: {
      train: split.train.length,
      validation: split.validation.length,
      test: split.test.length,
    },
    countsByStratum: sortedCounts,
    ids: split,
  };
}

const countsSchema = z.object({
  train: z.number().int().nonnegative(),
  validation: z.number().int().nonnegative(),
  test: z.number().int().nonnegative(),
});
export const splitManifestSchema = z.object({
  version: z.literal(1),
  dataset: z.string(),
  strategy: z.enum(['paper', 'leak-free']),
  seed: z.number().int(),
  createdAt: z.string(),
  sizes: countsSchema,
  countsByStratum: z.record(z.string(), countsSchema),
  ids: z.object({
    train: z.array(z.string()),
    validation: z.array(z.string()),
    test: z.array(z.string()),
  }),
});

export async function writeSplitManifest(file: string, m: SplitManifest): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFile(file, JSON.stringify(m, null, 2) + '\n');
}

export async function readSplitManifest(file: string): Promise<SplitManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    const notFound = (e as NodeJS.ErrnoException).code === 'ENOENT';
    const Cls = notFound ? NotFoundError : FormatError;
    throw new Cls(notFound ? 'split manifest not found' : 'split manifest is not valid JSON', {
      where: file,
      found: (e as Error).message,
      cause: e,
    });
  }
  const r = splitManifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new FormatError(`invalid split manifest: ${issue.message}`, {
      where: `${file} field ${fieldPath(issue.path)}`,
    });
  }
  return r.data;
}

/** The tasks of each split, in manifest order. Unknown ids are a FormatError. */
export function applySplit(
  tasks: CodeTask[],
  m: SplitManifest,
): { train: CodeTask[]; validation: CodeTask[]; test: CodeTask[] } {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const get = (k: 'train' | 'validation' | 'test'): CodeTask[] =>
    m.ids[k].map((id, i) => {
      const t = byId.get(id);
      if (!t) {
        throw new FormatError(`split manifest names an unknown task id`, {
          where: `ids.${k}[${i}]`,
          found: id,
          hint: 'the manifest was made for another dataset or version',
        });
      }
      return t;
    });
  return { train: get('train'), validation: get('validation'), test: get('test') };
}

/**
 * The split of a run: reads `<runDir>/split.json` when it exists (a resumed run keeps its split;
 * it must match the requested strategy and seed and name only known tasks), else makes it and
 * writes it there.
 */
export async function ensureRunSplit(
  runDir: string,
  tasks: CodeTask[],
  opts: SplitOptions,
): Promise<SplitManifest> {
  const file = path.join(runDir, 'split.json');
  let existing: SplitManifest | undefined;
  try {
    existing = await readSplitManifest(file);
  } catch (e) {
    if (!(e instanceof NotFoundError)) throw e;
  }
  if (existing) {
    const strategy = opts.strategy ?? 'leak-free';
    if (existing.seed !== opts.seed || existing.strategy !== strategy) {
      throw new ConfigError('this run already has a different split', {
        where: file,
        expected: `strategy ${strategy}, seed ${opts.seed}`,
        found: `strategy ${existing.strategy}, seed ${existing.seed}`,
        hint: 'use the same split settings to resume, or start a new run directory',
      });
    }
    applySplit(tasks, existing); // throws on unknown ids
    return existing;
  }
  const m = makeSplit(tasks, opts);
  await writeSplitManifest(file, m);
  return m;
}
