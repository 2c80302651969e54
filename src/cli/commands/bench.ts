// rl4qe bench NAME [--json] [--quick]: speed measured as ratios in one run (see src/util/bench.ts).
import type { Command } from 'commander';
import { ConfigError } from '../../util/errors.js';
import { benches } from '../benches/index.js';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run a benchmark: ${Object.keys(benches).join(', ') || '(none registered)'}`)
    .argument('<name>', 'benchmark name')
    .option('--json', 'print the report as one JSON line (the last line of stdout)')
    .option('--quick', 'fewer runs and smaller cases')
    .action(async (name: string, opts: { json?: boolean; quick?: boolean }) => {
      const b = benches[name];
      if (!b) {
        throw new ConfigError(`unknown benchmark '${name}'`, {
          expected: Object.keys(benches).join(', '),
          found: name,
        });
      }
      const report = await b.run({
        quick: opts.quick === true,
        log: (l) => process.stderr.write(l + '\n'),
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
        return;
      }
      process.stdout.write(`${report.bench}\n`);
      for (const c of report.cases) {
        const ratios = Object.entries(c.ratios)
          .map(([k, v]) => `${k} ${v.toFixed(2)}×`)
          .join(', ');
        process.stdout.write(
          `  ${c.case.padEnd(28)} ${c.value.toFixed(2).padStart(10)} ${c.unit}  ${ratios}\n`,
        );
      }
    });
}
