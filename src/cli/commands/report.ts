// rl4qe report RUN_DIR: (re)writes RUN_DIR/report.html from the run's files and prints its path.
// Safe while a run is still training: the JSONL files are only read, a half-written last line is
// skipped (and said so in the page), and the report is replaced atomically.
import type { Command } from 'commander';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../../train/report.js';

export interface ReportCommandOptions {
  /** Print a file:// URL (to paste into a browser) instead of the plain path. */
  openPath?: boolean;
  /** Where the path goes (default stdout). */
  write?: (line: string) => void;
}

/** Writes the report and prints where it is; returns the path. */
export function reportCommand(runDir: string, opts: ReportCommandOptions = {}): string {
  const out = writeReport(runDir);
  const write = opts.write ?? ((l: string) => process.stdout.write(l + '\n'));
  write(opts.openPath ? pathToFileURL(out).href : out);
  return out;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      'write RUN_DIR/report.html (self-contained, offline) from a training run and print its path',
    )
    .argument('<run_dir>', 'the run directory written by `rl4qe train`')
    .option('--open-path', 'print a file:// URL to open in a browser instead of the path')
    .action((runDir: string, opts: { openPath?: boolean }) => {
      reportCommand(runDir, { openPath: opts.openPath === true });
    });
}
