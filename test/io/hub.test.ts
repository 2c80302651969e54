// Hub downloads (@huggingface/hub underneath) against a local Hub-layout server (fake-hub.ts):
// the Hugging Face cache layout (blobs/<etag>, snapshots/<commit>, refs/<rev>), resume after a
// dropped connection and of an interrupted run's .incomplete, checksums, the token (HF_TOKEN and
// the `hf auth login` file), HF_HOME / HF_HUB_CACHE / HF_ENDPOINT / HF_HUB_OFFLINE, errors
// (401, 404, unreachable), and a cache written the way Python writes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetworkError, NotFoundError } from '../../src/util/errors.js';
import {
  DEFAULT_INCLUDE,
  downloadSnapshot,
  fetchHubDatasetFiles,
  globToRegExp,
  hfEnv,
  HubUnreachableError,
  type PullProgress,
} from '../../src/io/hub/index.js';
import { fakeHub, gitBlobSha1, sha256 } from './fake-hub.js';
import { isolatedHfHome } from '../helpers/hf-env.js';

const hf = isolatedHfHome('rl4qe-hfhome-');

const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) & 0xff));
const cfg = Buffer.from('{"model_type":"llama"}');
const tok = Buffer.from('{"model":{}}');

test('glob patterns', () => {
  assert.ok(globToRegExp('*.safetensors').test('model-00001-of-00002.safetensors'));
  assert.ok(!globToRegExp('*.safetensors').test('sub/model.safetensors'));
  assert.ok(globToRegExp('**/*.json').test('a/b/c.json'));
  assert.ok(globToRegExp('**/*.json').test('c.json'));
  assert.ok(globToRegExp('full/*.parquet').test('full/test-00000-of-00001.parquet'));
  assert.ok(globToRegExp('config.json').test('config.json'));
  assert.ok(!globToRegExp('config.json').test('configXjson'));
});

test('HF environment: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE, token sources', () => {
  assert.equal(hfEnv().hubCache, path.join(hf.home, 'hub'));
  assert.equal(hfEnv().endpoint, 'https://huggingface.co');
  assert.equal(hfEnv().token, undefined);
  fs.writeFileSync(path.join(hf.home, 'token'), 'hf_saved_login\n');
  assert.equal(hfEnv().token, 'hf_saved_login');
  assert.equal(hfEnv().tokenSource, path.join(hf.home, 'token'));
  process.env.HF_TOKEN = 'hf_env';
  assert.equal(hfEnv().token, 'hf_env', 'HF_TOKEN wins over the saved login');
  process.env.HF_HUB_CACHE = path.join(hf.home, 'elsewhere');
  process.env.HF_ENDPOINT = 'http://mirror.example/';
  process.env.HF_HUB_OFFLINE = 'yes';
  const e = hfEnv();
  assert.equal(e.hubCache, path.join(hf.home, 'elsewhere'));
  assert.equal(e.endpoint, 'http://mirror.example');
  assert.equal(e.offline, true);
  process.env.HF_HUB_OFFLINE = '0';
  assert.equal(hfEnv().offline, false);
});

test('download into the HF cache layout; resume after a dropped connection; cached by commit; offline', async () => {
  const hub = await fakeHub({
    'org/tiny': {
      files: {
        'config.json': { data: cfg },
        'tokenizer.json': { data: tok },
        'model.safetensors': { data: big, lfs: true, dropAfter: 100_000 },
        'pytorch_model.bin': { data: Buffer.from('not wanted') },
        'README.md': { data: Buffer.from('# hi') },
      },
    },
  });
  const events: PullProgress[] = [];
  const commit = hub.shaOf('org/tiny');
  const repoDir = path.join(hf.home, 'hub', 'models--org--tiny');
  try {
    const r = await downloadSnapshot({
      repo: 'org/tiny',
      endpoint: hub.endpoint,
      include: DEFAULT_INCLUDE,
      onProgress: (p) => events.push(p),
    });
    assert.equal(r.commit, commit);
    assert.equal(r.dir, path.join(repoDir, 'snapshots', commit));
    assert.deepEqual(r.files.map((f) => f.name).sort(), [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    // The layout Python's huggingface_hub writes and reads.
    assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), commit);
    const link = path.join(r.dir, 'model.safetensors');
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.equal(fs.readlinkSync(link), path.join('..', '..', 'blobs', sha256(big)));
    assert.equal(
      fs.readlinkSync(path.join(r.dir, 'config.json')),
      path.join('..', '..', 'blobs', gitBlobSha1(cfg)),
    );
    assert.deepEqual(fs.readFileSync(link), big);
    assert.deepEqual(
      fs.readdirSync(path.join(repoDir, 'blobs')).sort(),
      [gitBlobSha1(cfg), gitBlobSha1(tok), sha256(big)].sort(),
    );
    // The dropped connection was resumed, not restarted.
    const gets = hub.downloads('model.safetensors');
    assert.deepEqual(
      gets.map((g) => g.range),
      [undefined, 'bytes=100000-'],
    );
    assert.ok(
      events.some(
        (e) => e.phase === 'retry' && e.file === 'model.safetensors' && e.done === 100_000,
      ),
    );
    assert.ok(
      hub.log.every((l) => l.auth === undefined),
      'no token configured, none sent',
    );

    // Second run: nothing downloaded (two API calls: the commit and the file list).
    const before = hub.log.length;
    const r2 = await downloadSnapshot({
      repo: 'org/tiny',
      endpoint: hub.endpoint,
      include: DEFAULT_INCLUDE,
    });
    assert.ok(r2.files.every((f) => f.cached));
    assert.equal(hub.log.length, before + 2);

    // HF_HUB_OFFLINE: the cache only, no request at all.
    process.env.HF_HUB_OFFLINE = '1';
    const n = hub.log.length;
    const r3 = await downloadSnapshot({
      repo: 'org/tiny',
      endpoint: hub.endpoint,
      include: DEFAULT_INCLUDE,
    });
    assert.equal(hub.log.length, n);
    assert.equal(r3.fromCache, true);
    assert.equal(r3.commit, commit);
    await assert.rejects(
      downloadSnapshot({ repo: 'org/never', endpoint: hub.endpoint }),
      (e: unknown) =>
        e instanceof NetworkError &&
        /not in the Hugging Face cache and HF_HUB_OFFLINE is set/.test(e.message),
    );
    delete process.env.HF_HUB_OFFLINE;
  } finally {
    await hub.close();
  }
  // Hub unreachable but the revision cached: served from the cache (Python's fallback).
  const r4 = await downloadSnapshot({
    repo: 'org/tiny',
    endpoint: hub.endpoint,
    include: ['*.json'],
  });
  assert.equal(r4.fromCache, true);
  assert.deepEqual(
    r4.files.map((f) => f.name),
    ['config.json', 'tokenizer.json'],
  );
  // Unreachable and not cached: which URL, and the HF_HUB_OFFLINE hint.
  await assert.rejects(
    downloadSnapshot({ repo: 'org/none', endpoint: hub.endpoint }),
    (e: unknown) => {
      assert.ok(e instanceof HubUnreachableError);
      assert.match(e.message, /cannot reach the Hub to download org\/none@main/);
      assert.match(
        e.where ?? '',
        /^http:\/\/127\.0\.0\.1:\d+\/api\/models\/org\/none\/revision\/main/,
      );
      assert.match(e.hint ?? '', /HF_HUB_OFFLINE=1/);
      return true;
    },
  );
});

test("continues an interrupted run's blobs/<etag>.incomplete", async () => {
  const hub = await fakeHub({
    'org/w': { files: { 'model.safetensors': { data: big, lfs: true } } },
  });
  try {
    const blobs = path.join(hf.home, 'hub', 'models--org--w', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${sha256(big)}.incomplete`), big.subarray(0, 123_456));
    const r = await downloadSnapshot({ repo: 'org/w', endpoint: hub.endpoint });
    assert.deepEqual(fs.readFileSync(r.files[0]!.path), big);
    assert.deepEqual(
      hub.downloads('model.safetensors').map((g) => g.range),
      ['bytes=123456-'],
    );
    assert.equal(fs.existsSync(path.join(blobs, `${sha256(big)}.incomplete`)), false);
  } finally {
    await hub.close();
  }
});

test('checksums, 401 and the token (HF_TOKEN, saved login, any prefix), 404, include, revisions', async () => {
  const hub = await fakeHub({
    'org/bad': { files: { 'model.safetensors': { data: big, lfs: true, corrupt: true } } },
    'org/badsmall': { files: { 'config.json': { data: Buffer.from('{"a":1}'), corrupt: true } } },
    'org/private': { token: 'hf_s3cret', files: { 'config.json': { data: Buffer.from('{}') } } },
    'org/mirror': {
      token: 'mirror-token-without-prefix',
      files: { 'config.json': { data: Buffer.from('{}') } },
    },
    'org/gguf': {
      revisions: ['v1'],
      files: {
        'config.json': { data: Buffer.from('{}') },
        'q/model-q4.gguf': { data: Buffer.from('GGUF....'), lfs: true },
      },
    },
  });
  const cache = path.join(hf.home, 'hub');
  try {
    await assert.rejects(
      downloadSnapshot({ repo: 'org/bad', endpoint: hub.endpoint, attempts: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError);
        assert.match(e.message, /checksum mismatch for model\.safetensors/);
        assert.match(e.expected ?? '', /^sha256 [0-9a-f]{64}$/);
        return true;
      },
    );
    assert.deepEqual(
      fs.readdirSync(path.join(cache, 'models--org--bad', 'blobs')),
      [],
      'bad blob removed',
    );
    await assert.rejects(
      downloadSnapshot({ repo: 'org/badsmall', endpoint: hub.endpoint }),
      /checksum mismatch for config\.json[\s\S]*git blob sha1/,
    );
    await assert.rejects(
      downloadSnapshot({ repo: 'org/private', endpoint: hub.endpoint }),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError);
        assert.match(e.message, /refused access to org\/private@main \(HTTP 401\)/);
        assert.match(e.hint ?? '', /hf auth login.*HF_TOKEN/);
        return true;
      },
    );
    // The token `hf auth login` saved in $HF_HOME/token.
    fs.writeFileSync(path.join(hf.home, 'token'), 'hf_s3cret\n');
    const ok = await downloadSnapshot({ repo: 'org/private', endpoint: hub.endpoint });
    assert.equal(fs.readFileSync(ok.files[0]!.path, 'utf8'), '{}');
    assert.ok(hub.log.some((l) => l.auth === 'Bearer hf_s3cret'));
    // A wrong HF_TOKEN wins over the saved login, and the hint says where it came from.
    process.env.HF_TOKEN = 'hf_wrong';
    await assert.rejects(
      downloadSnapshot({
        repo: 'org/private',
        endpoint: hub.endpoint,
        cacheDir: path.join(hf.home, 'c2'),
      }),
      (e: unknown) =>
        e instanceof NetworkError && /token from HF_TOKEN lacks access/.test(e.hint ?? ''),
    );
    // A mirror's token need not start with hf_ (the library alone would refuse it).
    process.env.HF_TOKEN = 'mirror-token-without-prefix';
    await downloadSnapshot({ repo: 'org/mirror', endpoint: hub.endpoint });
    delete process.env.HF_TOKEN;
    await assert.rejects(
      downloadSnapshot({ repo: 'org/missing', endpoint: hub.endpoint }),
      NotFoundError,
    );
    await assert.rejects(
      downloadSnapshot({ repo: 'org/gguf', endpoint: hub.endpoint, revision: 'nope' }),
      NotFoundError,
    );
    const d = await downloadSnapshot({
      repo: 'org/gguf',
      endpoint: hub.endpoint,
      revision: 'v1',
      include: DEFAULT_INCLUDE,
    });
    assert.deepEqual(
      d.files.map((f) => f.name),
      ['config.json'],
      'default include: no GGUF',
    );
    assert.equal(
      fs.readFileSync(path.join(cache, 'models--org--gguf', 'refs', 'v1'), 'utf8'),
      d.commit,
    );
    const g = await downloadSnapshot({
      repo: 'org/gguf',
      endpoint: hub.endpoint,
      include: ['**/*.gguf'],
    });
    assert.deepEqual(
      g.files.map((f) => path.relative(g.dir, f.path)),
      [path.join('q', 'model-q4.gguf')],
    );
    // By commit: no API call for the revision's own files once cached.
    const byCommit = await downloadSnapshot({
      repo: 'org/gguf',
      endpoint: hub.endpoint,
      revision: d.commit,
      include: ['config.json'],
    });
    assert.ok(byCommit.files[0]!.cached);
    await assert.rejects(
      downloadSnapshot({ repo: 'org/gguf', endpoint: hub.endpoint, include: ['*.bin'] }),
      /no files of the repository match/,
    );
    await assert.rejects(
      downloadSnapshot({ repo: '../etc', endpoint: hub.endpoint }),
      /invalid Hugging Face repository id/,
    );
  } finally {
    await hub.close();
  }
});

test('HF_ENDPOINT and HF_HUB_CACHE are honoured; datasets go to datasets--org--name', async () => {
  const rows = Buffer.from('{"a":1}\n');
  const hub = await fakeHub({
    'datasets/org/data': {
      files: { 'test.jsonl': { data: rows }, 'other.txt': { data: Buffer.from('x') } },
    },
  });
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    process.env.HF_HUB_CACHE = path.join(hf.home, 'custom-cache');
    const [p, ...more] = await fetchHubDatasetFiles({ repo: 'org/data', files: ['*.jsonl'] });
    assert.equal(more.length, 0);
    assert.ok(
      p!.startsWith(
        path.join(hf.home, 'custom-cache', 'datasets--org--data', 'snapshots') + path.sep,
      ),
    );
    assert.deepEqual(fs.readFileSync(p!), rows);
    assert.ok(hub.log.some((l) => l.url.startsWith('/datasets/org/data/resolve/')));
  } finally {
    await hub.close();
  }
});

test('a cache written the way Python writes it is used without a download', async () => {
  // huggingface_hub's layout: blobs named by etag, relative symlinks, refs/main.
  const commit = 'c0ffee'.padEnd(40, '0');
  const repoDir = path.join(hf.home, 'hub', 'models--org--py');
  const snap = path.join(repoDir, 'snapshots', commit);
  fs.mkdirSync(path.join(repoDir, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
  fs.mkdirSync(snap, { recursive: true });
  fs.writeFileSync(path.join(repoDir, 'blobs', gitBlobSha1(cfg)), cfg);
  fs.symlinkSync(path.join('..', '..', 'blobs', gitBlobSha1(cfg)), path.join(snap, 'config.json'));
  fs.writeFileSync(path.join(repoDir, 'refs', 'main'), commit);
  const hub = await fakeHub({ 'org/py': { sha: commit, files: { 'config.json': { data: cfg } } } });
  try {
    const r = await downloadSnapshot({
      repo: 'org/py',
      endpoint: hub.endpoint,
      include: ['config.json'],
    });
    assert.equal(r.commit, commit);
    assert.ok(r.files[0]!.cached);
    assert.equal(hub.downloads().length, 0);
  } finally {
    await hub.close();
  }
});

test('overlapping downloads keep stdout clean and give console.debug back', async () => {
  const hub = await fakeHub({
    'org/a': { files: { 'config.json': { data: cfg } } },
    'org/b': { files: { 'config.json': { data: tok } } },
  });
  const original = console.debug;
  const printed: unknown[] = [];
  console.debug = (...a: unknown[]) => void printed.push(a);
  const mine = console.debug;
  try {
    await Promise.all([
      downloadSnapshot({ repo: 'org/a', endpoint: hub.endpoint }),
      downloadSnapshot({ repo: 'org/b', endpoint: hub.endpoint }),
    ]);
    assert.equal(console.debug, mine);
    assert.deepEqual(printed, [], "the library's 'Downloading …' lines were silenced");
  } finally {
    console.debug = original;
    await hub.close();
  }
});
