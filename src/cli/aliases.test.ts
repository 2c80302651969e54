// Old flag names (0.1.0) give the same parsed options as the new ones, print one deprecation note
// each naming the new flag, and are refused when they disagree with the new flag given too. The
// real commands parse (main.ts's tree); their actions are replaced by a capture, so nothing runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from './main.js';
import { ConfigError } from '../util/errors.js';

interface Parsed {
  opts: Record<string, unknown>;
  stderr: string;
}

function find(program: Command, path: string[]): Command {
  let c = program;
  for (const name of path) c = c.commands.find((x) => x.name() === name)!;
  assert.ok(c, `no command ${path.join(' ')}`);
  return c;
}

/** Parses argv with the command's action replaced; returns its options and what went to stderr. */
async function parse(path: string[], args: string[]): Promise<Parsed> {
  const program = buildProgram();
  const cmd = find(program, path);
  let opts: Record<string, unknown> | undefined;
  cmd.action(function (this: Command) {
    opts = { ...this.opts() };
  });
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    await program.parseAsync([...path, ...args], { from: 'user' });
  } finally {
    process.stderr.write = write;
  }
  assert.ok(opts, 'the action ran');
  // An alias left behind as undefined is the same as no key.
  for (const [k, v] of Object.entries(opts)) if (v === undefined) delete opts[k];
  return { opts, stderr };
}

const CASES: { path: string[]; old: string[]; now: string[]; notes: string[] }[] = [
  {
    path: ['generate'],
    old: ['r.jsonl', '--gguf', 'm.gguf'],
    now: ['r.jsonl', '--backend', 'llama.cpp', '--model', 'm.gguf'],
    notes: ['--gguf'],
  },
  {
    path: ['generate'],
    old: ['r.jsonl', '--url', 'http://h/v1', '--model', 'gpt'],
    now: ['r.jsonl', '--base-url', 'http://h/v1', '--model', 'gpt'],
    notes: ['--url'],
  },
  {
    path: ['generate'],
    old: ['r.jsonl', '--local', 'dir', '--max-batch-size', '4'],
    now: ['r.jsonl', '--backend', 'local', '--model', 'dir', '--batch-size', '4'],
    notes: ['--local', '--max-batch-size'],
  },
  {
    path: ['serve'],
    old: [
      '--generator-url',
      'http://h/v1',
      '--generator-model',
      'gpt',
      '--max-concurrent',
      '3',
      '--timeout-ms',
      '500',
      '--refine-format',
      'chat',
      '--refine-max-tokens',
      '9',
      '--refiner-gguf',
      'r.gguf',
    ],
    now: [
      '--base-url',
      'http://h/v1',
      '--model',
      'gpt',
      '--concurrency',
      '3',
      '--timeout',
      '500ms',
      '--refiner-format',
      'chat',
      '--refiner-max-tokens',
      '9',
      '--refiner-model',
      'r.gguf',
    ],
    notes: [
      '--generator-url',
      '--generator-model',
      '--max-concurrent',
      '--timeout-ms',
      '--refine-format',
      '--refine-max-tokens',
      '--refiner-gguf',
    ],
  },
  {
    path: ['serve'],
    old: ['--local', 'm.gguf', '--batch-wait-ms', '5', '--sequences', '2'],
    now: ['--backend', 'local', '--model', 'm.gguf', '--batch-wait', '5ms', '--batch-size', '2'],
    notes: ['--local', '--batch-wait-ms', '--sequences'],
  },
  {
    path: ['eval'],
    old: [
      '--refiner',
      'r.gguf',
      '--adapter',
      'a',
      '--adapter',
      'b',
      '--generator-local',
      'g.gguf',
      '--generator-weights',
      'float32',
    ],
    now: [
      '--refiner-model',
      'r.gguf',
      '--refiner-adapter',
      'a',
      '--refiner-adapter',
      'b',
      '--backend',
      'local',
      '--model',
      'g.gguf',
      '--weights',
      'float32',
    ],
    notes: ['--refiner', '--adapter', '--generator-local', '--generator-weights'],
  },
  {
    path: ['eval'],
    old: ['--refiner', 'r.gguf', '--generator-config', 'g.json'],
    now: ['--refiner-model', 'r.gguf', '--config', 'g.json'],
    notes: ['--refiner', '--generator-config'],
  },
  {
    path: ['demo'],
    old: ['--refiner', 'r.gguf', '--generator', 'g.gguf', '--problems', '4'],
    now: ['--refiner-model', 'r.gguf', '--model', 'g.gguf', '--limit', '4'],
    notes: ['--refiner', '--generator', '--problems'],
  },
  {
    path: ['ds1000', 'verify'],
    old: ['--data', 'd.jsonl'],
    now: ['--data-path', 'd.jsonl'],
    notes: ['--data'],
  },
  {
    path: ['data', 'split'],
    old: ['--path', 'd.jsonl'],
    now: ['--data-path', 'd.jsonl'],
    notes: ['--path'],
  },
  {
    path: ['export'],
    old: ['runs/r', '--format', 'peft', '--base', 'b.gguf'],
    now: ['runs/r', '--format', 'peft', '--refiner-model', 'b.gguf'],
    notes: ['--base'],
  },
  {
    path: ['data', 'stats'],
    old: ['--path', 'd.jsonl'],
    now: ['--data-path', 'd.jsonl'],
    notes: ['--path'],
  },
];

for (const c of CASES)
  test(`rl4qe ${c.path.join(' ')} ${c.notes.join(' ')}: the same options as the new names`, async () => {
    const old = await parse(c.path, c.old);
    const now = await parse(c.path, c.now);
    assert.deepEqual(old.opts, now.opts);
    assert.equal(now.stderr, '', 'the new names print nothing');
    const lines = old.stderr.trim().split('\n');
    assert.equal(lines.length, c.notes.length, old.stderr);
    for (const flag of c.notes)
      assert.ok(
        lines.some((l) =>
          new RegExp(`^rl4qe: ${flag} is deprecated .*; use --[\\w-]+.* instead$`).test(l),
        ),
        `no note for ${flag} in:\n${old.stderr}`,
      );
  });

test('an old name and its new name given with different values are refused, naming both', async () => {
  await assert.rejects(
    parse(['generate'], ['r.jsonl', '--url', 'http://a/v1', '--base-url', 'http://b/v1']),
    (e: unknown) => e instanceof ConfigError && /--url and --base-url disagree/.test(e.message),
  );
  await assert.rejects(
    parse(['generate'], ['r.jsonl', '--gguf', 'a.gguf', '--backend', 'local']),
    (e: unknown) => e instanceof ConfigError && /--gguf and --backend disagree/.test(e.message),
  );
  // The same value twice is no conflict.
  const same = await parse(
    ['generate'],
    ['r.jsonl', '--url', 'http://a/v1', '--base-url', 'http://a/v1'],
  );
  assert.equal(same.opts.baseUrl, 'http://a/v1');
});
