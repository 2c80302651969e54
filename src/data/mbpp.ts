// MBPP full (Austin et al. 2021), google-research mbpp/mbpp.jsonl. Test protocol: the solution
// code, then test_setup_code, then the test_list asserts, one per line; pass = exit status 0.
// Setup comes AFTER the code because both tasks that have setup code (367, 927) build objects of
// a class that the solution defines (Node); run before the code it raises NameError.
import { z } from 'zod';
import type { InvalidRowPolicy } from './jsonl.js';
import { benchmarkFiles } from './hub.js';
import { readDataRows } from './rows.js';
import type { CodeTask, TestProtocol } from './tasks.js';

export type MbppSplit = 'prompt' | 'test' | 'validation' | 'train';

export interface MbppProblem {
  taskId: number;
  /** The natural-language description. */
  text: string;
  code: string;
  testSetupCode: string;
  testList: string[];
  challengeTestList: string[];
  /** The official split by task id: 1–10 prompt, 11–510 test, 511–600 validation, 601+ train. */
  split: MbppSplit;
}

export const mbppRowSchema = z.object({
  task_id: z.number().int().positive(),
  text: z.string(),
  code: z.string(),
  test_setup_code: z.string(),
  test_list: z.array(z.string()),
  challenge_test_list: z.array(z.string()).default([]),
});

export const MBPP_FILE = 'mbpp.jsonl.gz';

export function mbppSplitOf(taskId: number): MbppSplit {
  if (taskId <= 10) return 'prompt';
  if (taskId <= 510) return 'test';
  if (taskId <= 600) return 'validation';
  return 'train';
}

export async function loadMbpp(
  opts: { path?: string; onInvalid?: InvalidRowPolicy } = {},
): Promise<MbppProblem[]> {
  const files = await benchmarkFiles(opts.path, 'mbpp', MBPP_FILE);
  const rows = await readDataRows(files, mbppRowSchema, {
    what: 'MBPP row',
    ...(opts.onInvalid ? { onInvalid: opts.onInvalid } : {}),
  });
  const out = rows.map(({ value: r }) => ({
    taskId: r.task_id,
    text: r.text,
    code: r.code,
    testSetupCode: r.test_setup_code,
    testList: r.test_list,
    challengeTestList: r.challenge_test_list,
    split: mbppSplitOf(r.task_id),
  }));
  // The Hub keeps one parquet file per split: back to task-id order, the order of mbpp.jsonl (so
  // a seeded split of either source is the same).
  if (files.length > 1) out.sort((a, b) => a.taskId - b.taskId);
  return out;
}

/** The protocol; `challenge` adds the challenge_test_list asserts. */
export function mbppProtocol(p: MbppProblem, opts: { challenge?: boolean } = {}): TestProtocol {
  const asserts = opts.challenge ? [...p.testList, ...p.challengeTestList] : p.testList;
  const setup = p.testSetupCode === '' ? '' : `\n${p.testSetupCode}`;
  return { kind: 'script', before: '', after: `${setup}\n${asserts.join('\n')}\n` };
}

/**
 * MBPP problem → CodeTask. The query is the description plus the first test (as the MBPP paper's
 * prompt does, so the function name and signature are known).
 */
export function mbppTask(p: MbppProblem): CodeTask {
  const example = p.testList[0] ? `\n${p.testList[0]}` : '';
  return {
    id: `mbpp/${p.taskId}`,
    source: 'mbpp',
    query: `${p.text}${example}`,
    reference: p.code,
    tests: mbppProtocol(p),
    stratum: 'mbpp',
    group: `mbpp/${p.taskId}`,
  };
}
