// One task shape for every benchmark, so splits, prompts, rewards and evaluation do not care
// where a problem came from. Each task carries its test protocol as plain data; the sandbox
// turns (protocol, code) into a Python program with buildTestProgram().
import type { Ds1000Problem } from './ds1000.js';

/**
 * How a candidate solution is tested, as data.
 * - `ds1000`: run `codeContext`, then `test_execution(solution)` and, where defined,
 *   `test_string(solution)`; pass if neither raises (DS-1000's own definition). The solution is
 *   passed as a string, so buildTestProgram() embeds it as a Python string literal.
 * - `script`: the program is `before + code + after`; pass if it exits with status 0.
 *   HumanEval: before = prompt, after = "\n" + test + "\n" + "check(entry_point)\n".
 *   MBPP: before = "", after = "\n" + test_setup_code + "\n" + test_list asserts.
 */
export type TestProtocol =
  { kind: 'ds1000'; codeContext: string } | { kind: 'script'; before: string; after: string };

export type TaskSource = 'ds1000' | 'humaneval' | 'mbpp' | 'custom';

export interface CodeTask {
  /** Unique within its source: "ds1000/17", "HumanEval/3", "mbpp/11", or the custom id. */
  id: string;
  source: TaskSource;
  /** The query the refiner rewrites (for DS-1000 the full prompt with its code scaffold). */
  query: string;
  /** The reference solution that text rewards compare against. */
  reference: string;
  /** How to test a solution; absent when the task has no tests (text rewards only). */
  tests?: TestProtocol;
  /** Stratum for splits (DS-1000 library; custom `library`; otherwise the source). */
  stratum: string;
  /**
   * Family key for leak-free splits: tasks with the same group always land on the same side
   * (DS-1000: the root origin problem of a perturbation family).
   */
  group: string;
}

/** A Python string literal holding `s` exactly (JSON escapes are valid Python escapes). */
export function pythonStringLiteral(s: string): string {
  // JSON.stringify escapes ", \, control characters and lone surrogates; U+2028/2029 are legal
  // inside Python strings. Python reads "\uXXXX" like JSON does.
  return JSON.stringify(s);
}

/**
 * The complete Python program that tests `code` under `protocol`; exit status 0 means pass.
 * This is the one definition of each benchmark's protocol; the sandbox runs exactly this text
 * (its warm workers may run the same steps without building the string).
 */
export function buildTestProgram(protocol: TestProtocol, code: string): string {
  if (protocol.kind === 'script') return protocol.before + code + protocol.after;
  return (
    protocol.codeContext +
    '\n\n' +
    `__rl4qe_solution = ${pythonStringLiteral(code)}\n` +
    'test_execution(__rl4qe_solution)\n' +
    "if 'test_string' in globals():\n" +
    '    test_string(__rl4qe_solution)\n'
  );
}

/** DS-1000 problem → CodeTask (query = the prompt, tests = its code_context). */
export function ds1000Task(p: Ds1000Problem, familyRoot?: number): CodeTask {
  const m = p.metadata;
  return {
    id: `ds1000/${m.problemId}`,
    source: 'ds1000',
    query: p.prompt,
    reference: p.referenceCode,
    tests: { kind: 'ds1000', codeContext: p.codeContext },
    stratum: m.library,
    group: `${m.library}/${familyRoot ?? m.perturbationOriginId}`,
  };
}
