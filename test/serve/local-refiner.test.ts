// `rl4qe serve` with a trained refiner: the local engine + a PEFT LoRA adapter (the tiny Llama
// fixture and its adapter from scripts/fixtures_local_generator.py), prompted in a training
// format. In-process (the refinement equals the generator's own output, read the same way) and as
// the real CLI process with the --refiner-* flags.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalEngineGenerator } from '../../src/generators/index.js';
import { extractRefinement, refinerPrompt } from '../../src/data/index.js';
import { buildServeStack, startServer } from '../../src/serve/index.js';
import { requireTestModel } from '../generators/test-model.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const FIX = 'test/fixtures/generators/local';
const local = {
  model: 'test/fixtures/models/tiny-llama',
  adapter: path.join(FIX, 'adapter-tiny-llama'),
  tokenizer: path.join(FIX, 'tokenizer'),
};

interface RefineBody {
  original_query: string;
  refined_query: string;
  metadata: { refiner: string; completionTokens: number };
}

describe('rl4qe serve with a local refiner (engine + PEFT adapter)', () => {
  it('/v1/refine answers with what the adapted model writes for the training prompt', async () => {
    const query = 'sum a list';
    const server = await startServer({
      ...buildServeStack({
        refiner: { backend: 'local', ...local },
        refineFormat: 'chat',
        refineParams: { maxTokens: 8 },
        cache: false,
      }),
      port: 0,
      log: () => {},
    });
    try {
      const res = await fetch(`${server.url}/v1/refine`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      const body = (await res.json()) as RefineBody;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.original_query, query);
      assert.match(body.metadata.refiner, /^prompted:local:tiny-llama:\w+\+lora:/);
      assert.equal(body.metadata.completionTokens, 8);
      // The same model, adapter and prompt outside the server.
      const g = new LocalEngineGenerator(local);
      const p = refinerPrompt(query, { format: 'chat' });
      assert.equal(p.kind, 'chat');
      const [r] = await g.generate([
        {
          id: 'x',
          messages: p.kind === 'chat' ? p.messages : [],
          params: { maxTokens: 8, temperature: 0 },
        },
      ]);
      await g.dispose();
      assert.ok(r!.ok);
      assert.equal(body.refined_query, extractRefinement(r.text));
    } finally {
      await server.close();
    }
  });

  it('/v1/chat/completions: a local refiner with its adapter, then a local answer generator on the refined query', async () => {
    const stack = buildServeStack({
      refiner: { backend: 'local', ...local },
      generator: { backend: 'local', model: local.model, tokenizer: local.tokenizer },
      refineFormat: 'chat',
      refineParams: { maxTokens: 6 },
      cache: false,
    });
    const server = await startServer({ ...stack, port: 0, log: () => {} });
    try {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          messages: [{ role: 'user', content: 'merge two dicts' }],
          max_tokens: 5,
          temperature: 0,
        }),
      });
      const body = (await res.json()) as {
        choices: { message: { content: string } }[];
        usage: { completion_tokens: number };
        rl4qe: { refined_query: string; refinement: { status: string; refiner: string } };
      };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.match(body.rl4qe.refinement.refiner, /\+lora:/);
      // The answer is the base model's (no adapter) greedy reply to the refined query.
      const g = new LocalEngineGenerator({ model: local.model, tokenizer: local.tokenizer });
      const [r] = await g.generate([
        {
          id: 'x',
          messages: [{ role: 'user', content: body.rl4qe.refined_query || 'merge two dicts' }],
          params: { maxTokens: 5, temperature: 0 },
        },
      ]);
      await g.dispose();
      assert.ok(r!.ok);
      assert.equal(body.choices[0]!.message.content, r.text);
      assert.equal(body.usage.completion_tokens, 5);
    } finally {
      await server.close();
    }
  });

  it('the CLI: --refiner-backend local --refiner-model --refiner-adapter answers /v1/refine and exits 0', async () => {
    requireTestModel(); // the default answer generator (loaded lazily, not used here)
    const p = spawn(process.execPath, [
      cli,
      'serve',
      '--port',
      '0',
      '--no-cache',
      '--refiner-backend',
      'local',
      '--refiner-model',
      local.model,
      '--refiner-adapter',
      local.adapter,
      '--refiner-tokenizer',
      local.tokenizer,
      '--refiner-format',
      'paper-chat',
      '--refiner-max-tokens',
      '4',
    ]);
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
    const res = await fetch(`${url}/v1/refine`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'merge two dicts' }),
    });
    const body = (await res.json()) as RefineBody;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.metadata.refiner, /\+lora:.*adapter-tiny-llama:[0-9a-f]{16}/);
    assert.equal(body.metadata.completionTokens, 4);
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => p.once('exit', res));
    assert.equal(code, 0, stderr);
  });

  it('the CLI refuses an adapter without the local backend, naming the flag', async () => {
    const p = spawn(process.execPath, [
      cli,
      'serve',
      '--port',
      '0',
      '--refiner-adapter',
      local.adapter,
    ]);
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((res) => p.once('exit', res));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /--refiner-adapter needs --refiner-backend local/);
  });
});
