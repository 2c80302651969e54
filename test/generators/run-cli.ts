// Runs `rl4qe generate …` as a child process with its own RL4QE_HOME. Asynchronous on purpose:
// servers the tests start in this process (the fault server) must keep answering meanwhile.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function runGenerateCli(home: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, 'generate', ...args],
      { env: { ...process.env, RL4QE_HOME: home } },
      (err, stdout, stderr) =>
        resolve({
          status: err ? Number((err as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr,
        }),
    );
  });
}
