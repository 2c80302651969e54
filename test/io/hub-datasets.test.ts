// Benchmarks from the Hub by name (data/hub.ts + io/hub fetchHubDatasetFiles) against a local
// Hub-layout server: DS-1000 from xlangai/DS-1000's test.jsonl (loadDs1000FromHub and
// `hf://datasets` paths) gives the same problems as data/ds1000.jsonl.gz; HumanEval and MBPP
// from parquet files shaped like their repositories' (scripts/fixtures_hub_parquet.py) give the
// rows of data/*.jsonl.gz when hyparquet is installed, and a clear error when it is not.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  canReadParquet,
  loadDs1000,
  loadDs1000FromHub,
  loadHumanEval,
  loadMbpp,
  loadTasks,
  parseHubDataPath,
  setHubDatasetFetcher,
} from '../../src/data/index.js';
import { fetchHubDatasetFiles } from '../../src/io/hub/index.js';
import { ConfigError, NetworkError, UnsupportedError } from '../../src/util/errors.js';
import { fakeHub, type FakeFile } from './fake-hub.js';
import { isolatedHfHome } from '../helpers/hf-env.js';

isolatedHfHome('rl4qe-hfdata-');
beforeEach(() => {
  setHubDatasetFetcher((req) => fetchHubDatasetFiles(req));
});
afterEach(() => {
  setHubDatasetFetcher(undefined);
});

const PARQUET = path.join('test', 'fixtures', 'io', 'hub-parquet');

function filesUnder(root: string): Record<string, FakeFile> {
  const out: Record<string, FakeFile> = {};
  const walk = (d: string, rel: string): void => {
    for (const n of fs.readdirSync(d)) {
      const p = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (fs.statSync(p).isDirectory()) walk(p, r);
      else out[r] = { data: fs.readFileSync(p), lfs: n.endsWith('.parquet') };
    }
  };
  walk(root, '');
  return out;
}

test('hf://datasets paths', () => {
  assert.deepEqual(parseHubDataPath('hf://datasets'), {});
  assert.deepEqual(parseHubDataPath('hf://datasets/xlangai/DS-1000'), { repo: 'xlangai/DS-1000' });
  assert.deepEqual(
    parseHubDataPath('hf://datasets/google-research-datasets/mbpp@main/full/*.parquet'),
    {
      repo: 'google-research-datasets/mbpp',
      revision: 'main',
      files: ['full/*.parquet'],
    },
  );
  assert.throws(() => parseHubDataPath('hf://datasets/onlyname'), ConfigError);
  assert.throws(() => parseHubDataPath('hf://datasets/a/b/../x'), ConfigError);
});

test('DS-1000 from xlangai/DS-1000 (test.jsonl) equals data/ds1000.jsonl.gz; cached for offline use', async () => {
  const local = await loadDs1000();
  const jsonl = gunzipSync(fs.readFileSync(path.join('data', 'ds1000.jsonl.gz')));
  const hub = await fakeHub({
    'datasets/xlangai/DS-1000': {
      files: { 'test.jsonl': { data: jsonl, lfs: true }, 'README.md': { data: Buffer.from('#') } },
    },
  });
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    const fromHub = await loadDs1000FromHub();
    assert.equal(fromHub.length, 1000);
    assert.deepEqual(fromHub, local);
    assert.ok(
      hub.log.some(
        (l) =>
          l.url ===
          `/datasets/xlangai/DS-1000/resolve/${hub.shaOf('datasets/xlangai/DS-1000')}/test.jsonl`,
      ),
    );
    // By name through the loaders every command uses: the benchmark's own repository.
    const tasks = await loadTasks({ dataset: 'ds1000', path: 'hf://datasets' });
    assert.deepEqual(tasks, await loadTasks({ dataset: 'ds1000' }));
    assert.equal(hub.downloads('test.jsonl').length, 1, 'downloaded once, then from the cache');
  } finally {
    await hub.close();
  }
  process.env.HF_HUB_OFFLINE = '1';
  assert.deepEqual(await loadDs1000({ path: 'hf://datasets/xlangai/DS-1000' }), local);
  // Not cached, offline: the error names the dataset and the cache.
  await assert.rejects(loadDs1000({ path: 'hf://datasets/other/ds' }), (e: unknown) => {
    assert.ok(e instanceof NetworkError);
    assert.match(
      e.message,
      /dataset other\/ds@main is not in the Hugging Face cache and HF_HUB_OFFLINE is set/,
    );
    return true;
  });
});

test('no Hub client registered: a NetworkError naming the dataset and the data/ default', async () => {
  setHubDatasetFetcher(undefined);
  await assert.rejects(loadDs1000FromHub(), (e: unknown) => {
    assert.ok(e instanceof NetworkError);
    assert.match(e.message, /hf:\/\/datasets\/xlangai\/DS-1000/);
    assert.match(e.hint ?? '', /setHubDatasetFetcher/);
    return true;
  });
});

test("HumanEval and MBPP from their repositories' parquet files (hyparquet) or a clear error", async () => {
  const hub = await fakeHub({
    'datasets/openai/openai_humaneval': { files: filesUnder(path.join(PARQUET, 'humaneval')) },
    'datasets/google-research-datasets/mbpp': { files: filesUnder(path.join(PARQUET, 'mbpp')) },
  });
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    if (!(await canReadParquet())) {
      await assert.rejects(loadHumanEval({ path: 'hf://datasets' }), (e: unknown) => {
        assert.ok(e instanceof UnsupportedError);
        assert.match(e.message, /reading \.parquet files needs the hyparquet package/);
        assert.match(e.hint ?? '', /npm install hyparquet/);
        return true;
      });
      return;
    }
    const he = await loadHumanEval({ path: 'hf://datasets' });
    assert.deepEqual(he, (await loadHumanEval()).slice(0, he.length));
    assert.equal(he.length, 4);
    const mb = await loadMbpp({ path: 'hf://datasets/google-research-datasets/mbpp' });
    assert.equal(mb.length, 16, 'four rows from each of the four split files');
    const all = new Map((await loadMbpp()).map((p) => [p.taskId, p]));
    for (const p of mb) assert.deepEqual(p, all.get(p.taskId), `mbpp task ${p.taskId}`);
    assert.deepEqual(
      mb.map((p) => p.taskId),
      [...mb.map((p) => p.taskId)].sort((a, b) => a - b),
    );
    assert.deepEqual([...new Set(mb.map((p) => p.split))].sort(), [
      'prompt',
      'test',
      'train',
      'validation',
    ]);
  } finally {
    await hub.close();
  }
});
