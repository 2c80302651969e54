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
}
