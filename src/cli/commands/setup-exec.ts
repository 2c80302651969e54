// rl4qe setup-exec: creates the sandbox's Python venv with DS-1000's pinned packages
// (scripts/setup-exec.sh does the work), and the sandbox's rows in `rl4qe doctor`. The venv is
// optional: `scripts/setup.sh --no-exec` (RL4QE_NO_EXEC=1) installs without it (README "Install").
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { detectIsolation, execVenvPython } from '../../sandbox/index.js';
import { NotFoundError, Rl4qeError } from '../../util/errors.js';
import { cachePaths } from '../../util/paths.js';
import { doctorSections } from './doctor.js';

/** scripts/setup-exec.sh of a checkout or of the npm package (package.json `files` ships it). */
export function setupExecScript(): string {
  for (const rel of ['../../../../scripts/setup-exec.sh', '../../../scripts/setup-exec.sh']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new NotFoundError('scripts/setup-exec.sh is missing from this installation', {
    hint: 'reinstall rl4qe (the package ships scripts/setup-exec.sh) or run from a checkout',
  });
}

/** Why the venv is absent: left out on purpose (the install tier without it) or not made yet. */
function missingVenvNote(): string {
  return process.env.RL4QE_NO_EXEC === '1'
    ? 'not installed: RL4QE_NO_EXEC=1 (no execution reward or pass@1; `rl4qe setup-exec` adds it)'
    : 'missing (run `rl4qe setup-exec`; without it: no execution reward or pass@1)';
}

doctorSections.push(() => {
  const iso = detectIsolation();
  return {
    // What the host offers, detected before any worker starts; "sandbox workers (probed)" below
    // says what a started worker's test actually got.
    title: 'sandbox (detected)',
    rows: [
      ['isolation', iso.mode],
      ['network', iso.network],
      ['filesystem', iso.filesystem],
      ['per-test uid', iso.uidDrop ? 'yes' : 'no'],
      ['why', iso.reason],
      ['exec python', execVenvPython() ?? missingVenvNote()],
    ],
  };
});

export function registerSetupExec(program: Command): void {
  program
    .command('setup-exec')
    .description(
      "create the sandbox's Python venv with DS-1000's pinned packages (several GB; minutes)",
    )
    .option('--venv <dir>', 'where to create it', cachePaths.execVenv())
    .action(async (opts: { venv: string }) => {
      const script = setupExecScript();
      const code = await new Promise<number>((resolve) => {
        const p = spawn('bash', [script, opts.venv], { stdio: 'inherit' });
        p.on('error', () => resolve(127));
        p.on('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) {
        throw new Rl4qeError(`setup-exec failed (exit ${code})`, {
          where: script,
          hint: 'see the output above; re-running resumes',
        });
      }
    });
}
