// `rl4qe serve` driven by the official `openai` npm package (6.30.1), as users' clients drive it:
// models.list, chat completions with the SDK's request shapes (developer role, text-part arrays,
// max_completion_tokens), streaming with a usage chunk, n choices, errors raised as the SDK's
// typed API errors — and the cache never replaying a sampled answer. On the SmolLM2-135M test
// GGUF (llama.cpp, one thread, a few tokens per answer).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { buildServeStack, startServer, type RunningServer } from '../../src/serve/index.js';
import { requireTestModel } from '../generators/test-model.js';

/** rl4qe's own fields on a completion (the SDK passes unknown fields through). */
interface Rl4qeFields {
  rl4qe: { refined_query: string; refinement: { status: string }; generator_cached: boolean };
}

describe('rl4qe serve with the official OpenAI SDK', () => {
  let server: RunningServer;
  let client: OpenAI;
  let dir: string;
  before(async () => {
    requireTestModel();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-sdk-'));
    server = await startServer({
      ...buildServeStack({
        cacheFile: path.join(dir, 'cache.sqlite'),
        threads: 1,
        refineParams: { maxTokens: 6 },
      }),
      port: 0,
      log: () => {},
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
    { role: 'developer', content: 'You write Python.' },
    { role: 'user', content: [{ type: 'text', text: 'Reverse a string.' }] },
  ];

  it('models.list and a chat completion in the SDK shapes', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['rl4qe'],
    );
    const c = await client.chat.completions.create({
      model: 'rl4qe',
      messages,
      max_completion_tokens: 5,
      temperature: 0,
    });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.choices.length, 1);
    const text = c.choices[0]?.message.content ?? '';
    assert.ok(text.length > 0, JSON.stringify(c));
    assert.ok(['stop', 'length'].includes(c.choices[0]?.finish_reason ?? ''));
    assert.ok(c.usage !== undefined && c.usage.completion_tokens <= 6 && c.usage.prompt_tokens > 0);
    assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);
    assert.ok(['refined', 'empty'].includes((c as unknown as Rl4qeFields).rl4qe.refinement.status));
  });

  it('stream: the chunks add up to the non-streamed answer, then a usage chunk', async () => {
    const body = { model: 'rl4qe', messages, max_tokens: 4, temperature: 0 } as const;
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? '';
        finish = ch.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(chunks >= 3);
    assert.equal(text, whole.choices[0]?.message.content);
    assert.equal(finish, whole.choices[0]?.finish_reason);
    assert.deepEqual(usage, whole.usage);
  });

  it('n choices, each a sample of its own', async () => {
    const c = await client.chat.completions.create({
      model: 'rl4qe',
      messages,
      n: 2,
      max_tokens: 3,
      temperature: 1,
      seed: 11,
    });
    assert.deepEqual(
      c.choices.map((x) => x.index),
      [0, 1],
    );
    assert.ok(c.choices.every((x) => typeof x.message.content === 'string'));
  });

  it("refusals arrive as the SDK's typed errors with OpenAI's error body", async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: 'rl4qe',
        messages,
        tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
      }),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError &&
        e.status === 400 &&
        e.param === 'tools' &&
        e.code === 'unsupported_parameter',
    );
    await assert.rejects(
      client.chat.completions.create({
        model: 'rl4qe',
        messages: [
          { role: 'user', content: 'x' },
          { role: 'tool', content: 'result', tool_call_id: 'c1' },
        ],
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages.1.role',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o', messages }),
      (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
    );
  });

  it('the cache replays greedy answers, never a sampled one without a seed', async () => {
    const ask = async (extra: Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>) =>
      (await client.chat.completions.create({
        model: 'rl4qe',
        messages: [{ role: 'user', content: 'Sum a list.' }],
        max_tokens: 3,
        ...extra,
      })) as unknown as Rl4qeFields;
    const greedy = [await ask({ temperature: 0 }), await ask({ temperature: 0 })];
    assert.deepEqual(
      greedy.map((c) => c.rl4qe.generator_cached),
      [false, true],
    );
    const sampled = [await ask({ temperature: 1 }), await ask({ temperature: 1 })];
    assert.deepEqual(
      sampled.map((c) => c.rl4qe.generator_cached),
      [false, false],
    );
    const seeded = [await ask({ temperature: 1, seed: 3 }), await ask({ temperature: 1, seed: 3 })];
    assert.deepEqual(
      seeded.map((c) => c.rl4qe.generator_cached),
      [false, true],
    );
  });
});
