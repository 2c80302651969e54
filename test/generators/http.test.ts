// The OpenAI-compatible backend against a real fault-injecting HTTP server on 127.0.0.1:
// retries, Retry-After, timeouts, bad bodies, resets, truncation, auth, unknown models, budget.
// No fetch mocks: every byte goes over a socket.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Budget,
  OpenAIGenerator,
  estimateRequests,
  estimateRun,
  summarizeResults,
  type GenerationRequest,
  type GenerationResult,
  type OpenAIGeneratorOptions,
} from '../../src/generators/index.js';
import { ConfigError } from '../../src/util/errors.js';
import { startFaultServer, type FaultServer } from './fault-server.js';

const fast = { maxRetries: 2, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 5000 };
const chat = (id: string, content = id): GenerationRequest => ({
  id,
  messages: [{ role: 'user', content }],
  params: { maxTokens: 50, temperature: 0 },
});

/** The failure contract: no text anywhere, a kind, a message naming backend and request. */
function assertFailure(r: GenerationResult, kind: string, id: string): void {
  assert.equal(r.ok, false, `expected a ${kind} failure, got ${JSON.stringify(r)}`);
  if (r.ok) return;
  assert.equal(r.kind, kind, r.message);
  assert.equal('text' in r, false, 'a failure must never carry text');
  assert.match(r.message, /openai backend http:\/\/127\.0\.0\.1/);
  assert.match(r.message, new RegExp(`request ${id}`));
}

describe('OpenAIGenerator against a fault-injecting server', () => {
  let fs: FaultServer;
  const gen = (scenario: string, o: Partial<OpenAIGeneratorOptions> = {}): OpenAIGenerator =>
    new OpenAIGenerator({
      baseUrl: `${fs.url}/${scenario}/v1`,
      model: 'm1',
      retry: fast,
      timeoutMs: 2000,
      ...o,
    });

  before(async () => {
    fs = await startFaultServer();
  });
  after(async () => {
    await fs.close();
  });

  it('chat and raw completions: text, usage, finish reason, request body', async () => {
    const g = gen('ok');
    const [a, b] = await g.generate([
      {
        id: 'a',
        system: 'sys',
        messages: [{ role: 'user', content: 'hi' }],
        params: { maxTokens: 7, temperature: 0.5, stop: ['\n'], seed: 3 },
      },
      { id: 'b', prompt: 'def f(' },
    ]);
    assert.ok(a!.ok && b!.ok);
    assert.equal(a.text, 'echo:hi');
    assert.equal(a.finishReason, 'stop');
    assert.deepEqual(a.usage, { promptTokens: 100, completionTokens: 50 });
    assert.equal(a.attempts, 1);
    assert.equal(a.cached, false);
    assert.equal(b.text, 'echo:def f(');
    assert.equal(b.finishReason, 'length');
    const chatHit = fs.hits.find((h) => h.scenario === 'ok' && h.path === '/v1/chat/completions')!;
    assert.deepEqual(chatHit.body, {
      model: 'm1',
      stream: false,
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      temperature: 0.5,
      max_tokens: 7,
      seed: 3,
      stop: ['\n'],
    });
    assert.ok(
      fs.hits.some(
        (h) => h.scenario === 'ok' && h.path === '/v1/completions' && h.body.prompt === 'def f(',
      ),
    );
  });

  it('retries 500s and succeeds on the third attempt', async () => {
    const [r] = await gen('500-twice').generate([chat('r1')]);
    assert.ok(r!.ok, JSON.stringify(r));
    assert.equal(r.attempts, 3);
    assert.equal(fs.count('500-twice'), 3);
  });

  it('gives up after maxRetries with server_error and the status', async () => {
    const [r] = await gen('always-503').generate([chat('r2')]);
    assertFailure(r!, 'server_error', 'r2');
    assert.ok(!r!.ok && r!.attempts === 3 && r!.status === 503);
    assert.equal(fs.count('always-503'), 3);
  });

  it('honours Retry-After: the retry comes no sooner than the server asked', async () => {
    const [r] = await gen('retry-after-then-ok').generate([chat('ra')]);
    assert.ok(r!.ok);
    assert.equal(r.attempts, 2);
    const times = fs.hits.filter((h) => h.scenario === 'retry-after-then-ok').map((h) => h.at);
    // Backoff alone is at most 20 ms here; only Retry-After: 1 explains a gap of a second.
    assert.ok(times[1]! - times[0]! >= 950, `gap ${times[1]! - times[0]!} ms`);
  });

  it('does not wait for a Retry-After beyond maxRetryAfterMs', async () => {
    const [r] = await gen('retry-after-huge').generate([chat('rh')]);
    assertFailure(r!, 'rate_limited', 'rh');
    assert.equal(fs.count('retry-after-huge'), 1);
    assert.match(r!.ok ? '' : r!.message, /3600 s/);
  });

  it('rate_limited after every retry', async () => {
    const [r] = await gen('always-429').generate([chat('rl')]);
    assertFailure(r!, 'rate_limited', 'rl');
    assert.equal(fs.count('always-429'), 3);
  });

  it('times out slow answers (per attempt, retried) with a hint', async () => {
    const [r] = await gen('slow', { timeoutMs: 150, retry: { ...fast, maxRetries: 1 } }).generate([
      chat('t1'),
    ]);
    assertFailure(r!, 'timeout', 't1');
    assert.ok(!r!.ok && r!.attempts === 2 && /timeoutMs/.test(r!.hint ?? ''));
  });

  it('malformed JSON, HTML, null content and no choices are bad_response, never text', async () => {
    for (const s of ['malformed', 'html', 'no-text', 'no-choices']) {
      const [r] = await gen(s, { retry: { ...fast, maxRetries: 0 } }).generate([chat(`b-${s}`)]);
      assertFailure(r!, 'bad_response', `b-${s}`);
    }
  });

  it('reset connections and truncated bodies are network failures after retries', async () => {
    for (const s of ['reset', 'truncated']) {
      const [r] = await gen(s).generate([chat(`n-${s}`)]);
      assertFailure(r!, 'network', `n-${s}`);
      assert.equal(r!.attempts, 3);
      assert.equal(fs.count(s), 3);
    }
  });

  it('a wrong base URL (nothing listening) is a network failure naming the URL', async () => {
    const g = new OpenAIGenerator({
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      retry: { ...fast, maxRetries: 1 },
    });
    const [r] = await g.generate([chat('w')]);
    assert.ok(
      !r!.ok &&
        r!.kind === 'network' &&
        r!.message.includes('127.0.0.1:9') &&
        /baseUrl/.test(r!.hint ?? ''),
    );
  });

  it('auth: 401 is not retried and says what to set; the key from the environment works', async () => {
    const [r] = await gen('auth').generate([chat('a1')]);
    assertFailure(r!, 'auth', 'a1');
    assert.equal(fs.count('auth'), 1);
    process.env.RL4QE_TEST_KEY = 'sekrit';
    const [ok] = await gen('auth', { apiKeyEnv: 'RL4QE_TEST_KEY' }).generate([chat('a2')]);
    assert.ok(ok!.ok);
    assert.equal(fs.hits.at(-1)!.auth, 'Bearer sekrit');
  });

  it('OPENAI_BASE_URL and OPENAI_API_KEY are used when the options give no URL and no key, as in the SDKs', async () => {
    const saved = [process.env.OPENAI_BASE_URL, process.env.OPENAI_API_KEY];
    try {
      process.env.OPENAI_BASE_URL = `${fs.url}/auth/v1`;
      process.env.OPENAI_API_KEY = 'sekrit';
      const g = new OpenAIGenerator({ model: 'm1', retry: fast });
      assert.equal(g.identity.backend, `openai:${fs.url}/auth/v1`);
      const [r] = await g.generate([chat('env1')]);
      assert.ok(r!.ok, JSON.stringify(r));
      assert.equal(fs.hits.at(-1)!.auth, 'Bearer sekrit');
      // Options win over the environment: the URL given, the key variable named.
      process.env.RL4QE_OTHER_KEY = 'other';
      const h = new OpenAIGenerator({
        baseUrl: `${fs.url}/ok/v1`,
        model: 'm1',
        apiKeyEnv: 'RL4QE_OTHER_KEY',
        retry: fast,
      });
      const [s] = await h.generate([chat('env2')]);
      assert.ok(s!.ok);
      assert.deepEqual([fs.hits.at(-1)!.scenario, fs.hits.at(-1)!.auth], ['ok', 'Bearer other']);
      // Neither the option nor the variable: OpenAI's own URL (nothing is sent here).
      delete process.env.OPENAI_BASE_URL;
      assert.equal(
        new OpenAIGenerator({ model: 'm1' }).identity.backend,
        'openai:https://api.openai.com/v1',
      );
      process.env.OPENAI_BASE_URL = 'not a url';
      assert.throws(
        () => new OpenAIGenerator({ model: 'm1' }),
        (e: unknown) => e instanceof ConfigError && /OPENAI_BASE_URL/.test(e.message),
      );
    } finally {
      for (const [k, v] of [
        ['OPENAI_BASE_URL', saved[0]],
        ['OPENAI_API_KEY', saved[1]],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      delete process.env.RL4QE_OTHER_KEY;
    }
  });

  it('missing API key variable and bad URLs are ConfigErrors at construction', () => {
    delete process.env.RL4QE_MISSING_KEY;
    assert.throws(
      () => gen('ok', { apiKeyEnv: 'RL4QE_MISSING_KEY' }),
      (e: unknown) => e instanceof ConfigError && /RL4QE_MISSING_KEY/.test(e.message),
    );
    assert.throws(
      () => new OpenAIGenerator({ baseUrl: 'localhost:8080', model: 'm' }),
      ConfigError,
    );
    assert.throws(() => new OpenAIGenerator({ baseUrl: 'not a url', model: 'm' }), ConfigError);
  });

  it('unknown model: 404 is not_found with a hint; preflight names the known models', async () => {
    const [r] = await gen('not-found', { model: 'gpt-99' }).generate([chat('nf')]);
    assertFailure(r!, 'not_found', 'nf');
    assert.match(r!.ok ? '' : (r!.hint ?? ''), /gpt-99/);
    await assert.rejects(
      gen('ok', { model: 'gpt-99' }).preflight(),
      (e: unknown) => e instanceof ConfigError && /m1, m2/.test(e.message),
    );
    assert.deepEqual(await gen('ok').preflight(), ['m1', 'm2']);
  });

  it('400 is bad_request, not retried; invalid request objects never reach the server', async () => {
    const [r] = await gen('bad-request').generate([chat('br')]);
    assertFailure(r!, 'bad_request', 'br');
    assert.equal(fs.count('bad-request'), 1);
    const before = fs.hits.length;
    const bad = await gen('ok').generate([
      { id: 'both', messages: [{ role: 'user', content: 'x' }], prompt: 'y' },
      { id: 'neither' },
      { id: 'temp', prompt: 'x', params: { temperature: -1 } },
    ]);
    for (const b of bad) assert.ok(!b.ok && b.kind === 'bad_request' && b.attempts === 0);
    assert.equal(fs.hits.length, before);
  });

  it('missing usage is estimated, so cost accounting never sees NaN', async () => {
    const [r] = await gen('no-usage', {
      prices: { m1: { inputPerMTok: 1, outputPerMTok: 2 } },
    }).generate([chat('u', 'abcdefgh')]);
    assert.ok(
      r!.ok &&
        r.usage.promptTokens > 0 &&
        r.usage.completionTokens > 0 &&
        Number.isFinite(r.costUsd) &&
        r.costUsd > 0,
    );
  });

  it('concurrency limit: never more requests in flight than allowed', async () => {
    const g = gen('slow', { concurrency: 2, timeoutMs: 5000, retry: { ...fast, maxRetries: 0 } });
    const t0 = fs.count('slow');
    const p = g.generate([chat('c1'), chat('c2'), chat('c3'), chat('c4')]);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(
      fs.count('slow') - t0,
      2,
      'only 2 requests may be on the wire before the first answers',
    );
    const rs = await p;
    assert.ok(rs.every((r) => r.ok));
    assert.equal(fs.count('slow') - t0, 4);
  });

  it('abort: pending requests come back as aborted failures', async () => {
    const ac = new AbortController();
    const g = gen('slow', { concurrency: 1, timeoutMs: 5000 });
    const p = g.generate([chat('x1'), chat('x2')], { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const rs = await p;
    for (const r of rs) assert.ok(!r.ok && r.kind === 'aborted');
  });

  it('budget: stops cleanly at the cap — budget_exceeded without a call, spend never above the cap', async () => {
    // Each answer reports 100 + 50 tokens; at $1000 / MTok that is $0.15 per request.
    const prices = { m1: { inputPerMTok: 1000, outputPerMTok: 1000 } };
    const budget = new Budget(0.5);
    const g = gen('ok', { prices, budget, concurrency: 1 });
    const before = fs.count('ok');
    const rs = await g.generate(Array.from({ length: 10 }, (_, i) => chat(`bud${i}`)));
    const s = summarizeResults(rs);
    assert.equal(s.completions, 3);
    assert.equal(s.byKind.budget_exceeded, 7);
    assert.equal(fs.count('ok') - before, 3, 'no call after the budget closed');
    for (const r of rs.filter((x) => !x.ok)) assertFailure(r, 'budget_exceeded', r.id);
    assert.ok(Math.abs(budget.spentUsd - 0.45) < 1e-9);
    assert.ok(budget.exhausted);
    const [later] = await g.generate([chat('later')]);
    assert.ok(!later!.ok && later!.kind === 'budget_exceeded' && later!.attempts === 0);
    assert.throws(
      () => gen('ok', { budget: new Budget(1) }),
      ConfigError,
      'a budget without a price is refused',
    );
  });

  it('dry run: calls, tokens and cost before spending anything', () => {
    const reqs = [chat('d1', 'x'.repeat(400)), chat('d2', 'y'.repeat(400))];
    const e = estimateRequests(reqs, {
      model: 'm1',
      prices: { 'm*': { inputPerMTok: 2, outputPerMTok: 8 } },
      defaultMaxTokens: 100,
    });
    assert.equal(e.calls, 2);
    assert.equal(e.maxCompletionTokens, 100);
    // 3 framing + 4 per message + 100 content tokens = 107 per request.
    assert.equal(e.promptTokens, 214);
    assert.ok(Math.abs(e.maxCostUsd - (214 * 2 + 100 * 8) / 1e6) < 1e-12);
    const cached = estimateRequests(reqs, {
      model: 'm1',
      defaultMaxTokens: 10,
      isCached: (r) => r.id === 'd1',
    });
    assert.equal(cached.calls, 1);
    assert.equal(cached.cachedCalls, 1);
    assert.equal(cached.maxCostUsd, 0, 'no price: no cost');
    const run = estimateRun({
      steps: 100,
      queriesPerStep: 8,
      samplesPerQuery: 4,
      promptTokens: 500,
      maxTokens: 512,
      model: 'deepseek-chat',
      prices: { 'deepseek-chat': { inputPerMTok: 0.27, outputPerMTok: 1.1 } },
    });
    assert.equal(run.calls, 3200);
    assert.ok(Math.abs(run.maxCostUsd - (3200 * (500 * 0.27 + 512 * 1.1)) / 1e6) < 1e-9);
  });
});
