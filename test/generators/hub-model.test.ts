// A Hub repo id wherever a model is taken: the local engine generator (what `--local`,
// `generator.model` and `refiner.model` construct) resolves `org/name[@rev]` through the one
// resolver into the Hugging Face cache, downloads it from the Hub once, then works offline; the
// run directory's model digest of the repo id equals that of its snapshot folder. Against a local
// server that speaks the Hub's API (test/io/fake-hub.ts), with the bf16 two-shard checkpoint
// fixture written by transformers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LocalEngineGenerator } from '../../src/generators/index.js';
import { modelDigest } from '../../src/train/run-dir.js';
import { fakeHubProcess } from '../io/fake-hub.js';
import { isolatedHfHome } from '../helpers/hf-env.js';

const hf = isolatedHfHome('rl4qe-hub-model-');

const CKPT = path.join('test', 'fixtures', 'io', 'hf-checkpoint', 'tiny-qwen2-bf16');

async function greedy(model: string): Promise<string> {
  const g = new LocalEngineGenerator({ model });
  try {
    const [r] = await g.generate([
      {
        id: 'q',
        messages: [{ role: 'user', content: 'hi' }],
        params: { maxTokens: 6, temperature: 0 },
      },
    ]);
    assert.ok(r?.ok, JSON.stringify(r));
    return r.text;
  } finally {
    await g.dispose();
  }
}

test('LocalEngineGenerator takes a Hub repo id: downloads once, then offline from the HF cache', async () => {
  const commit = 'c'.repeat(40);
  const files = Object.fromEntries(
    fs
      .readdirSync(CKPT)
      .map((f) => [f, { path: path.join(CKPT, f), lfs: f.endsWith('.safetensors') }]),
  );
  const hub = await fakeHubProcess({ repos: { 'org/tiny-qwen2': { sha: commit, files } } });
  let fromHub: string;
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    fromHub = await greedy('org/tiny-qwen2');
  } finally {
    await hub.close();
  }
  const snap = path.join(hf.home, 'hub', 'models--org--tiny-qwen2', 'snapshots', commit);
  assert.ok(fs.existsSync(path.join(snap, 'model-00002-of-00002.safetensors')));
  // The same text from the local checkpoint folder: the repo id loaded the same weights.
  assert.equal(fromHub, await greedy(CKPT));
  // Offline (the server is gone): the cached snapshot, by branch.
  process.env.HF_HUB_OFFLINE = '1';
  assert.equal(await greedy('org/tiny-qwen2@main'), fromHub);
  // A run trained from the repo id and one trained from the snapshot share the base digest.
  assert.equal(modelDigest('org/tiny-qwen2'), modelDigest(snap));
  // Not cached and offline: a clear error before any work, naming the repo.
  assert.throws(() => new LocalEngineGenerator({ model: 'org/absent' }), /org\/absent/);
});
