// A warm pool of Python workers. Each worker imports numpy, pandas, scipy, sklearn, matplotlib,
// torch and tensorflow once, then forks a fresh isolated child per test (python/worker.py), so a
// test costs milliseconds of overhead instead of seconds of imports. The pool never throws from
// run(): every failure, including its own, is a SandboxOutcome.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createLogger } from '../util/log.js';
import { cachePaths } from '../util/paths.js';
import {
  bwrapArgs,
  detectIsolation,
  pythonLayout,
  workerScriptPath,
  type IsolationInfo,
  type IsolationMode,
} from './isolation.js';
import {
  cgroupSupport,
  createWorkerCgroup,
  removeCgroupTree,
  sweepStaleCgroups,
  type CgroupSupport,
  type WorkerCgroup,
} from './cgroup.js';
import type { OutcomeStatus, SandboxOutcome, TestResources } from './outcome.js';

const log = createLogger('sandbox');

export interface SandboxLimits {
  /** Wall-clock seconds per test (the whole process group is killed at the deadline). */
  wallSeconds: number;
  /** CPU seconds per test (RLIMIT_CPU). */
  cpuSeconds: number;
  /**
   * Memory budget in bytes: of all the test's processes together (its cgroup's memory limit) where
   * the machine offers cgroups, and per process on top of what the warm worker already maps
   * (RLIMIT_AS = inherited address space + this; see docs/sandbox.md for why not a fixed one).
   */
  memoryBytes: number;
  /** Largest file the test may write, stdout/stderr included (RLIMIT_FSIZE). */
  outputBytes: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  openFiles: number;
  /**
   * Processes and threads of the test: all of them together in its cgroup (pids.max, plus a few
   * for the judge) where the machine offers one, and RLIMIT_NPROC of its uid when root.
   */
  processes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  wallSeconds: 30,
  cpuSeconds: 30,
  memoryBytes: 4 * 2 ** 30,
  outputBytes: 16 * 2 ** 20,
  openFiles: 256,
  processes: 128,
};

export interface SandboxOptions {
  /** Workers (parallel tests). Default: the number of cores. */
  concurrency?: number;
  /** Python interpreter. Default: the exec venv's (rl4qe setup-exec), else `python3`. */
  python?: string;
  /** Import the data-science stack in each worker before forking (default true). */
  preload?: boolean;
  /** 'auto' (default) uses bubblewrap when it works, else the documented fallback. */
  isolation?: 'auto' | IsolationMode;
  /** Default limits for every run (each run may override some). */
  limits?: Partial<SandboxLimits>;
  /** Seconds a worker may take to start (imports); default 180. */
  startupSeconds?: number;
  /** Where the workers' scratch folders go (default: the OS temp folder). */
  tmpDir?: string;
  /**
   * Under bubblewrap: the size of each worker's tmpfs for its run folders (`/sandbox`; default
   * 512 MiB), what one test can write in all, since a worker runs one test at a time. `/tmp` and
   * `/var/tmp` get a quarter of it each.
   */
  diskBytes?: number;
  /**
   * Under bubblewrap as root: how many files (inodes) the run folders' tmpfs holds (default
   * 16,384; `/tmp` and `/var/tmp` a quarter each).
   */
  diskFiles?: number;
  /**
   * Per-test cgroups for memory and processes (default true where the machine lets us; false:
   * per-process rlimits only, with a note saying so).
   */
  cgroups?: boolean;
  /**
   * @internal Tests only: make the worker behave as if an isolation step failed, to prove that
   * it then refuses to run tests.
   */
  simulate?: readonly SimulatedFailure[];
}

/** Isolation steps a test can pretend failed (SandboxOptions.simulate). */
export type SimulatedFailure =
  | 'uidDropFails'
  | 'uidDropFailsInChild'
  | 'unshareFails'
  /** Run tests without the seccomp filter (to prove the SysV clean-up behind it). */
  | 'noSeccomp';

export interface Ds1000Test {
  /** DS-1000's code_context: defines test_execution(solution) and maybe test_string(solution). */
  codeContext: string;
  /** The candidate solution code (inserted by the test program itself). */
  solution: string;
  limits?: Partial<SandboxLimits>;
}

export interface ScriptRun {
  /** A Python program, run as __main__. Passes if it ends without an exception. */
  code: string;
  limits?: Partial<SandboxLimits>;
}

interface Job {
  payload: Record<string, unknown>;
  limits: SandboxLimits;
  resolve: (o: SandboxOutcome) => void;
  started: number;
}

const STATUSES: readonly OutcomeStatus[] = [
  'pass',
  'fail',
  'syntax_error',
  'timeout',
  'memory',
  'crash',
  'tampered',
  'sandbox_error',
];

function sandboxError(message: string, seconds = 0): SandboxOutcome {
  return { status: 'sandbox_error', seconds, stderrTail: message, errorType: 'SandboxError' };
}

/** The exec venv's python if `rl4qe setup-exec` created it, else undefined. */
export function execVenvPython(): string | undefined {
  const p = path.join(cachePaths.execVenv(), 'bin', 'python');
  return existsSync(p) ? p : undefined;
}

/**
 * Removes scratch folders whose owning process is gone (a sandbox killed before dispose), in the
 * background: a killed run may have left many files, and removing them must not block the event
 * loop (the names carry the dead owner's pid, so they never collide with this sandbox's).
 */
function sweepStale(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^rl4qe-sbx-(\d+)-/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // still running
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    void rm(path.join(dir, n), { recursive: true, force: true }).catch(() => undefined);
  }
}

class Worker {
  proc: ChildProcessWithoutNullStreams | undefined;
  readonly workRoot: string;
  ready: Promise<void>;
  job: Job | undefined;
  private guard: NodeJS.Timeout | undefined;
  private nextId = 1;
  private expectId = 0;
  dead = false;
  startError: string | undefined;
  readyInfo: Record<string, unknown> | undefined;
  /** This worker's cgroup (host folders), when the machine gives one. */
  readonly cgroup: WorkerCgroup | undefined;
  /** Why this worker has no cgroup although the machine offers them. */
  readonly cgroupError: string | undefined;

  constructor(
    private readonly pool: Sandbox,
    readonly index: number,
    readonly uid: number | undefined,
  ) {
    // The owner's pid is in the name, so a later sandbox can remove what a killed one left.
    this.workRoot = mkdtempSync(path.join(pool.tmpDir, `rl4qe-sbx-${process.pid}-`));
    // Tests (another uid) may enter their own run-N folder but not list or write the root.
    chmodSync(this.workRoot, 0o711);
    if (pool.cgroups.version !== 'none') {
      try {
        const rand = Math.random().toString(36).slice(2, 8);
        this.cgroup = createWorkerCgroup(pool.cgroups, `${process.pid}-${index}-${rand}`);
      } catch (e) {
        this.cgroupError = `this worker's cgroup could not be made: ${(e as Error).message}`;
      }
    }
    this.ready = this.start();
  }

  private start(): Promise<void> {
    const pool = this.pool;
    const iso = pool.isolation;
    const bwrap = iso.mode === 'bwrap';
    const cg = this.cgroup;
    // Under bubblewrap the worker's group folders are bound at fixed paths inside.
    const cgInside = cg && {
      version: cg.version,
      memory: bwrap ? CGROUP_MOUNT.memory : cg.memory,
      pids: bwrap ? (cg.version === 'v2' ? CGROUP_MOUNT.memory : CGROUP_MOUNT.pids) : cg.pids,
    };
    const binds: [string, string][] = !cg
      ? []
      : cg.version === 'v2'
        ? [[cg.memory, CGROUP_MOUNT.memory]]
        : [
            [cg.memory, CGROUP_MOUNT.memory],
            [cg.pids, CGROUP_MOUNT.pids],
          ];
    // Sized tmpfs with an inode count, mounted by the worker itself (bubblewrap cannot set
    // nr_inodes); only where it runs as root inside bubblewrap, so it has CAP_SYS_ADMIN to do it.
    const quarter = (n: number, min: number): number => Math.max(min, Math.floor(n / 4));
    const mounts =
      bwrap && iso.uidDrop
        ? [
            { path: '/sandbox', size: pool.diskBytes, inodes: pool.diskFiles, mode: '0711' },
            ...['/tmp', '/var/tmp'].map((p) => ({
              path: p,
              size: quarter(pool.diskBytes, 8 * 2 ** 20),
              inodes: quarter(pool.diskFiles, 1024),
              mode: '1777',
            })),
          ]
        : [];
    const args = JSON.stringify({
      workRoot: bwrap ? '/sandbox' : this.workRoot,
      uid: this.uid ?? null,
      preload: pool.preload,
      unshareNet: iso.mode === 'none' && iso.network === 'unshare',
      simulate: pool.simulate,
      cgroup: cgInside ?? null,
      mounts,
      privateIpc: bwrap,
    });
    const env: Record<string, string> = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: iso.mode === 'bwrap' ? '/tmp' : this.workRoot,
      XDG_CACHE_HOME: iso.mode === 'bwrap' ? '/tmp' : this.workRoot,
      MPLBACKEND: 'Agg',
      PYTHONDONTWRITEBYTECODE: '1',
    };
    let cmd: string;
    let argv: string[];
    const layout = pythonLayout(pool.python);
    if (layout instanceof Error) return Promise.reject(layout);
    if (iso.mode === 'bwrap') {
      cmd = 'bwrap';
      argv = [
        ...bwrapArgs({
          python: layout,
          workerScript: workerScriptPath(),
          workRoot: this.workRoot,
          root: iso.uidDrop,
          diskBytes: pool.diskBytes,
          binds,
          mountCapability: mounts.length > 0,
        }),
        layout.executable,
        '-u',
        '-I',
        '/opt/rl4qe/worker.py',
        args,
      ];
    } else {
      cmd = layout.executable;
      argv = ['-u', '-I', workerScriptPath(), args];
    }
    const proc = spawn(cmd, argv, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.proc = proc;
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-4000);
    });
    proc.stdin.on('error', () => {});
    const rl = createInterface({ input: proc.stdout });
    return new Promise<void>((resolve, reject) => {
      let isReady = false;
      const startTimer = setTimeout(() => {
        if (!isReady) {
          this.kill();
          reject(new Error(`worker did not start within ${pool.startupSeconds}s: ${stderr}`));
        }
      }, pool.startupSeconds * 1000);
      rl.on('line', (line) => {
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (!isReady) {
          if (msg.ready === true) {
            isReady = true;
            clearTimeout(startTimer);
            this.readyInfo = msg;
            resolve();
          }
          return;
        }
        this.onReply(msg);
      });
      proc.on('error', (e) => {
        clearTimeout(startTimer);
        this.dead = true;
        if (!isReady) reject(e);
        this.failJob(`worker process error: ${e.message}`);
      });
      proc.on('exit', (code, signal) => {
        clearTimeout(startTimer);
        this.dead = true;
        const why = `worker exited (code ${code}, signal ${signal}): ${stderr.slice(-2000)}`;
        if (!isReady) reject(new Error(why));
        this.failJob(why);
        pool.onWorkerExit(this);
      });
    });
  }

  send(job: Job): void {
    this.job = job;
    const id = this.nextId++;
    this.expectId = id;
    const line = JSON.stringify({ id, ...job.payload, limits: job.limits }) + '\n';
    // The worker enforces the wall limit itself; this guard only catches a stuck worker.
    this.guard = setTimeout(
      () => {
        this.failJob(`worker did not answer within ${job.limits.wallSeconds + 20}s; restarted`);
        this.kill();
      },
      (job.limits.wallSeconds + 20) * 1000,
    );
    this.proc?.stdin.write(line);
  }

  private onReply(msg: Record<string, unknown>): void {
    if (msg.id !== this.expectId || !this.job) return;
    const job = this.job;
    this.job = undefined;
    if (this.guard) clearTimeout(this.guard);
    const status = STATUSES.includes(msg.status as OutcomeStatus)
      ? (msg.status as OutcomeStatus)
      : 'sandbox_error';
    const out: SandboxOutcome = {
      status,
      seconds: typeof msg.seconds === 'number' ? msg.seconds : 0,
      stderrTail: typeof msg.stderrTail === 'string' ? msg.stderrTail : '',
    };
    if (typeof msg.errorType === 'string') out.errorType = msg.errorType;
    const r = msg.resources as Record<string, unknown> | undefined;
    if (r && (r.cgroup === 'v1' || r.cgroup === 'v2')) {
      const res: TestResources = { cgroup: r.cgroup };
      if (typeof r.memoryMaxBytes === 'number') res.memoryMaxBytes = r.memoryMaxBytes;
      if (typeof r.peakMemoryBytes === 'number') res.peakMemoryBytes = r.peakMemoryBytes;
      if (typeof r.pidsMax === 'string') res.pidsMax = r.pidsMax;
      if (typeof r.oomKills === 'number') res.oomKills = r.oomKills;
      if (typeof r.pidsRefused === 'number') res.pidsRefused = r.pidsRefused;
      out.resources = res;
    }
    job.resolve(out);
    this.pool.onWorkerIdle(this);
  }

  failJob(message: string): void {
    if (this.guard) clearTimeout(this.guard);
    const job = this.job;
    this.job = undefined;
    if (job) job.resolve(sandboxError(message, (performance.now() - job.started) / 1000));
  }

  kill(): void {
    this.dead = true;
    const p = this.proc;
    if (p?.pid !== undefined && p.exitCode === null && p.signalCode === null) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        try {
          p.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  }

  /** Ends the worker and removes its scratch folder. */
  async close(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.stdin.end();
      const t = setTimeout(() => this.kill(), 2000);
      await exited;
      clearTimeout(t);
    }
    this.dead = true;
    await Promise.all([
      rm(this.workRoot, { recursive: true, force: true }).catch(() => undefined),
      this.removeCgroup(),
    ]);
  }

  /** Removes this worker's cgroup folders (killing what a killed test left in them). */
  async removeCgroup(): Promise<void> {
    const cg = this.cgroup;
    if (!cg) return;
    await removeCgroupTree(cg.memory);
    if (cg.pids !== cg.memory) await removeCgroupTree(cg.pids);
  }
}

/** Where a worker's cgroup folders appear inside bubblewrap. */
const CGROUP_MOUNT = { memory: '/opt/rl4qe/cgroup/memory', pids: '/opt/rl4qe/cgroup/pids' };

/**
 * A pool of warm Python workers running untrusted code under limits.
 *
 *   await using sb = new Sandbox();
 *   const o = await sb.runDs1000({ codeContext, solution });   // o.status === 'pass'
 */
export class Sandbox {
  readonly concurrency: number;
  readonly python: string;
  readonly preload: boolean;
  readonly isolation: IsolationInfo;
  readonly limits: SandboxLimits;
  readonly startupSeconds: number;
  readonly tmpDir: string;
  readonly diskBytes: number;
  readonly diskFiles: number;
  /** What the machine gives for per-test cgroups ('none': per-process rlimits only). */
  readonly cgroups: CgroupSupport;
  /** @internal */
  readonly simulate: readonly SimulatedFailure[];
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: Job[] = [];
  private disposed = false;
  private readonly uidBase: number | undefined;
  private startFailure: string | undefined;

  constructor(opts: SandboxOptions = {}) {
    this.concurrency = Math.max(1, opts.concurrency ?? os.availableParallelism());
    this.python = opts.python ?? execVenvPython() ?? 'python3';
    this.preload = opts.preload ?? true;
    this.isolation = detectIsolation(opts.isolation ?? 'auto');
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.startupSeconds = opts.startupSeconds ?? 180;
    this.tmpDir = opts.tmpDir ?? os.tmpdir();
    this.diskBytes = opts.diskBytes ?? 512 * 2 ** 20;
    this.diskFiles = opts.diskFiles ?? 16_384;
    this.simulate = opts.simulate ?? [];
    this.cgroups =
      opts.cgroups === false
        ? { version: 'none', reason: 'cgroups turned off (SandboxOptions.cgroups: false)' }
        : cgroupSupport();
    if (this.cgroups.version !== 'none') void sweepStaleCgroups(this.cgroups);
    // A random block of high uids, so two pools on one machine never share (and never kill) a uid.
    this.uidBase = this.isolation.uidDrop
      ? 1_900_000_000 + Math.floor(Math.random() * 1_000_000) * 64
      : undefined;
    sweepStale(this.tmpDir);
    for (let i = 0; i < this.concurrency; i++) this.spawnWorker(i);
  }

  private spawnWorker(index: number): void {
    if (this.disposed) return;
    let w: Worker;
    try {
      w = new Worker(this, index, this.uidBase === undefined ? undefined : this.uidBase + index);
    } catch (e) {
      this.startFailure = `cannot create a worker: ${(e as Error).message}`;
      this.drainWithError();
      return;
    }
    this.workers[index] = w;
    w.ready.then(
      () => this.onWorkerIdle(w),
      (e: unknown) => {
        this.startFailure =
          `sandbox worker failed to start (${this.python}): ${(e as Error).message}` +
          (execVenvPython() ? '' : '\nHINT: run `rl4qe setup-exec` to create the exec venv');
        log.warn('worker failed to start', { index, error: (e as Error).message.slice(0, 500) });
        w.kill();
        this.drainWithError();
      },
    );
  }

  private drainWithError(): void {
    // Fail queued jobs only when no worker can ever take them.
    if (this.workers.some((w) => w && !w.dead)) return;
    const msg = this.startFailure ?? 'no sandbox worker';
    for (const j of this.queue.splice(0)) j.resolve(sandboxError(msg));
  }

  /** @internal */
  onWorkerIdle(w: Worker): void {
    if (this.disposed || w.dead) return;
    const job = this.queue.shift();
    if (job) w.send(job);
    else if (!this.idle.includes(w)) this.idle.push(w);
  }

  /** @internal */
  onWorkerExit(w: Worker): void {
    this.idle = this.idle.filter((x) => x !== w);
    if (this.disposed) return;
    // A worker that died after it was ready is replaced (a fresh scratch folder, the same uid).
    if (w.readyInfo !== undefined && this.workers[w.index] === w) {
      void rm(w.workRoot, { recursive: true, force: true }).catch(() => undefined);
      void w.removeCgroup();
      this.spawnWorker(w.index);
    } else {
      this.drainWithError();
    }
  }

  /** Host folders of the workers' cgroups (for tests: each is empty after a test, gone after dispose). */
  get cgroupDirs(): string[] {
    const out = new Set<string>();
    for (const w of this.workers) {
      if (w?.cgroup) {
        out.add(w.cgroup.memory);
        out.add(w.cgroup.pids);
      }
    }
    return [...out];
  }

  /** The unprivileged uids tests run as (empty when not root): every process of theirs is the sandbox's. */
  get uids(): number[] {
    if (this.uidBase === undefined) return [];
    const base = this.uidBase;
    // A worker that found its uid unusable reports uid null (see worker.py).
    return Array.from({ length: this.concurrency }, (_, i) => base + i).filter((uid, i) => {
      const info = this.workers[i]?.readyInfo;
      return info === undefined || info.uid === uid;
    });
  }

  /** What the workers reported about their isolation (e.g. a disabled per-test uid). */
  get notes(): string[] {
    const out = new Set<string>();
    // Never silent: without per-test groups the limits are per process, and that is said here.
    if (this.cgroups.version === 'none')
      out.add(`cgroups: none, limits are per process only (${this.cgroups.reason})`);
    for (const w of this.workers) if (w?.cgroupError) out.add(w.cgroupError);
    for (const w of this.workers) {
      const n = w?.readyInfo?.notes;
      if (Array.isArray(n)) for (const x of n) out.add(String(x));
    }
    return [...out];
  }

  /** Resolves when every worker is ready; returns what the first worker reported. */
  async ready(): Promise<{ ok: boolean; info?: Record<string, unknown>; error?: string }> {
    await Promise.allSettled(this.workers.map((w) => w.ready));
    const w = this.workers.find((x) => x?.readyInfo !== undefined);
    return w
      ? { ok: true, info: w.readyInfo }
      : { ok: false, error: this.startFailure ?? 'no worker' };
  }

  private submit(payload: Record<string, unknown>, limits?: Partial<SandboxLimits>) {
    return new Promise<SandboxOutcome>((resolve) => {
      if (this.disposed) {
        resolve(sandboxError('sandbox disposed'));
        return;
      }
      const job: Job = {
        payload,
        limits: { ...this.limits, ...limits },
        resolve,
        started: performance.now(),
      };
      const w = this.idle.shift();
      if (w && !w.dead) w.send(job);
      else {
        this.queue.push(job);
        this.drainWithError();
      }
    });
  }

  /** Runs one DS-1000 test: exec(code_context), test_execution(solution), test_string(solution). */
  runDs1000(t: Ds1000Test): Promise<SandboxOutcome> {
    return this.submit(
      {
        mode: 'ds1000',
        context: t.codeContext,
        solution: t.solution,
        // Plotting problems inspect pyplot's state: the solver hands its figures back too.
        figures: t.codeContext.includes('matplotlib'),
      },
      t.limits,
    ).catch((e: unknown) => sandboxError(String(e)));
  }

  /** Runs a Python program; passes when it ends without an exception. */
  runScript(r: ScriptRun): Promise<SandboxOutcome> {
    return this.submit({ mode: 'script', code: r.code }, r.limits).catch((e: unknown) =>
      sandboxError(String(e)),
    );
  }

  /** Stops every worker and removes every scratch folder. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const j of this.queue.splice(0)) j.resolve(sandboxError('sandbox disposed'));
    await Promise.allSettled(this.workers.filter(Boolean).map((w) => w.close()));
    for (const w of this.workers) w?.failJob('sandbox disposed');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
