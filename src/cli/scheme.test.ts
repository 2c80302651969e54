// The CLI's naming scheme (docs/cli.md), checked on the real command tree: every command's
// visible options follow it, every old name is a hidden, registered alias, and no help text
// shows one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command, Option } from 'commander';
import { buildProgram } from './main.js';
import { deprecatedAliasesOf } from './aliases.js';
import { durationFlag } from './flags.js';

function* commandsOf(cmd: Command, prefix = ''): Generator<[string, Command]> {
  for (const c of cmd.commands) {
    const name = `${prefix}${c.name()}`;
    yield [name, c];
    yield* commandsOf(c, `${name} `);
  }
}

const hidden = (o: Option): boolean => (o as Option & { hidden: boolean }).hidden;
const program = buildProgram();
const all = [...commandsOf(program)];

/** Names the scheme replaced: none may be a visible option of any command. */
const RETIRED = [
  '--url',
  '--gguf',
  '--local',
  '--generator-url',
  '--generator-model',
  '--generator-local',
  '--generator-config',
  '--generator-weights',
  '--generator',
  '--refiner',
  '--refiner-gguf',
  '--data',
  '--path',
  '--max-concurrent',
  '--sequences',
  '--max-batch-size',
  '--problems',
  '--base',
];

test('the scheme walks every command (sanity: the tree is the real one)', () => {
  const names = all.map(([n]) => n);
  for (const n of ['generate', 'serve', 'eval', 'demo', 'ds1000 verify', 'data split', 'train'])
    assert.ok(names.includes(n), `${n} missing from the command tree`);
});

test('visible options follow the naming scheme', () => {
  for (const [name, cmd] of all) {
    for (const o of cmd.options) {
      if (hidden(o)) continue;
      const long = o.long ?? '';
      const where = `rl4qe ${name} ${long}`;
      assert.ok(!RETIRED.includes(long), `${where}: a retired name is visible`);
      assert.ok(!/^--refine-/.test(long), `${where}: refiner options are --refiner-*`);
      // A duration is --timeout / --batch-wait with a unit in the value, never in the name.
      assert.ok(!/-(ms|seconds|secs?)$/.test(long), `${where}: a unit in the flag name`);
      if (/timeout/.test(long)) {
        assert.equal(long, '--timeout', `${where}: the one timeout flag is --timeout`);
        assert.match(o.flags, /<duration>/, `${where}: takes a <duration>`);
      }
      if (/<duration>/.test(o.flags) && typeof o.defaultValue === 'string')
        assert.ok(durationFlag(long, o.defaultValue)! > 0, `${where}: default parses`);
      if (/concurren|parallel|jobs|workers/.test(long))
        assert.equal(long, '--concurrency', `${where}: the one concurrency flag is --concurrency`);
      if (/^--data/.test(long))
        assert.ok(
          ['--data-path', '--dataset'].includes(long),
          `${where}: data files are --data-path`,
        );
      if (/weights$/.test(long))
        assert.match(
          o.description,
          /auto.*float32.*quantized/,
          `${where}: auto | float32 | quantized`,
        );
      if (long === '--json') assert.equal(o.flags, '--json', `${where}: --json takes no value`);
    }
  }
});

test('the generator is chosen the same way wherever a command takes one', () => {
  for (const name of ['generate', 'serve', 'eval']) {
    const cmd = all.find(([n]) => n === name)![1];
    const longs = cmd.options.filter((o) => !hidden(o)).map((o) => o.long);
    for (const f of [
      '--backend',
      '--model',
      '--revision',
      '--base-url',
      '--api-key-env',
      '--weights',
    ])
      assert.ok(longs.includes(f), `rl4qe ${name} lacks ${f}`);
  }
});

test('every hidden option is a registered deprecated alias, and no help text shows one', () => {
  // Sanity: the walk sees the aliases (generate 4, serve 12, eval 5, demo 3, data 2, ds1000 1,
  // export 1).
  assert.equal(
    all.map(([, c]) => c.options.filter(hidden).length).reduce((a, b) => a + b),
    28,
  );
  for (const [name, cmd] of all) {
    const aliases = deprecatedAliasesOf(cmd).map((a) => a.flags);
    const help = cmd.helpInformation();
    for (const o of cmd.options.filter(hidden)) {
      assert.ok(aliases.includes(o.flags), `rl4qe ${name} ${o.long}: hidden but not an alias`);
      // The flag as a whole word (not the head of a longer flag such as --data-path).
      const word = new RegExp(`(^|[\\s(,'])${o.long}(?=[\\s,)<;.']|$)`, 'm');
      assert.ok(!word.test(help), `rl4qe ${name} --help shows ${o.long}`);
    }
    // The new name an alias points to is a visible option of the same command.
    for (const a of deprecatedAliasesOf(cmd))
      for (const flag of a.use.match(/--[\w-]+/g) ?? [])
        assert.ok(
          cmd.options.some((o) => o.long === flag && !hidden(o)),
          `rl4qe ${name}: ${a.flags} points to ${flag}, which is not a visible option`,
        );
  }
});
