// rl4qe train: REINFORCE training of a refiner against a fixed generator (src/train/).
//   rl4qe train --config configs/ds1000-smollm2.yaml [--set optim.lr=3e-5 ...]
//   rl4qe train --resume RUN_DIR [--set run.steps=200]
//   rl4qe train --config F --print-config        the resolved configuration, nothing run
//   rl4qe train --help-config                    every key, its default and what it does
// Ctrl-C stops after the current step with a checkpoint; a second Ctrl-C exits at once.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  describeConfig,
  loadConfigFile,
  parseSetFlags,
  resolveTrainConfig,
  type ConfigLayer,
  type TrainConfig,
} from '../../train/config.js';
import { train } from '../../train/trainer.js';
import { writeReport } from '../../train/report.js';
import { ConfigError } from '../../util/errors.js';

interface TrainFlags {
  config: string[];
  set: string[];
  compute?: string;
  resume?: string;
  printConfig?: boolean;
  helpConfig?: boolean;
  quiet?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** The configuration layers a command line stands for (defaults ← files ← --set flags). */
export function configLayers(o: TrainFlags): ConfigLayer[] {
  const layers: ConfigLayer[] = [];
  if (o.resume !== undefined) {
    const file = path.join(o.resume, 'config.json');
    if (!fs.existsSync(file)) {
      throw new ConfigError('not a run directory (no config.json)', {
        where: o.resume,
        hint: 'pass the run.dir of an earlier `rl4qe train`',
      });
    }
    if (o.config.length > 0) {
      throw new ConfigError("--resume takes the run's own config", {
        where: '--config',
        found: o.config.join(', '),
        hint: 'drop --config; change only what resuming allows with --set (e.g. run.steps)',
      });
    }
    layers.push(loadConfigFile(file));
    // The run directory is where it is now, even if it was moved since.
    layers.push({ source: '--resume', value: { run: { dir: o.resume } } });
  }
  for (const f of o.config) layers.push(loadConfigFile(f));
  if (o.set.length > 0) layers.push({ source: '--set', value: parseSetFlags(o.set) });
  // The config schema checks the value and its conflicts (full fine-tuning), naming --compute.
  if (o.compute !== undefined)
    layers.push({ source: '--compute', value: { refiner: { compute: o.compute } } });
  return layers;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a query refiner with REINFORCE against a fixed code generator')
    .option('-c, --config <file>', 'YAML or JSON config (repeatable; later files win)', collect, [])
    .option(
      '-s, --set <key=value>',
      'override one key, e.g. optim.lr=3e-5 (repeatable)',
      collect,
      [],
    )
    .option(
      '--compute <mode>',
      "the frozen base weights' products: fp32 (default) or bf16 (AVX512-BF16, fp32 sums; fp32 with a note where the CPU has no bf16 unit); the same as --set refiner.compute=MODE",
    )
    .option('--resume <runDir>', 'continue a run from its latest checkpoint')
    .option('--print-config', 'print the resolved configuration and exit')
    .option('--help-config', 'list every configuration key with its default')
    .option('--quiet', 'no progress output')
    .option('--json', 'progress as JSON lines on stderr (default when stderr is not a TTY)')
    .action(async (o: TrainFlags) => {
      if (o.helpConfig) {
        process.stdout.write(describeConfig() + '\n');
        return;
      }
      const cfg: TrainConfig = resolveTrainConfig(configLayers(o));
      if (o.printConfig) {
        process.stdout.write(JSON.stringify(cfg, null, 2) + '\n');
        return;
      }
      const ac = new AbortController();
      let interrupts = 0;
      const onSigint = (): void => {
        interrupts += 1;
        if (interrupts === 1) {
          process.stderr.write('\nrl4qe: stopping after this step (Ctrl-C again to exit now)\n');
          ac.abort();
        } else process.exit(130);
      };
      process.on('SIGINT', onSigint);
      try {
        const r = await train({
          config: cfg,
          resume: o.resume !== undefined,
          signal: ac.signal,
          ...(o.quiet
            ? { progress: 'quiet' as const }
            : o.json
              ? { progress: 'json' as const }
              : {}),
        });
        const report = writeReport(r.runDir);
        const best = r.best
          ? `, best ${cfg.eval.metric} ${r.best.value.toFixed(4)} at step ${r.best.step}`
          : '';
        process.stderr.write(
          `rl4qe: ${r.stopped === 'signal' ? 'stopped' : 'done'} at step ${r.steps}${best}; ` +
            `checkpoint ${r.lastCheckpoint ?? 'none'}; report ${report}\n`,
        );
        if (r.stopped === 'signal') process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
