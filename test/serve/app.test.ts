// The service's HTTP contract on a real socket (127.0.0.1, any port): validation, limits,
// timeouts, saturation, auth, failure mapping, logs and graceful shutdown. The models are
// ScriptedGenerators so this runs in well under a second per case; the model-backed round trip
// is in e2e.test.ts.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  PromptedRefiner,
  startServer,
  type RunningServer,
  type StartServerOptions,
} from '../../src/serve/index.js';
import { ScriptedGenerator } from './scripted.js';

interface Started {
  server: RunningServer;
  logs: Record<string, unknown>[];
  gen: ScriptedGenerator;
  ref: ScriptedGenerator;
}

let current: Started | undefined;
afterEach(async () => {
  await current?.server.close();
  current = undefined;
});

async function start(o: Partial<StartServerOptions> = {}): Promise<Started> {
  const gen = new ScriptedGenerator('answer');
  const ref = new ScriptedGenerator('refined', 'rfail');
  const logs: Record<string, unknown>[] = [];
  const server = await startServer({
    refiner: new PromptedRefiner({ generator: ref, ownsGenerator: true }),
    generator: gen,
    port: 0,
    log: (e) => logs.push(e),
    ...o,
  });
  current = { server, logs, gen, ref };
  return current;
}

const post = (
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const user = (content: string) => ({ messages: [{ role: 'user', content }] });

describe('rl4qe serve HTTP contract', () => {
  it('binds 127.0.0.1 by default; /health and /v1/models', async () => {
    const { server } = await start();
    assert.equal(server.host, '127.0.0.1');
    const h = (await (await fetch(`${server.url}/health`)).json()) as { status: string };
    assert.equal(h.status, 'ok');
    const m = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(
      m.data.map((x) => x.id),
      ['rl4qe'],
    );
  });

  it('chat completion: refines the last user message, generates from the refinement, shows it in a field and a header', async () => {
    const { server, gen, ref } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, {
      model: 'rl4qe',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: 'sort a list\nin place' },
      ],
      max_tokens: 9,
      stop: '###',
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      object: string;
      choices: { message: { content: string }; finish_reason: string }[];
      usage: { total_tokens: number };
      rl4qe: { original_query: string; refined_query: string; refinement: { status: string } };
    };
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.rl4qe.original_query, 'sort a list\nin place');
    assert.equal(body.rl4qe.refined_query, 'refined(sort a list\nin place)');
    assert.equal(body.rl4qe.refinement.status, 'refined');
    assert.equal(body.choices[0]!.message.content, 'answer(refined(sort a list\nin place))');
    assert.equal(body.usage.total_tokens, 5);
    assert.equal(
      decodeURIComponent(res.headers.get('x-rl4qe-refined-query')!),
      'refined(sort a list\nin place)',
    );
    assert.equal(res.headers.get('x-rl4qe-refinement-status'), 'refined');
    assert.equal(ref.calls[0]!.messages![0]!.content, 'sort a list\nin place');
    const sent = gen.calls[0]!;
    assert.equal(sent.messages!.length, 4, 'earlier turns are kept');
    // Only what the client set: unset fields leave the generator's defaults in force.
    assert.deepEqual(sent.params, { maxTokens: 9, stop: ['###'] });
  });

  it('rl4qe.refine=false skips the refiner', async () => {
    const { server, ref } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, {
      ...user('q'),
      rl4qe: { refine: false },
    });
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0]!.message.content, 'answer(q)');
    assert.equal(res.headers.get('x-rl4qe-refinement-status'), 'skipped');
    assert.equal(ref.calls.length, 0);
  });

  it('a failed refinement falls back to the original query and says so', async () => {
    const { server } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, user('rfail:server_error please'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      rl4qe: { refined_query: string; refinement: { status: string; error: string } };
    };
    assert.equal(body.rl4qe.refinement.status, 'failed');
    assert.equal(body.rl4qe.refined_query, 'rfail:server_error please');
  });

  it('POST /v1/refine returns the refinement only', async () => {
    const { server, gen } = await start();
    const res = await post(`${server.url}/v1/refine`, { query: 'reverse a string' });
    const body = (await res.json()) as { refined_query: string; metadata: { refiner: string } };
    assert.equal(body.refined_query, 'refined(reverse a string)');
    assert.match(body.metadata.refiner, /^prompted:scripted/);
    assert.equal(gen.calls.length, 0);
  });

  it('400s name the field; bad JSON, stream, unknown model (404), no user message', async () => {
    const { server } = await start();
    const cases: [unknown, number, RegExp][] = [
      [{ messages: [{ role: 'user', content: 5 }] }, 400, /messages\.0\.content/],
      [{ messages: [] }, 400, /messages/],
      [{ ...user('x'), temperature: 9 }, 400, /temperature/],
      [{ ...user('x'), stream_options: { include_usage: true } }, 400, /stream_options/],
      [{ messages: [{ role: 'system', content: 'x' }] }, 400, /no message with role user/],
      ['{"messages": [', 400, /not valid JSON/],
      [{ ...user('x'), model: 'gpt-4' }, 404, /gpt-4/],
    ];
    for (const [body, status, re] of cases) {
      const res = await post(`${server.url}/v1/chat/completions`, body);
      const j = (await res.json()) as { error: { message: string } };
      assert.equal(res.status, status, JSON.stringify(body));
      assert.match(j.error.message, re);
    }
    const r = await post(`${server.url}/v1/refine`, { query: '' });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /query/);
  });

  it('OpenAI request shapes: text-part arrays, developer as system, snake_case parameters, nulls as unset', async () => {
    const { server, gen, ref } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, {
      model: 'rl4qe',
      messages: [
        {
          role: 'developer',
          content: [
            { type: 'text', text: 'be ' },
            { type: 'text', text: 'brief' },
          ],
        },
        { role: 'assistant', content: null },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'sort ' },
            { type: 'text', text: 'a list' },
          ],
        },
      ],
      max_completion_tokens: 7,
      top_p: 0.5,
      top_k: 4,
      seed: 3,
      stop: ['a', 'b'],
      temperature: null,
      frequency_penalty: 0,
      logprobs: false,
      user: 'someone',
      metadata: { k: 'v' },
      store: false,
      stream: false,
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(ref.calls[0]!.messages![0]!.content, 'sort a list');
    const sent = gen.calls[0]!;
    assert.deepEqual(sent.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'assistant', content: '' },
      { role: 'user', content: 'refined(sort a list)' },
    ]);
    assert.deepEqual(sent.params, { maxTokens: 7, topP: 0.5, topK: 4, seed: 3, stop: ['a', 'b'] });
  });

  it('refused with a 400 naming the field: tool role, tool calls, image parts, unknown fields, unsupported parameters', async () => {
    const { server, gen } = await start();
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        {
          messages: [
            { role: 'user', content: 'x' },
            { role: 'tool', content: 'r', tool_call_id: 't' },
          ],
        },
        'messages.1.role',
        /tool calling/,
      ],
      [
        {
          messages: [
            { role: 'assistant', content: null, tool_calls: [{ id: 't' }] },
            { role: 'user', content: 'x' },
          ],
        },
        'messages.0.tool_calls',
        /tool/,
      ],
      [
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
        'messages.0.content.0',
        /image_url/,
      ],
      [{ ...user('x'), frobnicate: 1 }, 'frobnicate', /unrecognized/],
      [{ ...user('x'), logprobs: true }, 'logprobs', /log-probabilities/],
      [{ ...user('x'), presence_penalty: 0.5 }, 'presence_penalty', /penalt/],
      [{ ...user('x'), tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools', /tool/],
      [{ ...user('x'), response_format: { type: 'json_object' } }, 'response_format', /structured/],
      [{ ...user('x'), n: 99 }, 'n', /16/],
      [
        { ...user('x'), max_tokens: 5, max_completion_tokens: 6 },
        'max_completion_tokens',
        /disagree/,
      ],
      [{ messages: [{ role: 'user', content: 'x', name: 'bob' }] }, 'messages.0.name', /names/],
    ];
    for (const [body, param, re] of cases) {
      const res = await post(`${server.url}/v1/chat/completions`, body);
      const j = (await res.json()) as {
        error: { message: string; type: string; param: string; code: string };
      };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(j.error.param, param, JSON.stringify(j));
      assert.equal(j.error.type, 'invalid_request_error');
      assert.match(j.error.message, re);
      assert.equal(typeof j.error.code, 'string');
    }
    assert.equal(gen.calls.length, 0, 'nothing refused reached the generator');
  });

  it('n: sampled choices are separate requests (seed + i), a greedy answer is generated once and repeated', async () => {
    const { server, gen } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, {
      ...user('q'),
      n: 3,
      temperature: 0.7,
      seed: 10,
      rl4qe: { refine: false },
    });
    const body = (await res.json()) as {
      choices: { index: number; message: { content: string } }[];
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    assert.equal(res.status, 200);
    assert.deepEqual(
      body.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.deepEqual(
      gen.calls.map((r) => r.params?.seed),
      [10, 11, 12],
    );
    assert.deepEqual(body.usage, { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 });
    gen.calls.length = 0;
    const g = await post(`${server.url}/v1/chat/completions`, {
      ...user('q'),
      n: 2,
      temperature: 0,
      rl4qe: { refine: false },
    });
    const gb = (await g.json()) as { choices: { message: { content: string } }[] };
    assert.equal(gen.calls.length, 1);
    assert.deepEqual(
      gb.choices.map((c) => c.message.content),
      ['answer(q)', 'answer(q)'],
    );
  });

  it('stream: server-sent chat.completion.chunk events, a usage chunk with include_usage, [DONE]', async () => {
    const { server } = await start();
    const res = await post(`${server.url}/v1/chat/completions`, {
      ...user('q'),
      stream: true,
      stream_options: { include_usage: true },
      n: 2,
      temperature: 1,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const text = await res.text();
    const events = text.trim().split('\n\n');
    assert.equal(events.at(-1), 'data: [DONE]');
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e.replace(/^data: /, '')) as {
          object: string;
          id: string;
          choices: {
            index: number;
            delta: { role?: string; content?: string };
            finish_reason: string | null;
          }[];
          usage: { total_tokens: number } | null;
        },
    );
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage!.total_tokens, 3 + 2 * 2);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    for (const i of [0, 1]) {
      const mine = chunks.flatMap((c) => c.choices.filter((x) => x.index === i));
      assert.equal(mine[0]!.delta.role, 'assistant');
      assert.equal(mine.map((x) => x.delta.content ?? '').join(''), 'answer(refined(q))');
      assert.equal(mine.at(-1)!.finish_reason, 'stop');
    }
    // A failure before streaming keeps its status and the OpenAI error shape.
    const f = await post(`${server.url}/v1/chat/completions`, {
      ...user('fail:rate_limited'),
      stream: true,
      rl4qe: { refine: false },
    });
    assert.equal(f.status, 429);
    assert.deepEqual(((await f.json()) as { error: { code: string } }).error.code, 'rate_limited');
  });

  it('body size limit: 413', async () => {
    const { server } = await start({ maxBodyBytes: 1000 });
    const res = await post(`${server.url}/v1/chat/completions`, user('x'.repeat(5000)));
    assert.equal(res.status, 413);
  });

  it('generator failures map to HTTP statuses with the kind as code, never as an answer', async () => {
    const { server } = await start();
    const expect: [string, number][] = [
      ['rate_limited', 429],
      ['timeout', 504],
      ['budget_exceeded', 402],
      ['bad_response', 502],
    ];
    for (const [kind, status] of expect) {
      const res = await post(`${server.url}/v1/chat/completions`, {
        ...user(`fail:${kind}`),
        rl4qe: { refine: false },
      });
      const j = (await res.json()) as { error: { code: string }; choices?: unknown };
      assert.equal(res.status, status);
      assert.equal(j.error.code, kind);
      assert.equal(j.choices, undefined);
    }
  });

  it('per-request timeout: 504 and the generator is told to stop', async () => {
    const { server, gen } = await start({ requestTimeoutMs: 200 });
    const res = await post(`${server.url}/v1/chat/completions`, {
      ...user('slow:5000'),
      rl4qe: { refine: false },
    });
    assert.equal(res.status, 504);
    assert.equal(gen.calls.length, 1);
  });

  it('saturated: 429 with Retry-After beyond maxConcurrent', async () => {
    const { server } = await start({ maxConcurrent: 2 });
    const slow = [1, 2].map(() =>
      post(`${server.url}/v1/chat/completions`, { ...user('slow:400'), rl4qe: { refine: false } }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const third = await post(`${server.url}/v1/chat/completions`, user('x'));
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '1');
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
    const after = await post(`${server.url}/v1/chat/completions`, user('x'));
    assert.equal(after.status, 200);
  });

  it('bearer token: 401 without it on /v1/*, /health stays open', async () => {
    const { server } = await start({ bearerToken: 't0ken' });
    assert.equal((await post(`${server.url}/v1/chat/completions`, user('x'))).status, 401);
    assert.equal(
      (
        await post(`${server.url}/v1/chat/completions`, user('x'), {
          authorization: 'Bearer nope!',
        })
      ).status,
      401,
    );
    assert.equal(
      (
        await post(`${server.url}/v1/chat/completions`, user('x'), {
          authorization: 'Bearer t0ken',
        })
      ).status,
      200,
    );
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  it('structured logs: one JSON-able entry per request with status and timings', async () => {
    const { server, logs } = await start();
    await post(`${server.url}/v1/chat/completions`, user('x'));
    const entry = logs.find((l) => l.msg === 'request' && l.path === '/v1/chat/completions')!;
    assert.equal(entry.status, 200);
    assert.equal(entry.refinement, 'refined');
    assert.equal(typeof entry.ms, 'number');
    assert.equal(JSON.parse(JSON.stringify(entry)).id, entry.id);
  });

  it('graceful shutdown: in-flight requests finish, new ones are refused, models are freed', async () => {
    const { server, gen, ref } = await start();
    const inflight = post(`${server.url}/v1/chat/completions`, {
      ...user('slow:400'),
      rl4qe: { refine: false },
    });
    await new Promise((r) => setTimeout(r, 100));
    const closing = server.close();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(
      ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message
        .content,
      'answer(slow:400)',
    );
    await closing;
    await assert.rejects(fetch(`${server.url}/health`));
    assert.ok(gen.disposed && ref.disposed);
    current = undefined;
  });
});
