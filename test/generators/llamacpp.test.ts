// The llama.cpp backend on the SmolLM2-135M test GGUF, on CPU with one thread (the machine is
// shared; more threads spin-wait). Small maxTokens keep it to a few seconds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CachedGenerator, GenerationCache, LlamaCppGenerator } from '../../src/generators/index.js';
import { NotFoundError } from '../../src/util/errors.js';
import { requireTestModel } from './test-model.js';

describe('LlamaCppGenerator (SmolLM2-135M GGUF, CPU)', () => {
  let g: LlamaCppGenerator;
  let dir: string;
  before(async () => {
    g = new LlamaCppGenerator({ modelPath: requireTestModel(), threads: 1, contextSize: 512 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-llama-'));
  });
  after(async () => {
    await g.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('chat: text, usage and finish reason; greedy is deterministic across reused context', async () => {
    const req = {
      id: 'c1',
      system: 'You write Python.',
      messages: [{ role: 'user' as const, content: 'Write a function that adds two numbers.' }],
      params: { maxTokens: 6, temperature: 0 },
    };
    const [a] = await g.generate([req]);
    const [b] = await g.generate([{ ...req, id: 'c2' }]);
    assert.ok(a!.ok, JSON.stringify(a));
    assert.ok(b!.ok);
    assert.ok(a.text.length > 0);
    assert.ok(a.usage.completionTokens > 0 && a.usage.completionTokens <= 6 + 1);
    assert.ok(a.usage.promptTokens > 10, `prompt tokens ${a.usage.promptTokens}`);
    assert.equal(a.finishReason, 'length');
    assert.equal(b.text, a.text);
    assert.equal(a.costUsd, 0);
  });

  it('raw prompt with a stop string: the text stops before it', async () => {
    const [r] = await g.generate([
      {
        id: 'p',
        prompt: 'import numpy as np\nimport pandas as pd\n',
        params: { maxTokens: 12, temperature: 0, stop: ['\n'] },
      },
    ]);
    assert.ok(r!.ok, JSON.stringify(r));
    assert.ok(!r.text.includes('\n'), JSON.stringify(r.text));
  });

  it('a chat that does not end with the user is a bad_request failure', async () => {
    const [r] = await g.generate([
      {
        id: 'x',
        messages: [
          { role: 'user', content: 'a' },
          { role: 'assistant', content: 'b' },
        ],
      },
    ]);
    assert.ok(!r!.ok && r!.kind === 'bad_request' && /llama\.cpp backend/.test(r!.message));
  });

  it('through the cache: the second call is a hit with the same text', async () => {
    const cache = new GenerationCache({ file: path.join(dir, 'c.sqlite') });
    const cg = new CachedGenerator(g, cache);
    const req = {
      id: 'k',
      messages: [{ role: 'user' as const, content: 'Print hello.' }],
      params: { maxTokens: 4, temperature: 0 },
    };
    const [a] = await cg.generate([req]);
    const [b] = await cg.generate([req]);
    assert.ok(a!.ok && b!.ok && !a.cached && b.cached && a.text === b.text);
    assert.deepEqual(cache.stats(), { hits: 1, misses: 1, writes: 1, writeErrors: 0 });
    cache.close();
  });

  it('a missing GGUF is a NotFoundError naming the file', () => {
    assert.throws(
      () => new LlamaCppGenerator({ modelPath: '/nonexistent/model.gguf' }),
      (e: unknown) => e instanceof NotFoundError && /nonexistent/.test(e.message),
    );
  });
});
