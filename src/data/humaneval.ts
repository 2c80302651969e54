// HumanEval (Chen et al. 2021), openai/human-eval data/HumanEval.jsonl.gz. Test protocol as in
// human-eval's execution.py: prompt + completion + "\n" + test + "\n" + f"check({entry_point})".
import { z } from 'zod';
import type { InvalidRowPolicy } from './jsonl.js';
import { benchmarkFiles } from './hub.js';
import { readDataRows } from './rows.js';
import type { CodeTask, TestProtocol } from './tasks.js';

export interface HumanEvalProblem {
  taskId: string;
  /** Function signature and docstring; the model completes the body. */
  prompt: string;
  entryPoint: string;
  canonicalSolution: string;
  /** Defines check(candidate). */
  test: string;
}

export const humanEvalRowSchema = z.object({
  task_id: z.string().min(1),
  prompt: z.string(),
  entry_point: z.string().min(1),
  canonical_solution: z.string(),
  test: z.string(),
});

export const HUMANEVAL_FILE = 'HumanEval.jsonl.gz';

export async function loadHumanEval(
  opts: { path?: string; onInvalid?: InvalidRowPolicy } = {},
): Promise<HumanEvalProblem[]> {
  const files = await benchmarkFiles(opts.path, 'humaneval', HUMANEVAL_FILE);
  const rows = await readDataRows(files, humanEvalRowSchema, {
    what: 'HumanEval row',
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  });
  return rows.map(({ value: r }) => ({
    taskId: r.task_id,
    prompt: r.prompt,
    entryPoint: r.entry_point,
    canonicalSolution: r.canonical_solution,
    test: r.test,
  }));
}

/** The protocol: the completion is a function body appended to the prompt. */
export function humanEvalProtocol(p: HumanEvalProblem): TestProtocol {
  return { kind: 'script', before: p.prompt, after: `\n${p.test}\ncheck(${p.entryPoint})\n` };
}

/** HumanEval problem → CodeTask (the reference is the prompt's function with its solution). */
export function humanEvalTask(p: HumanEvalProblem): CodeTask {
  return {
    id: p.taskId,
    source: 'humaneval',
    query: p.prompt,
    reference: p.canonicalSolution,
    tests: humanEvalProtocol(p),
    stratum: 'humaneval',
    group: p.taskId,
  };
}
