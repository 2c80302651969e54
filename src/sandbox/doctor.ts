// What the sandbox's workers actually got on this machine (issue 11: `rl4qe doctor` reports that,
// not only what detectIsolation() expects): one worker without preloading is started, asked to run
// a probe, and disposed.
import { Sandbox, type SandboxOptions } from './pool.js';

export interface SandboxProbe {
  /** A probe test ran (false: the worker refused, e.g. a uid drop or unshare failed). */
  runs: boolean;
  rows: [string, string][];
}

/** Starts one worker, runs a probe test, and reports what the worker got. Never throws. */
export async function probeSandbox(
  opts: Pick<SandboxOptions, 'python' | 'isolation'> = {},
): Promise<SandboxProbe> {
  const sb = new Sandbox({ ...opts, concurrency: 1, preload: false, startupSeconds: 60 });
  try {
    const ready = await sb.ready();
    if (!ready.ok)
      return { runs: false, rows: [['worker', `does not start: ${ready.error ?? ''}`]] };
    const info = ready.info ?? {};
    const o = await sb.runScript({
      code: "st = open('/proc/self/status').read()\nimport os\nprint(os.getuid(), 'Seccomp:\\t2' in st)",
      limits: { wallSeconds: 20 },
    });
    const runs = o.status === 'pass';
    const seen = runs ? (o.stderrTail.trim().split('\n').pop() ?? '') : '';
    return {
      runs,
      rows: [
        ['worker isolation', sb.isolation.mode],
        ['worker per-test uid', typeof info.uid === 'number' ? String(info.uid) : 'none'],
        ['worker seccomp', info.seccomp === true ? 'filter installed' : 'none'],
        [
          'probe test',
          runs ? `ran (uid, seccomp: ${seen})` : `${o.status}: ${o.stderrTail.slice(-300)}`,
        ],
        ['worker notes', sb.notes.length > 0 ? sb.notes.join('; ') : 'none'],
      ],
    };
  } catch (e) {
    return { runs: false, rows: [['worker', `probe failed: ${(e as Error).message}`]] };
  } finally {
    await sb.dispose();
  }
}
