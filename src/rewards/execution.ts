// Execution reward: run the task's tests on the generated code and map the outcome to a number.
// pass = 1, fail = 0, syntax_error = −p_syntax, timeout = −p_timeout, memory / crash configurable;
// sandbox_error (the harness itself failed) is null by default: it says nothing about the code.
// The runner is injected, so rewards do not depend on the sandbox implementation.
import type { OutcomeStatus, SandboxOutcome } from '../sandbox/outcome.js';
import { buildTestProgram, type CodeTask } from '../data/tasks.js';
import type { RewardFn, RewardInfo, RewardSample } from './types.js';
import { ConfigError } from '../util/errors.js';

export type SandboxRunner = (task: CodeTask, code: string) => Promise<SandboxOutcome>;

export interface ExecutionRewardOptions {
  runner: SandboxRunner;
  /** Penalty for a syntax error: reward −pSyntax (default 0.5). */
  pSyntax?: number;
  /** Penalty for a timeout: reward −pTimeout (default 0.5). */
  pTimeout?: number;
  /** Rewards for the other statuses (defaults: memory −pTimeout, crash 0, sandbox_error null). */
  other?: Partial<Record<'memory' | 'crash' | 'sandbox_error', number | null>>;
  /** Runs at most this many tests at once (default 4; the sandbox pool queues beyond its size). */
  concurrency?: number;
  name?: string;
}

/** The status → reward table an ExecutionRewardOptions describes. */
export function outcomeRewards(
  o: Omit<ExecutionRewardOptions, 'runner'>,
): Record<OutcomeStatus, number | null> {
  const pSyntax = o.pSyntax ?? 0.5;
  const pTimeout = o.pTimeout ?? 0.5;
  for (const [k, v] of [
    ['pSyntax', pSyntax],
    ['pTimeout', pTimeout],
  ] as const) {
    if (!Number.isFinite(v))
      throw new ConfigError(`${k} must be a finite number`, { where: k, found: String(v) });
  }
  return {
    pass: 1,
    fail: 0,
    syntax_error: -pSyntax,
    timeout: -pTimeout,
    memory: o.other?.memory !== undefined ? o.other.memory : -pTimeout,
    crash: o.other?.crash !== undefined ? o.other.crash : 0,
    // Reaching into the harness is a failure like any other, never a harness error (null).
    tampered: 0,
    sandbox_error: o.other?.sandbox_error !== undefined ? o.other.sandbox_error : null,
  };
}

export function executionReward(opts: ExecutionRewardOptions): RewardFn {
  const table = outcomeRewards(opts);
  const limit = Math.max(1, opts.concurrency ?? 4);
  return {
    name: opts.name ?? 'exec',
    async score(batch: readonly RewardSample[]) {
      const values: (number | null)[] = new Array<number | null>(batch.length).fill(null);
      const info: (RewardInfo | undefined)[] = new Array<RewardInfo | undefined>(batch.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        for (;;) {
          const i = next++;
          if (i >= batch.length) return;
          const s = batch[i]!;
          if (s.generationFailed) {
            info[i] = { status: 'generation_failed' };
            continue;
          }
          if (!s.task?.tests) {
            info[i] = { status: 'no_tests' };
            continue;
          }
          let o: SandboxOutcome;
          try {
            o = await opts.runner(s.task, s.code);
          } catch (e) {
            // The sandbox contract is never to throw; a runner that does is a harness failure.
            o = {
              status: 'sandbox_error',
              seconds: 0,
              stderrTail: String((e as Error).message ?? e),
            };
          }
          values[i] = table[o.status];
          info[i] = {
            status: o.status,
            seconds: o.seconds,
            ...(o.errorType !== undefined ? { errorType: o.errorType } : {}),
            // A harness failure's reason (the code's own stderr is not kept: it can be long).
            ...(o.status === 'sandbox_error' && o.stderrTail
              ? { detail: o.stderrTail.slice(-300) }
              : {}),
            ...(o.retriedAfter !== undefined ? { retriedAfter: o.retriedAfter } : {}),
          };
        }
      };
      await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, worker));
      return { values, info };
    },
  };
}

/**
 * The two entry points of the sandbox pool (src/sandbox/pool.ts `Sandbox`), structurally, so the
 * execution reward does not import the implementation.
 */
export interface SandboxLike {
  runDs1000(t: { codeContext: string; solution: string }): Promise<SandboxOutcome>;
  runScript(r: { code: string }): Promise<SandboxOutcome>;
}

export interface SandboxRunnerOptions {
  /**
   * Re-runs of a test whose outcome was sandbox_error (default 1). Such an outcome says nothing
   * about the code: on a loaded machine a worker can miss its own deadline ("did not answer
   * within 50s; restarted") and the test never ran. The re-run goes to a restarted worker; its
   * outcome is the one used, with the first error kept in `retriedAfter`. 0: no re-run.
   */
  sandboxRetries?: number;
}

/**
 * A runner over a sandbox pool: DS-1000 tasks run through runDs1000 (code_context, then
 * test_execution / test_string on the solution string); script protocols (HumanEval, MBPP,
 * custom) run the program buildTestProgram() makes.
 */
export function runnerFromSandbox(sb: SandboxLike, opts: SandboxRunnerOptions = {}): SandboxRunner {
  const retries = Math.max(0, Math.floor(opts.sandboxRetries ?? 1));
  const once = (task: CodeTask, code: string): Promise<SandboxOutcome> => {
    const t = task.tests;
    if (!t) {
      return Promise.resolve({
        status: 'sandbox_error',
        seconds: 0,
        stderrTail: 'task has no tests',
      });
    }
    if (t.kind === 'ds1000') return sb.runDs1000({ codeContext: t.codeContext, solution: code });
    return sb.runScript({ code: buildTestProgram(t, code) });
  };
  return async (task, code) => {
    let o = await once(task, code);
    const first = o;
    for (let i = 0; i < retries && o.status === 'sandbox_error' && task.tests; i++) {
      o = await once(task, code);
    }
    return o === first
      ? o
      : { ...o, retriedAfter: (first.stderrTail || 'sandbox_error').slice(-300) };
  };
}
