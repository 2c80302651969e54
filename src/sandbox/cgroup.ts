// Per-test cgroups (issue 11): memory and process counts limited per TEST, not per process. The
// Node side finds the cgroup this process is in (v2 unified, or the v1 memory and pids
// hierarchies), checks that it may create children there, and makes one group per worker; the
// worker (python/worker.py) makes one child group per test inside it, moves the test's processes
// in before they drop privileges, reads the OOM and pids counters, kills what is left and removes
// the group. Where neither hierarchy is writable the sandbox falls back to per-process rlimits and
// says so (Sandbox.notes, `rl4qe doctor`).
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';

export type CgroupVersion = 'v1' | 'v2';

export interface CgroupSupport {
  /** Which hierarchy per-test groups are made in ('none': per-process rlimits only). */
  version: CgroupVersion | 'none';
  /** Folder (in this process's cgroup) under which the memory groups are made. */
  memory?: string;
  /** Folder under which the pids groups are made (v2: the same folder as memory). */
  pids?: string;
  /** What was found and why this was chosen (shown by `rl4qe doctor`). */
  reason: string;
}

/** Host folders of one worker's group (v2: memory === pids). */
export interface WorkerCgroup {
  version: CgroupVersion;
  memory: string;
  pids: string;
}

/** Inputs of detection, replaceable so a test can point it at a fake tree. */
export interface CgroupProbeInput {
  /** Contents of /proc/self/cgroup. */
  procCgroup?: string;
  /** Contents of /proc/self/mountinfo. */
  mountinfo?: string;
}

interface Mount {
  point: string;
  root: string;
  fstype: string;
  options: string[];
}

function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 5 || b.length < 3) continue;
    const unescape = (s: string): string =>
      s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({
      root: unescape(a[3] as string),
      point: unescape(a[4] as string),
      fstype: b[0] as string,
      options: (b[2] as string).split(','),
    });
  }
  return out;
}

/** Folder of this process's group in a mount, or undefined when the mount does not show it. */
function groupDir(m: Mount, cgPath: string): string | undefined {
  const root = m.root === '/' ? '' : m.root;
  if (root !== '' && cgPath !== root && !cgPath.startsWith(root + '/')) return undefined;
  return path.join(m.point, cgPath.slice(root.length));
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message;
}

/** Whether a child group can be made (and removed) in `dir`; undefined when yes, else why not. */
function probeMkdir(
  dir: string,
  check?: (child: string) => string | undefined,
): string | undefined {
  const child = path.join(dir, `rl4qe-probe-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    mkdirSync(child);
  } catch (e) {
    return `cannot create a group in ${dir} (${errText(e)})`;
  }
  try {
    return check?.(child);
  } finally {
    try {
      rmdirSync(child);
    } catch {
      /* an empty group we just made: removable unless the machine is odd; nothing to do */
    }
  }
}

function words(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * What this machine lets the sandbox do with cgroups. v2 is preferred when its unified hierarchy
 * has the memory and pids controllers for our children; else the v1 memory and pids hierarchies;
 * else none (the reason says what was missing).
 */
export function detectCgroups(input: CgroupProbeInput = {}): CgroupSupport {
  if (process.platform !== 'linux') return { version: 'none', reason: 'not Linux' };
  let procCgroup: string;
  let mountinfo: string;
  try {
    procCgroup = input.procCgroup ?? readFileSync('/proc/self/cgroup', 'utf8');
    mountinfo = input.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  } catch (e) {
    return { version: 'none', reason: `cannot read /proc/self/cgroup: ${errText(e)}` };
  }
  const mounts = parseMountinfo(mountinfo);
  const why: string[] = [];

  // v2: "0::/path" and a cgroup2 mount.
  const v2Line = procCgroup.split('\n').find((l) => l.startsWith('0::'));
  const v2Mount = mounts.find((m) => m.fstype === 'cgroup2');
  if (v2Line !== undefined && v2Mount) {
    const dir = groupDir(v2Mount, v2Line.slice(3).trim());
    if (dir === undefined) why.push('v2: our group is outside the mounted hierarchy');
    else {
      const avail = words(path.join(dir, 'cgroup.controllers'));
      const missing = ['memory', 'pids'].filter((c) => !avail.includes(c));
      if (missing.length > 0) {
        why.push(`v2 (${dir}): controller(s) ${missing.join(', ')} not available there`);
      } else {
        const enabled = (): boolean => {
          const sub = words(path.join(dir, 'cgroup.subtree_control'));
          return sub.includes('memory') && sub.includes('pids');
        };
        let err: string | undefined;
        if (!enabled()) {
          try {
            writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+memory +pids');
          } catch (e) {
            // EBUSY: our group has processes (ours), and v2 lets a group with processes hand
            // controllers to children only at the root ("no internal processes").
            err = `v2 (${dir}): cannot enable memory and pids for child groups (${errText(e)})`;
          }
        }
        if (err === undefined && enabled()) {
          const bad = probeMkdir(dir, (child) => {
            const c = words(path.join(child, 'cgroup.controllers'));
            return c.includes('memory') && c.includes('pids')
              ? undefined
              : 'child groups do not get memory and pids';
          });
          if (bad === undefined) {
            return {
              version: 'v2',
              memory: dir,
              pids: dir,
              reason: `cgroup v2 at ${dir}: per-test memory.max and pids.max`,
            };
          }
          why.push(`v2: ${bad}`);
        } else why.push(err ?? `v2 (${dir}): memory and pids are not delegated to children`);
      }
    }
  }

  // v1: "N:memory:/path" and "N:pids:/path" with cgroup mounts carrying those controllers.
  const v1Dir = (ctrl: string): string | undefined => {
    const line = procCgroup
      .split('\n')
      .map((l) => l.split(':'))
      .find((p) => p.length >= 3 && (p[1] as string).split(',').includes(ctrl));
    const m = mounts.find((x) => x.fstype === 'cgroup' && x.options.includes(ctrl));
    if (!line || !m) {
      why.push(`v1: no ${ctrl} hierarchy`);
      return undefined;
    }
    const dir = groupDir(m, line.slice(2).join(':').trim());
    if (dir === undefined) {
      why.push(`v1 ${ctrl}: our group is outside the mounted hierarchy`);
      return undefined;
    }
    const bad = probeMkdir(dir);
    if (bad !== undefined) {
      why.push(`v1 ${ctrl}: ${bad}`);
      return undefined;
    }
    return dir;
  };
  const memory = v1Dir('memory');
  const pids = v1Dir('pids');
  if (memory !== undefined && pids !== undefined) {
    return {
      version: 'v1',
      memory,
      pids,
      reason:
        `cgroup v1: per-test memory.limit_in_bytes under ${memory}, pids.max under ${pids}` +
        (why.length > 0 ? ` (${why.join('; ')})` : ''),
    };
  }
  return {
    version: 'none',
    reason:
      `no writable cgroup with memory and pids (${why.join('; ') || 'none found'}): ` +
      'limits are per process only (RLIMIT_AS per process, RLIMIT_NPROC per uid as root)',
  };
}

let cached: CgroupSupport | undefined;

/** detectCgroups() once per process. */
export function cgroupSupport(): CgroupSupport {
  cached ??= detectCgroups();
  return cached;
}

const OWN_PREFIX = 'rl4qe-';

/** Makes one worker's group(s); throws with the reason when the machine refuses. */
export function createWorkerCgroup(sup: CgroupSupport, name: string): WorkerCgroup {
  if (sup.version === 'none' || sup.memory === undefined || sup.pids === undefined)
    throw new Error(`no cgroups: ${sup.reason}`);
  const made: string[] = [];
  try {
    const memory = path.join(sup.memory, OWN_PREFIX + name);
    mkdirSync(memory);
    made.push(memory);
    let pids = memory;
    if (sup.version === 'v1') {
      pids = path.join(sup.pids, OWN_PREFIX + name);
      mkdirSync(pids);
      made.push(pids);
    } else {
      // The worker's group holds no process itself, so it may hand both controllers down.
      writeFileSync(path.join(memory, 'cgroup.subtree_control'), '+memory +pids');
    }
    // Only the worker (root) looks inside; the tests' uids cannot even list it.
    for (const d of made) chmodSync(d, 0o700);
    return { version: sup.version, memory, pids };
  } catch (e) {
    for (const d of made.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        /* left for the stale sweep */
      }
    }
    throw e;
  }
}

function ownerPid(name: string): number | undefined {
  const m = /^rl4qe-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Removes a group folder and its child groups, killing any process still in them first (a worker
 * killed in the middle of a test). Asynchronous throughout; never throws.
 */
export async function removeCgroupTree(dir: string): Promise<boolean> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
  for (const n of entries) {
    if (/^t\d+$/.test(n) || n.startsWith('probe')) await removeCgroupTree(path.join(dir, n));
  }
  for (let i = 0; i < 200; i++) {
    let pids: number[] = [];
    try {
      pids = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      /* gone */
    }
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* exited */
      }
    }
    try {
      await rmdir(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY') return false;
    }
    await sleep(10);
  }
  return false;
}

/** Removes the groups of sandboxes whose owning process is gone (asynchronously). */
export async function sweepStaleCgroups(sup: CgroupSupport): Promise<void> {
  const parents = new Set([sup.memory, sup.pids].filter((x): x is string => x !== undefined));
  for (const parent of parents) {
    let names: string[];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const n of names) {
      const pid = ownerPid(n);
      if (pid === undefined || pid === process.pid || alive(pid)) continue;
      await removeCgroupTree(path.join(parent, n));
    }
  }
}
