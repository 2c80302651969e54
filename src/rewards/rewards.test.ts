import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  executionReward,
  outcomeRewards,
  runnerFromSandbox,
  type SandboxRunner,
} from './execution.js';
import { CompositeReward, recombine } from './composite.js';
import { textReward } from './text-rewards.js';
import { makeReward } from './factory.js';
import { bleu4 } from './text.js';
import type { RewardSample } from './types.js';
import type { CodeTask } from '../data/tasks.js';
import type { OutcomeStatus } from '../sandbox/outcome.js';
import { ConfigError } from '../util/errors.js';

const task: CodeTask = {
  id: 't',
  source: 'custom',
  query: 'q',
  reference: 'x = 1',
  tests: { kind: 'script', before: '', after: '\nassert x == 1\n' },
  stratum: 'custom',
  group: 't',
};

// A fake runner: the code names the outcome it wants.
const runner: SandboxRunner = async (_t, code) => {
  if (code === 'throw') throw new Error('boom');
  return {
    status: code as OutcomeStatus,
    seconds: 0.01,
    stderrTail: '',
    errorType: code === 'fail' ? 'AssertionError' : undefined,
  };
};

const sample = (code: string, extra: Partial<RewardSample> = {}): RewardSample => ({
  query: 'q',
  code,
  reference: 'x = 1',
  task,
  ...extra,
});

test('execution reward maps every outcome and records it per sample', async () => {
  const r = executionReward({ runner, pSyntax: 0.3, pTimeout: 0.7, other: { crash: -0.1 } });
  const codes = [
    'pass',
    'fail',
    'syntax_error',
    'timeout',
    'memory',
    'crash',
    'sandbox_error',
    'throw',
  ];
  const out = await r.score([
    ...codes.map((c) => sample(c)),
    sample('pass', { generationFailed: true }),
    sample('pass', { task: { ...task, tests: undefined } }),
  ]);
  assert.ok(!Array.isArray(out));
  assert.deepEqual(out.values, [1, 0, -0.3, -0.7, -0.7, -0.1, null, null, null, null]);
  assert.deepEqual(
    out.info!.map((i) => i!.status),
    [...codes.slice(0, 7), 'sandbox_error', 'generation_failed', 'no_tests'],
  );
  assert.equal(out.info![1]!.errorType, 'AssertionError');
  assert.equal(out.info![1]!.detail, undefined); // the code's stderr is not kept
  // A harness failure keeps its reason, so a report can tell it from the code's failure.
  assert.equal(out.info![7]!.detail, 'boom');
  assert.deepEqual(outcomeRewards({}).syntax_error, -0.5);
  assert.throws(() => outcomeRewards({ pSyntax: Number.NaN }), ConfigError);
});

test('execution reward respects its concurrency limit', async () => {
  let running = 0;
  let peak = 0;
  const slow: SandboxRunner = async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    return { status: 'pass', seconds: 0, stderrTail: '' };
  };
  const r = executionReward({ runner: slow, concurrency: 3 });
  const out = await r.score(Array.from({ length: 10 }, () => sample('x')));
  assert.equal(peak, 3);
  assert.ok(!Array.isArray(out) && out.values.every((v) => v === 1));
});

test('composite: weights, stored components, null policies, failed generations', async () => {
  const bleu = textReward('bleu');
  const exec = executionReward({ runner });
  const c = new CompositeReward([
    { fn: bleu, weight: 0.5 },
    { fn: exec, weight: 2 },
  ]);
  const batch = [
    sample('pass', { reference: 'pass' }),
    sample('fail'),
    sample('pass', { task: undefined }),
    sample('pass', { generationFailed: true }),
  ];
  const s = await c.score(batch);
  const b0 = bleu4('pass', 'pass');
  assert.deepEqual(s[0]!.components, { bleu: b0, exec: 1 });
  assert.equal(s[0]!.total, 0.5 * b0 + 2);
  assert.equal(s[0]!.info.exec!.status, 'pass');
  assert.equal(s[1]!.total, 0.5 * bleu4('fail', 'x = 1') + 0);
  assert.equal(s[2]!.components.exec, null);
  assert.equal(s[2]!.total, 0.5 * bleu4('pass', 'x = 1'));
  assert.deepEqual(s[3]!.components, { bleu: null, exec: null });
  assert.equal(s[3]!.total, null);
  // Recompute an ablation from the stored components only.
  assert.equal(recombine(s[0]!.components, { bleu: 1, exec: 0 }), b0);
  assert.equal(recombine({ a: 1, b: null }, { a: 1, b: 3 }, 'renormalize'), 1);
  assert.equal(recombine({ a: 1, b: null }, { a: 1, b: 3 }, 'null'), null);
  assert.equal(recombine({ a: 0.5, b: 1 }, { a: 1, b: 3 }, 'renormalize'), 3.5 / 4);
  assert.throws(
    () =>
      new CompositeReward([
        { fn: bleu, weight: 1 },
        { fn: bleu, weight: 2 },
      ]),
    ConfigError,
  );
  assert.throws(() => new CompositeReward([{ fn: bleu, weight: Number.NaN }]), ConfigError);
});

test('text rewards by name, tokenizer suffix, null for failed generations', async () => {
  assert.equal(textReward('rouge_l').name, 'rouge_l');
  assert.equal(textReward('f1', { tokenizer: 'code' }).name, 'f1:code');
  assert.equal(textReward('css', { tokenizer: 'code' }).name, 'css');
  const v = await textReward('overlap').score([
    sample('x = 1'),
    sample('y', { generationFailed: true }),
  ]);
  assert.deepEqual(v, [1, null]);
});

test('makeReward: all text components stored, configured weights applied, exec needs a runner', async () => {
  const r = makeReward({ weights: { bleu: 1, exec: 1 }, runner });
  assert.deepEqual(Object.keys(r.weights), ['bleu', 'rouge_l', 'f1', 'overlap', 'css', 'exec']);
  const [s] = await r.score([sample('pass', { reference: 'pass' })]);
  assert.equal(s!.total, s!.components.bleu! + 1);
  assert.equal(typeof s!.components.css, 'number');
  assert.throws(() => makeReward({ weights: { exec: 1 } }), ConfigError);
  assert.throws(() => makeReward({ weights: { bleuu: 1 } as never }), ConfigError);
});

test('runnerFromSandbox routes DS-1000 and script protocols', async () => {
  const calls: string[] = [];
  const sb = {
    runDs1000: async (t: { codeContext: string; solution: string }) => {
      calls.push(`ds:${t.codeContext}|${t.solution}`);
      return { status: 'pass' as const, seconds: 0, stderrTail: '' };
    },
    runScript: async (r: { code: string }) => {
      calls.push(`py:${r.code}`);
      return { status: 'fail' as const, seconds: 0, stderrTail: '' };
    },
  };
  const run = runnerFromSandbox(sb);
  const ds: CodeTask = { ...task, tests: { kind: 'ds1000', codeContext: 'CTX' } };
  assert.equal((await run(ds, 'SOL')).status, 'pass');
  assert.equal((await run(task, 'x = 1')).status, 'fail');
  assert.equal((await run({ ...task, tests: undefined }, 'x')).status, 'sandbox_error');
  assert.deepEqual(calls, ['ds:CTX|SOL', 'py:x = 1\nassert x == 1\n']);
});

test('a sandbox_error is re-run once (the code was never judged); other outcomes never are', async () => {
  // A sandbox whose next outcomes are scripted; counts the runs.
  const scripted = (outcomes: OutcomeStatus[]) => {
    let runs = 0;
    const next = async () => {
      const status = outcomes[Math.min(runs++, outcomes.length - 1)]!;
      return {
        status,
        seconds: 0,
        stderrTail: status === 'sandbox_error' ? 'worker did not answer' : '',
      };
    };
    return { sb: { runDs1000: next, runScript: next }, runs: () => runs };
  };
  let s = scripted(['sandbox_error', 'pass']);
  let o = await runnerFromSandbox(s.sb)(task, 'x = 1');
  assert.equal(o.status, 'pass');
  assert.equal(o.retriedAfter, 'worker did not answer');
  assert.equal(s.runs(), 2);
  // Still an error after the re-run: reported as such, not retried without end.
  s = scripted(['sandbox_error']);
  o = await runnerFromSandbox(s.sb)(task, 'x = 1');
  assert.equal(o.status, 'sandbox_error');
  assert.equal(s.runs(), 2);
  // sandboxRetries 0, or an outcome about the code (fail), runs once.
  s = scripted(['sandbox_error', 'pass']);
  assert.equal(
    (await runnerFromSandbox(s.sb, { sandboxRetries: 0 })(task, 'x')).status,
    'sandbox_error',
  );
  assert.equal(s.runs(), 1);
  s = scripted(['fail', 'pass']);
  o = await runnerFromSandbox(s.sb)(task, 'x');
  assert.equal(o.status, 'fail');
  assert.equal(o.retriedAfter, undefined);
  assert.equal(s.runs(), 1);
  // The execution reward carries the first error to its info.
  s = scripted(['sandbox_error', 'fail']);
  const r = executionReward({ runner: runnerFromSandbox(s.sb) });
  const out = await r.score([{ code: 'x', reference: 'x', task } as RewardSample]);
  const info = Array.isArray(out) ? undefined : out.info?.[0];
  assert.equal(info?.status, 'fail');
  assert.equal(info?.retriedAfter, 'worker did not answer');
});

test('a text reward returns null (not a throw) for inputs beyond its bounds', async () => {
  const long = Array.from({ length: 17000 }, (_, i) => `w${i % 50}`).join(' ');
  const v = await textReward('rouge_l').score([
    sample(long, { reference: long }),
    sample('a', { reference: 'a' }),
  ]);
  assert.equal((v as (number | null)[])[0], null);
  assert.ok(((v as (number | null)[])[1] ?? 0) > 0.99);
});
