// rl4qe doctor: what this machine gives rl4qe (Node, backend and why, CPU features, threads, paths).
import type { Command } from 'commander';
import os from 'node:os';
import { cachePaths, rl4qeHome } from '../../util/paths.js';
import { cpuLabel } from '../../util/cpu-id.js';

export interface DoctorSection {
  title: string;
  rows: [string, string][];
}

/** Sections contributed by other layers (backend, sandbox...) register here to appear in `rl4qe doctor`. */
export const doctorSections: (() => Promise<DoctorSection> | DoctorSection)[] = [
  () => ({
    title: 'runtime',
    rows: [
      ['node', process.version],
      ['platform', `${process.platform} ${process.arch}`],
      ['cpus', `${os.cpus().length} × ${cpuLabel()}`],
      ['memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ],
  }),
  async () => (await import('../../backend/doctor.js')).backendDoctorSection(),
  // sandbox: what a started worker's test actually got (uid, network, seccomp, cgroup limits).
  async () => (await import('../../sandbox/doctor.js')).sandboxDoctorSection(),
  () => ({
    title: 'paths',
    rows: [
      ['home', rl4qeHome()],
      ['models', cachePaths.models()],
      ['generator cache', cachePaths.generatorCache()],
      ['exec venv', cachePaths.execVenv()],
    ],
  }),
];

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'print the runtime, the active backend and why, CPU features, threads and cache paths',
    )
    .option('--json', 'print one JSON object instead of text')
    .action(async (opts: { json?: boolean }) => {
      const sections: DoctorSection[] = [];
      for (const s of doctorSections) sections.push(await s());
      if (opts.json) {
        const obj: Record<string, Record<string, string>> = {};
        for (const s of sections) obj[s.title] = Object.fromEntries(s.rows);
        process.stdout.write(JSON.stringify(obj) + '\n');
        return;
      }
      for (const s of sections) {
        process.stdout.write(`${s.title}\n`);
        const w = Math.max(...s.rows.map((r) => r[0].length));
        for (const [k, v] of s.rows) process.stdout.write(`  ${k.padEnd(w)}  ${v}\n`);
      }
    });
}
