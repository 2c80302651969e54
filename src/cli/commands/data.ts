// rl4qe data split|stats: inspect benchmark data and write seeded split manifests. Data comes from
// the repository's data/ folder (default), a local file, or the Hugging Face Hub
// (`--path hf://datasets/<namespace>/<name>[@rev][/file]`; `hf://datasets` alone: the benchmark's
// own repository).
import type { Command } from 'commander';
import { setHubDatasetFetcher } from '../../data/hub.js';
import { loadTasks } from '../../data/load.js';
import { fetchHubDatasetFiles, stderrProgress } from '../../io/hub/index.js';
import { makeSplit, writeSplitManifest, type SplitStrategy } from '../../data/splits.js';
import { ConfigError } from '../../util/errors.js';
import { addDeprecatedAliases, type DeprecatedAlias } from '../aliases.js';

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n))
    throw new ConfigError(`--${name} must be an integer`, { where: `--${name}`, found: v });
  return n;
}

const PATH_HELP =
  'a local .jsonl/.jsonl.gz/.parquet file, or hf://datasets/<namespace>/<name>[@rev][/file] ' +
  "(hf://datasets alone: the benchmark's Hub repository); default: the repository's data/ folder";

export function registerData(program: Command): void {
  // data/ may not import io/: the CLI hands it the Hub client. Registered here because main.ts
  // registers every command at start-up, so train, eval and serve get it too.
  setHubDatasetFetcher((req) =>
    fetchHubDatasetFiles(req, process.stderr.isTTY ? { onProgress: stderrProgress() } : {}),
  );
  const data = program.command('data').description('benchmark data: splits and statistics');
  const split = data
    .command('split')
    .description('write a seeded train/validation/test split manifest (JSON)')
    .option('--dataset <name>', 'ds1000 | humaneval | mbpp | custom', 'ds1000')
    .option('--data-path <file>', PATH_HELP)
    .option('--strategy <s>', "'leak-free' (families together, stratified) or 'paper'", 'leak-free')
    .option('--seed <n>', 'random seed', '0')
    .option('--test <n>', 'test-set size (default 20% of the tasks)')
    .option('--val <n>', 'validation size carved from train (default: paper 0, leak-free 10%)')
    .option('--out <file>', 'write the manifest here (default: print it)')
    .action(
      async (o: {
        dataset: string;
        dataPath?: string;
        strategy: string;
        seed: string;
        test?: string;
        val?: string;
        out?: string;
      }) => {
        if (o.strategy !== 'paper' && o.strategy !== 'leak-free') {
          throw new ConfigError('unknown --strategy', {
            where: '--strategy',
            expected: 'paper or leak-free',
            found: o.strategy,
          });
        }
        const tasks = await loadTasks({ dataset: o.dataset, path: o.dataPath });
        const m = makeSplit(tasks, {
          seed: int('seed', o.seed) ?? 0,
          strategy: o.strategy as SplitStrategy,
          testSize: int('test', o.test),
          validationSize: int('val', o.val),
          dataset: o.dataset,
        });
        if (o.out) {
          await writeSplitManifest(o.out, m);
          process.stderr.write(
            `wrote ${o.out}: train ${m.sizes.train}, validation ${m.sizes.validation}, test ${m.sizes.test}\n`,
          );
        } else process.stdout.write(JSON.stringify(m, null, 2) + '\n');
      },
    );
  const stats = data
    .command('stats')
    .description('task counts per stratum (library) and family sizes')
    .option('--dataset <name>', 'ds1000 | humaneval | mbpp | custom', 'ds1000')
    .option('--data-path <file>', PATH_HELP)
    .option('--json', 'print the statistics as one JSON line on stdout')
    .action(async (o: { dataset: string; dataPath?: string; json?: boolean }) => {
      const tasks = await loadTasks({ dataset: o.dataset, path: o.dataPath });
      const strata: Record<string, number> = {};
      const fam = new Map<string, number>();
      for (const t of tasks) {
        strata[t.stratum] = (strata[t.stratum] ?? 0) + 1;
        fam.set(t.group, (fam.get(t.group) ?? 0) + 1);
      }
      const famSizes: Record<string, number> = {};
      for (const n of fam.values()) famSizes[n] = (famSizes[n] ?? 0) + 1;
      const withTests = tasks.filter((t) => t.tests !== undefined).length;
      const s = {
        tasks: tasks.length,
        withTests,
        families: fam.size,
        strata,
        familySizes: famSizes,
      };
      if (o.json) process.stdout.write(JSON.stringify(s) + '\n');
      else process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    });
  const oldPath: DeprecatedAlias = {
    flags: '--path <file>',
    use: '--data-path <file>',
    to: (v) => ({ dataPath: v }),
  };
  addDeprecatedAliases(split, [oldPath]);
  addDeprecatedAliases(stats, [oldPath]);
}
