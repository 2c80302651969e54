// What the sandbox's workers actually got on this machine (issue 11: `rl4qe doctor` reports that,
// not only what detectIsolation() expects): one worker without preloading is started, a probe test
// reports from inside what it runs with (uid, seccomp, capabilities, network namespace, cgroup),
// the worker reports the cgroup limits the kernel holds for that test, and the worker is disposed.
import { readlinkSync } from 'node:fs';
import { Sandbox, type SandboxOptions } from './pool.js';

export interface SandboxProbe {
  /** A probe test ran (false: the worker refused, e.g. a uid drop or unshare failed). */
  runs: boolean;
  rows: [string, string][];
  /** What the probe test saw from inside (absent when it did not run). */
  seen?: ProbeFacts;
}

/** Facts the probe test reads about itself. */
export interface ProbeFacts {
  uid: number;
  /** /proc/self/status Seccomp: 2 = filter mode. */
  seccomp: string;
  noNewPrivs: string;
  capEff: string;
  /** The network namespace link, e.g. net:[4026532281]. */
  netns: string;
  /** Network interfaces it can see. */
  interfaces: string[];
  /** Its /proc/self/cgroup lines. */
  cgroup: string[];
}

const PROBE = [
  'import json, os',
  "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)",
  "nets = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]",
  'print(json.dumps({',
  "    'uid': os.getuid(), 'seccomp': st.get('Seccomp', '').strip(),",
  "    'noNewPrivs': st.get('NoNewPrivs', '').strip(), 'capEff': st.get('CapEff', '').strip(),",
  "    'netns': os.readlink('/proc/self/ns/net'), 'interfaces': nets,",
  "    'cgroup': open('/proc/self/cgroup').read().split()}))",
].join('\n');

function ownNetns(): string {
  try {
    return readlinkSync('/proc/self/ns/net');
  } catch {
    return 'unknown';
  }
}

const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;

/** Starts one worker, runs a probe test, and reports what the test got. Never throws. */
export async function probeSandbox(
  opts: Pick<SandboxOptions, 'python' | 'isolation' | 'cgroups'> = {},
): Promise<SandboxProbe> {
  const sb = new Sandbox({ ...opts, concurrency: 1, preload: false, startupSeconds: 60 });
  try {
    const ready = await sb.ready();
    if (!ready.ok)
      return { runs: false, rows: [['worker', `does not start: ${ready.error ?? ''}`]] };
    const info = ready.info ?? {};
    const o = await sb.runScript({ code: PROBE, limits: { wallSeconds: 20 } });
    const notes = sb.notes.length > 0 ? sb.notes.join('; ') : 'none';
    if (o.status !== 'pass') {
      return {
        runs: false,
        rows: [
          ['worker isolation', `${sb.isolation.mode} (${sb.isolation.reason})`],
          ['probe test', `${o.status} ${o.errorType ?? ''}: ${o.stderrTail.slice(-300)}`],
          ['worker notes', notes],
        ],
      };
    }
    const seen = JSON.parse(o.stderrTail.trim().split('\n').pop() ?? '{}') as ProbeFacts;
    const expectUid = typeof info.uid === 'number' ? info.uid : undefined;
    const myUid = typeof process.getuid === 'function' ? process.getuid() : -1;
    const others = seen.interfaces.filter((i) => i !== 'lo');
    const ours = ownNetns();
    const res = o.resources;
    const memCg = seen.cgroup.find(
      (l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l) || l.startsWith('0::'),
    );
    return {
      runs: true,
      seen,
      rows: [
        ['worker isolation', `${sb.isolation.mode} (${sb.isolation.reason})`],
        [
          'test uid',
          expectUid !== undefined && seen.uid === expectUid
            ? `${seen.uid} (its own, dropped from root)`
            : seen.uid === myUid
              ? `${seen.uid}: the same as ours (no per-test uid)`
              : `${seen.uid} (expected ${expectUid ?? 'ours'})`,
        ],
        [
          'test network',
          seen.netns !== ours && others.length === 0
            ? `own namespace (${seen.netns}, ours ${ours}; interfaces: ${seen.interfaces.join(', ') || 'none'})`
            : `SHARED with the host or not isolated (${seen.netns}, ours ${ours}; interfaces: ${seen.interfaces.join(', ')})`,
        ],
        [
          'test seccomp',
          seen.seccomp === '2'
            ? `filter installed (no_new_privs ${seen.noNewPrivs === '1' ? 'on' : 'OFF'})`
            : `none (Seccomp: ${seen.seccomp})`,
        ],
        ['test capabilities', /^0+$/.test(seen.capEff) ? 'none' : `effective ${seen.capEff}`],
        [
          'test cgroup',
          res
            ? `${res.cgroup}: memory ${res.memoryMaxBytes !== undefined ? mib(res.memoryMaxBytes) : 'unlimited'}, ` +
              `pids.max ${res.pidsMax ?? '?'} for all the test's processes together (probe in ${memCg ?? '?'})`
            : `none: limits per process only (RLIMIT_AS, RLIMIT_NPROC) — ${sb.cgroups.reason}`,
        ],
        [
          'test scratch space',
          info.filesBounded === true
            ? `tmpfs of ${mib(sb.diskBytes)} and ${sb.diskFiles} files (/tmp, /var/tmp a quarter each)`
            : sb.isolation.mode === 'bwrap'
              ? `tmpfs of ${mib(sb.diskBytes)}; file count not bounded`
              : 'the host disk (RLIMIT_FSIZE per file only)',
        ],
        ['worker notes', notes],
      ],
    };
  } catch (e) {
    return { runs: false, rows: [['worker', `probe failed: ${(e as Error).message}`]] };
  } finally {
    await sb.dispose();
  }
}

/** The `rl4qe doctor` section: what a started worker's test actually got. */
export async function sandboxDoctorSection(): Promise<{ title: string; rows: [string, string][] }> {
  const p = await probeSandbox();
  return { title: 'sandbox workers (probed)', rows: p.rows };
}
