// Client and server test each other: the OpenAI-compatible HTTP backend talks to `rl4qe serve`
// backed by the SmolLM2-135M test GGUF through llama.cpp (tiny max_tokens, one thread), first
// in-process, then as the real CLI process with a graceful SIGTERM.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OpenAIGenerator } from '../../src/generators/index.js';
import { buildServeStack, startServer, type RunningServer } from '../../src/serve/index.js';
import { requireTestModel } from '../generators/test-model.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const ask = (content: string) => ({
  id: 'q',
  messages: [{ role: 'user' as const, content }],
  params: { maxTokens: 6, temperature: 0 },
});

describe('OpenAIGenerator ↔ rl4qe serve on the small local model', () => {
  let server: RunningServer;
  before(async () => {
    requireTestModel();
    server = await startServer({
      ...buildServeStack({ cache: false, threads: 1, refineParams: { maxTokens: 8 } }),
      port: 0,
      log: () => {},
    });
  });
  after(async () => {
    await server.close();
  });

  it('a chat completion round trip: real text, usage, and the refinement in field and header', async () => {
    const client = new OpenAIGenerator({
      baseUrl: `${server.url}/v1`,
      model: 'rl4qe',
      timeoutMs: 120_000,
    });
    assert.deepEqual(await client.preflight(), ['rl4qe']);
    const [r] = await client.generate([ask('Write a Python function that reverses a string.')]);
    assert.ok(r!.ok, JSON.stringify(r));
    assert.ok(r.text.length > 0);
    assert.ok(
      r.usage.promptTokens > 0 && r.usage.completionTokens > 0 && r.usage.completionTokens <= 7,
    );
    assert.equal(r.attempts, 1);

    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        messages: [{ role: 'user', content: 'Sum a list.' }],
        max_tokens: 4,
        temperature: 0,
      }),
    });
    const body = (await res.json()) as {
      rl4qe: { refined_query: string; refinement: { status: string } };
    };
    assert.equal(res.status, 200);
    assert.ok(['refined', 'empty'].includes(body.rl4qe.refinement.status));
    assert.equal(
      decodeURIComponent(res.headers.get('x-rl4qe-refined-query')!),
      body.rl4qe.refined_query,
    );
  });

  it("the client's typed failures for the server's refusals: unknown model, wrong base URL, no /completions", async () => {
    const wrongModel = new OpenAIGenerator({ baseUrl: `${server.url}/v1`, model: 'gpt-4o' });
    const [a] = await wrongModel.generate([ask('x')]);
    assert.ok(!a!.ok && a!.kind === 'not_found' && /gpt-4o/.test(a!.message) && !('text' in a!));
    await assert.rejects(wrongModel.preflight(), /unknown model 'gpt-4o'/);
    const noV1 = new OpenAIGenerator({ baseUrl: server.url, model: 'rl4qe' });
    const [b] = await noV1.generate([ask('x')]);
    assert.ok(!b!.ok && b!.kind === 'not_found' && /\/v1/.test(b!.hint ?? ''));
    const [c] = await new OpenAIGenerator({ baseUrl: `${server.url}/v1`, model: 'rl4qe' }).generate(
      [{ id: 'raw', prompt: 'def f(' }],
    );
    assert.ok(!c!.ok && c!.kind === 'not_found');
  });
});

describe('rl4qe serve as a process', () => {
  it('starts on the default offline model, answers, and exits 0 on SIGTERM after a clean shutdown', async () => {
    requireTestModel();
    const p = spawn(
      process.execPath,
      [cli, 'serve', '--port', '0', '--threads', '1', '--no-cache', '--refiner-max-tokens', '4'],
      {
        env: { ...process.env },
      },
    );
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      p.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new OpenAIGenerator({
      baseUrl: `${url}/v1`,
      model: 'rl4qe',
      timeoutMs: 120_000,
    });
    const [r] = await client.generate([
      { ...ask('Print hello.'), params: { maxTokens: 3, temperature: 0 } },
    ]);
    assert.ok(r!.ok, JSON.stringify(r));
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => p.once('exit', res));
    assert.equal(code, 0, stderr);
    const lines = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    assert.deepEqual(
      lines.slice(-2).map((l) => l.msg),
      ['shutting down', 'stopped'],
    );
  });
});
