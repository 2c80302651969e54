// The structured result of running untrusted code. The sandbox never throws: every way a run can
// end is one of these statuses. Rewards map statuses to numbers (src/rewards/execution.ts).

// `tampered`: the code reached into the harness (frames, heap, ctypes) where that cannot be
// prevented outright (script mode); scored as a failure, never as null.
export type OutcomeStatus =
  'pass' | 'fail' | 'syntax_error' | 'timeout' | 'memory' | 'crash' | 'tampered' | 'sandbox_error';

export interface SandboxOutcome {
  status: OutcomeStatus;
  /** Wall-clock seconds the run took. */
  seconds: number;
  /** The last few KiB of stderr (traceback), for reports and debugging. */
  stderrTail: string;
  /** Exception type name when the test raised (AssertionError, KeyError, ...). */
  errorType?: string;
  /** What the test's cgroup held and counted (absent without per-test cgroups). */
  resources?: TestResources;
  /**
   * Set when this outcome is a re-run after a sandbox_error (the harness failed, the code was
   * never judged): that first error's reason. Written by the execution reward's runner.
   */
  retriedAfter?: string;
}

/** Read back from the test's cgroup after it ended (what the kernel enforced, not what was asked). */
export interface TestResources {
  cgroup: 'v1' | 'v2';
  /** The memory limit of all the test's processes together. */
  memoryMaxBytes?: number;
  /** The most memory they held at once (v1 max_usage_in_bytes, v2 memory.peak where present). */
  peakMemoryBytes?: number;
  /** pids.max as the kernel reports it (a number, or "max"). */
  pidsMax?: string;
  /** Processes the kernel's OOM killer ended for the test's memory limit. */
  oomKills?: number;
  /** Forks and clones refused at pids.max. */
  pidsRefused?: number;
}
