// How a sandbox worker is started: inside bubblewrap when it works (no network, a private
// filesystem view in which only the Python installation, the venv and a scratch folder exist, own
// pid/ipc/uts namespaces), otherwise directly with the weaker fallback that docs/sandbox.md
// describes. Probed once per process and cached.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type IsolationMode = 'bwrap' | 'none';

export interface IsolationInfo {
  mode: IsolationMode;
  /** Root: each worker's tests run under their own unprivileged uid. */
  uidDrop: boolean;
  /** Network: 'namespace' (bwrap), 'unshare' (the worker unshares it itself, root only) or 'open'. */
  network: 'namespace' | 'unshare' | 'open';
  /** Filesystem: 'private' (bwrap view) or 'host' (the host's, protected only by file modes). */
  filesystem: 'private' | 'host';
  /** Why the mode was chosen (shown by `rl4qe doctor`). */
  reason: string;
}

let bwrapProbe: { ok: boolean; reason: string } | undefined;

function probeBwrap(): { ok: boolean; reason: string } {
  if (bwrapProbe) return bwrapProbe;
  const r = spawnSync(
    'bwrap',
    [
      '--ro-bind',
      '/',
      '/',
      '--unshare-net',
      '--unshare-pid',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      'true',
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (r.error) {
    bwrapProbe = { ok: false, reason: `bwrap not usable: ${r.error.message}` };
  } else if (r.status !== 0) {
    bwrapProbe = {
      ok: false,
      reason: `bwrap failed (exit ${r.status}): ${(r.stderr ?? '').trim().slice(0, 200)}`,
    };
  } else {
    bwrapProbe = { ok: true, reason: 'bwrap works' };
  }
  return bwrapProbe;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** Which isolation a sandbox gets on this machine with the requested mode ('auto' picks). */
export function detectIsolation(requested: 'auto' | IsolationMode = 'auto'): IsolationInfo {
  const root = isRoot();
  if (requested !== 'none' && process.platform === 'linux') {
    const p = probeBwrap();
    if (p.ok) {
      return {
        mode: 'bwrap',
        uidDrop: root,
        network: 'namespace',
        filesystem: 'private',
        reason: root
          ? 'bubblewrap: network, filesystem, pid, ipc and uts namespaces; tests run as a per-worker uid'
          : 'bubblewrap: network, filesystem, pid, ipc and uts namespaces (not root: tests keep our uid)',
      };
    }
    if (requested === 'bwrap') {
      return {
        mode: 'bwrap',
        uidDrop: root,
        network: 'namespace',
        filesystem: 'private',
        reason: p.reason,
      };
    }
  }
  return {
    mode: 'none',
    uidDrop: root && process.platform === 'linux',
    network: root && process.platform === 'linux' ? 'unshare' : 'open',
    filesystem: 'host',
    reason:
      requested === 'none'
        ? 'isolation disabled by request'
        : `${process.platform !== 'linux' ? 'not Linux' : probeBwrap().reason}: ` +
          (root
            ? 'fallback: tests run as a per-worker uid (root-only files unreadable), network unshared; the host filesystem is visible'
            : 'WEAK fallback: rlimits and a process group only; network and filesystem are not isolated (apt-get install bubblewrap)'),
  };
}

/** The Python worker source, found from dist/src/sandbox/ or src/sandbox/. */
export function workerScriptPath(): string {
  const candidates = [
    new URL('./python/worker.py', import.meta.url),
    new URL('../../../src/sandbox/python/worker.py', import.meta.url),
  ];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return p;
  }
  return fileURLToPath(candidates[candidates.length - 1] as URL);
}

export interface PythonLayout {
  /** The interpreter's own path (sys.executable: a venv's bin/python, never a pyenv shim). */
  executable: string;
  /** Directories that must be visible (read-only) for this interpreter to run. */
  roots: string[];
}

const layoutCache = new Map<string, PythonLayout | Error>();

/** Asks the interpreter where it lives (venv prefix, base installation) so bwrap can bind them. */
export function pythonLayout(python: string): PythonLayout | Error {
  const hit = layoutCache.get(python);
  if (hit) return hit;
  const r = spawnSync(
    python,
    [
      '-I',
      '-c',
      'import sys,os,json;print(json.dumps([sys.prefix,sys.base_prefix,os.path.realpath(sys.executable),sys.executable]))',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  let out: PythonLayout | Error;
  if (r.error || r.status !== 0) {
    out = new Error(
      `cannot run ${python}: ${r.error?.message ?? (r.stderr ?? '').trim().slice(0, 300)}`,
    );
  } else {
    const [prefix, base, real, exe] = JSON.parse(r.stdout.trim()) as [
      string,
      string,
      string,
      string,
    ];
    const roots = new Set<string>();
    for (const d of [prefix, base, path.dirname(path.dirname(real))]) {
      const rp = realpathSync(d);
      if (rp === '/usr' || rp.startsWith('/usr/')) continue;
      roots.add(rp);
      if (d !== rp) roots.add(d);
    }
    out = { executable: exe, roots: [...roots] };
  }
  layoutCache.set(python, out);
  return out;
}

/**
 * bwrap arguments for a worker. Only /usr (and its /bin, /lib symlinks), /etc, the interpreter's
 * directories, the worker script and the scratch folder are visible; the user's home, keys and the
 * project are not. Parent folders bwrap creates are made 0755 so an unprivileged uid can reach the
 * bound interpreter (bwrap's default for them is 0700).
 */
export function bwrapArgs(opts: {
  python: PythonLayout;
  workerScript: string;
  workRoot: string;
  /** bwrap runs as root: keep only the capabilities the worker needs (below). */
  root?: boolean;
  /** Size of the run folders' tmpfs (/sandbox); /tmp and /var/tmp get a quarter each. */
  diskBytes?: number;
  /** Host folders bound read-write inside (the worker's cgroup folders): [host, inside]. */
  binds?: readonly [string, string][];
  /**
   * The worker re-mounts its scratch tmpfs with an inode count, so it keeps CAP_SYS_ADMIN until
   * it has (worker.py drops it from every set before anything else runs).
   */
  mountCapability?: boolean;
}): string[] {
  const disk = Math.max(16 * 2 ** 20, Math.floor(opts.diskBytes ?? 512 * 2 ** 20));
  const small = String(Math.max(8 * 2 ** 20, Math.floor(disk / 4)));
  // As root, every capability goes except what the worker itself uses: SETUID/SETGID (the
  // per-test uid), CHOWN (its run folder), DAC_OVERRIDE/FOWNER (reading and removing what the
  // test left), KILL (ending the test's processes). The tests lose even these at the uid drop;
  // no_new_privs (worker.py) keeps setuid binaries from giving any back.
  const keep = [
    'CAP_SETUID',
    'CAP_SETGID',
    'CAP_CHOWN',
    'CAP_DAC_OVERRIDE',
    'CAP_FOWNER',
    'CAP_KILL',
    ...(opts.mountCapability ? ['CAP_SYS_ADMIN'] : []),
  ];
  const caps = opts.root ? ['--cap-drop', 'ALL', ...keep.flatMap((c) => ['--cap-add', c])] : [];
  const a: string[] = [
    ...caps,
    '--die-with-parent',
    '--unshare-net',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--new-session',
    '--ro-bind',
    '/usr',
    '/usr',
    '--ro-bind',
    '/etc',
    '/etc',
    // Host keys and other credentials under /etc are hidden too.
    '--tmpfs',
    '/etc/ssh',
  ];
  for (const l of ['bin', 'lib', 'lib64', 'sbin']) {
    const p = `/${l}`;
    let target: string | undefined;
    try {
      const real = realpathSync(p);
      target = real;
    } catch {
      continue;
    }
    if (target.startsWith('/usr/')) a.push('--symlink', target.slice(1), p);
    else a.push('--ro-bind', target, p);
  }
  // /tmp and /var/tmp are private, world-writable tmpfs (what libraries expect); the worker removes
  // whatever a test leaves there.
  a.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--size', small, '--tmpfs', '/tmp');
  a.push('--dir', '/var', '--perms', '1777', '--size', small, '--tmpfs', '/var/tmp');
  // Folders that exist in the sandbox: created ones, plus mount points that cover their subtrees.
  const dirs = new Set<string>(['/', '/usr', '/etc', '/tmp', '/proc', '/dev', '/var']);
  const bound = new Set<string>(['/usr', '/etc']);
  const ensureParents = (dest: string): void => {
    const parts = dest.split('/').filter(Boolean);
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur += '/' + parts[i];
      if (dirs.has(cur)) continue;
      dirs.add(cur);
      a.push('--perms', '0755', '--dir', cur);
    }
  };
  const under = (p: string, b: string): boolean => p === b || p.startsWith(b + '/');
  const roots = [...opts.python.roots].sort((x, y) => x.length - y.length);
  for (const r of roots) {
    if ([...bound].some((b) => under(r, b))) continue;
    ensureParents(r);
    a.push('--ro-bind', r, r);
    bound.add(r);
    dirs.add(r);
  }
  ensureParents('/opt/rl4qe/worker.py');
  a.push('--ro-bind', opts.workerScript, '/opt/rl4qe/worker.py');
  for (const [host, inside] of opts.binds ?? []) {
    ensureParents(inside);
    a.push('--bind', host, inside);
  }
  // The run folders live on a size-capped tmpfs, not on the host disk (the host folder stays
  // empty: it only carries the owner's pid for the stale sweep). 0711: a test's uid can enter its
  // own run-N but can list neither the others nor the judge's folder.
  a.push('--perms', '0711', '--size', String(disk), '--tmpfs', '/sandbox', '--chdir', '/sandbox');
  return a;
}
