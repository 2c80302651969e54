// Shared helpers for the sandbox suites: host-side checks that nothing the sandbox ran is left.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Host pids whose real uid is one of `uids` (processes the sandbox's tests left running). */
export function processesOf(uids: readonly number[]): number[] {
  if (uids.length === 0) return [];
  const want = new Set(uids);
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m && want.has(Number(m[1]))) out.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * A private parent for a sandbox's scratch folders (mode 0711, as the OS temp folder would let a
 * per-test uid through), so a test can check that it is empty afterwards even while other
 * sandboxes run on the machine.
 */
export function privateTmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-test-tmp-'));
  chmodSync(d, 0o711);
  return d;
}

/** Scratch folders of this process's sandboxes in `dir`. */
export function sandboxTempDirs(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(`rl4qe-sbx-${process.pid}-`));
}

/** Open descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Child processes of this Node process (sandbox workers, bwrap). */
export function childProcesses(): number[] {
  const me = String(process.pid);
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
      if (ppid === me) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

/** Host pids whose command line contains `text`. */
export function commandLinesContaining(text: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}
