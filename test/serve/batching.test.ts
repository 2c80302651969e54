// Concurrent serve requests share the local engine's batches: four chat requests in flight at
// once are refined in one batch and answered in another (refiner and answer generator are one
// LocalEngineGenerator, as buildServeStack makes them for equal configs). The tiny Llama fixture
// keeps it fast; the speed itself is measured by `rl4qe bench generator`, not asserted here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { LocalEngineGenerator } from '../../src/generators/index.js';
import { PromptedRefiner, startServer } from '../../src/serve/index.js';

const FIX = 'test/fixtures/generators/local';

describe('rl4qe serve on the local engine', () => {
  it('four concurrent requests: 2 batches of 4 (refinements, then answers), each answer as alone', async () => {
    const engine = new LocalEngineGenerator({
      model: 'test/fixtures/models/tiny-llama',
      tokenizer: path.join(FIX, 'tokenizer'),
      maxBatchSize: 4,
      // Long, but a full batch ends the wait at once: the four requests never wait for it.
      batchWaitMs: 60_000,
    });
    const server = await startServer({
      // A short instruction: the tiny model's byte-level context is small.
      refiner: new PromptedRefiner({
        generator: engine,
        systemPrompt: 'Rewrite it.',
        params: { maxTokens: 4 },
      }),
      generator: engine,
      port: 0,
      log: () => {},
    });
    const ask = async (q: string): Promise<{ content: string; refined: string }> => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          messages: [{ role: 'user', content: q }],
          max_tokens: 4,
          temperature: 0,
        }),
      });
      const body = (await res.json()) as {
        choices: { message: { content: string } }[];
        rl4qe: { refined_query: string; refinement: { status: string } };
      };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.ok(['refined', 'empty'].includes(body.rl4qe.refinement.status), JSON.stringify(body));
      return { content: body.choices[0]?.message.content ?? '', refined: body.rl4qe.refined_query };
    };
    try {
      const qs = ['sum a list', 'sort a dict', 'merge two lists', 'reverse a string'];
      const s0 = engine.stats();
      const together = await Promise.all(qs.map(ask));
      const s1 = engine.stats();
      assert.deepEqual([s1.batches - s0.batches, s1.sequences - s0.sequences], [2, 8]);
      // Batching changes nothing in the answers: one request at a time gives the same.
      const wait0 = new LocalEngineGenerator({
        model: 'test/fixtures/models/tiny-llama',
        tokenizer: path.join(FIX, 'tokenizer'),
      });
      try {
        for (const [i, t] of together.entries()) {
          const [r] = await wait0.generate([
            {
              id: 'solo',
              messages: [{ role: 'user', content: t.refined || (qs[i] ?? '') }],
              params: { maxTokens: 4, temperature: 0 },
            },
          ]);
          assert.ok(r?.ok);
          assert.equal(t.content, r.text);
        }
      } finally {
        await wait0.dispose();
      }
    } finally {
      await server.close();
    }
  });
});
