// Progress lines: text on a terminal, JSON lines otherwise or with --json, nothing with --quiet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cliProgress, progressMode } from './progress.js';

test('progress: text on a TTY, JSON lines off a TTY and with --json, nothing with --quiet', () => {
  const lines = (o: Parameters<typeof cliProgress>[1]): string[] => {
    const out: string[] = [];
    const p = cliProgress('eval', { ...o, stderr: (s) => out.push(s) });
    p('arm untrained', { arm: 'untrained', done: 2 });
    return out;
  };
  assert.deepEqual(lines({ isTTY: true }), ['rl4qe eval: arm untrained\n']);
  for (const o of [{ isTTY: false }, { isTTY: true, json: true }]) {
    const [l] = lines(o);
    assert.ok(l?.endsWith('\n'));
    const j = JSON.parse(l) as Record<string, unknown>;
    assert.equal(j.command, 'eval');
    assert.equal(j.message, 'arm untrained');
    assert.equal(j.arm, 'untrained');
    assert.equal(j.done, 2);
    assert.ok(!Number.isNaN(Date.parse(String(j.time))));
  }
  assert.deepEqual(lines({ isTTY: true, quiet: true }), []);
  assert.equal(progressMode({ isTTY: false }), 'json');
  assert.equal(progressMode({ isTTY: true }), 'text');
});
