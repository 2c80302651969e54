// A second process for the cache tests (run with node, not a test file itself).
//   gen:    answer the requests named in IDS through a cached HTTP generator; print results + stats.
//   hammer: write rows as fast as possible forever (the parent kills it mid-write).
import { CachedGenerator, GenerationCache, OpenAIGenerator } from '../../src/generators/index.js';

const mode = process.argv[2];
const cache = new GenerationCache({ file: process.env.CACHE_FILE! });

if (mode === 'gen') {
  const g = new CachedGenerator(
    new OpenAIGenerator({ baseUrl: process.env.BASE_URL!, model: 'm1', retry: { maxRetries: 0 } }),
    cache,
  );
  const ids = process.env.IDS!.split(',');
  const results = await g.generate(
    ids.map((id) => ({
      id,
      messages: [{ role: 'user' as const, content: `q-${id}` }],
      params: { maxTokens: 5, temperature: 0 },
    })),
  );
  process.stdout.write(
    JSON.stringify({ results, stats: cache.stats(), size: cache.size() }) + '\n',
  );
  cache.close();
} else if (mode === 'hammer') {
  const identity = { backend: 'test', model: 'hammer' };
  let i = 0;
  for (;;) {
    const id = `${process.pid}-${i++}`;
    const r = { id, prompt: `p-${id}-${'x'.repeat(2000)}` };
    cache.put(`k-${id}`, identity, r, {
      ok: true,
      id,
      text: 'y'.repeat(4000),
      finishReason: 'stop',
      usage: { promptTokens: 1, completionTokens: 1 },
      latencyMs: 0,
      costUsd: 0,
      cached: false,
      attempts: 1,
    });
    if (i === 50) process.stdout.write('ready\n');
  }
}
