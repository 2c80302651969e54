// rl4qe generate --backend local: the local engine with a PEFT adapter from the command line (tiny Llama
// fixture), results equal the library's; the cache identity separates adapters; 0.1.0's --local
// still works (deprecated alias) and shares the cache; misplaced flags are refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalEngineGenerator, type Completion } from '../../src/generators/index.js';
import { runGenerateCli } from './run-cli.js';

const FIX = 'test/fixtures/generators/local';
const MODEL = 'test/fixtures/models/tiny-llama';
const ADAPTER = path.join(FIX, 'adapter-tiny-llama');
const TOKENIZER = path.join(FIX, 'tokenizer');

/** stdout with --json: the results as JSON lines, then the summary as the last line. */
function split(stdout: string): { results: Completion[]; summary: { cached: number } } {
  const lines = stdout.trim().split('\n');
  const summary = JSON.parse(lines.pop()!) as { cached: number };
  return { results: lines.map((l) => JSON.parse(l) as Completion), summary };
}

describe('rl4qe generate --backend local', () => {
  let dir: string;
  const run = (...args: string[]) => runGenerateCli(dir, ...args);
  const reqs = [
    { id: 'a', messages: [{ role: 'user', content: 'sum a list' }], params: { maxTokens: 5 } },
    {
      id: 'b',
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'sort a DataFrame' }],
      params: { maxTokens: 3 },
    },
  ] as const;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-gen-local-'));
    writeFileSync(path.join(dir, 'reqs.jsonl'), reqs.map((r) => JSON.stringify(r)).join('\n'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one completion per request, equal to the library; a second run hits the cache', async () => {
    const args = [
      path.join(dir, 'reqs.jsonl'),
      '--backend',
      'local',
      '--model',
      MODEL,
      '--adapter',
      ADAPTER,
      '--tokenizer',
      TOKENIZER,
      '--json',
    ];
    const r = await run(...args);
    assert.equal(r.status, 0, r.stderr);
    const out = split(r.stdout).results;
    const g = new LocalEngineGenerator({ model: MODEL, adapter: ADAPTER, tokenizer: TOKENIZER });
    const lib = await g.generate(reqs.map((q) => ({ ...q, messages: [...q.messages] })));
    await g.dispose();
    assert.deepEqual(
      out.map((c) => [c.id, c.ok, c.text, c.usage.completionTokens]),
      lib.map((c) => [c.id, c.ok, c.ok ? c.text : '', c.ok ? c.usage.completionTokens : -1]),
    );
    assert.deepEqual(
      out.map((c) => c.usage.completionTokens),
      [5, 3],
    );
    // 0.1.0's spelling: the same generator (every answer from the cache), and a note naming
    // the new flags.
    const again = await run(
      path.join(dir, 'reqs.jsonl'),
      '--local',
      MODEL,
      '--adapter',
      ADAPTER,
      '--tokenizer',
      TOKENIZER,
      '--json',
    );
    assert.equal(again.status, 0, again.stderr);
    assert.equal(split(again.stdout).summary.cached, 2);
    assert.match(again.stderr, /--local is deprecated .*use --backend local --model <model>/);
    // Without the adapter: another identity, so no cache hit (and other text).
    const base = await run(
      path.join(dir, 'reqs.jsonl'),
      '--backend',
      'local',
      '--model',
      MODEL,
      '--tokenizer',
      TOKENIZER,
      '--json',
    );
    assert.equal(base.status, 0, base.stderr);
    assert.equal(split(base.stdout).summary.cached, 0);
  });

  it('--adapter without --backend local, and a bad --batch-size, are refused naming the flag', async () => {
    const a = await run(path.join(dir, 'reqs.jsonl'), '--adapter', ADAPTER);
    assert.equal(a.status, 2);
    assert.match(a.stderr, /--adapter needs --backend local/);
    const b = await run(
      path.join(dir, 'reqs.jsonl'),
      '--backend',
      'local',
      '--model',
      MODEL,
      '--batch-size',
      '0',
    );
    assert.equal(b.status, 2);
    assert.match(b.stderr, /--batch-size must be an integer >= 1/);
  });
});
