// rl4qe pull against a local HTTP server on 127.0.0.1 that serves the Hub's URL layout from
// memory: file list API, resolve URLs with Range support, a connection dropped mid-file (resume),
// a checksum mismatch, 401 without a token, 404, and no server at all (offline).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NetworkError, NotFoundError } from '../../util/errors.js';
import { globToRegExp, pullModel, type PullProgress } from './hub.js';

interface FakeFile {
  data: Buffer;
  lfs?: boolean;
  /** Serve this many bytes, then destroy the socket (first `times` requests). */
  dropAfter?: number;
  dropTimes?: number;
  /** Serve different bytes than the listing's checksum describes. */
  corrupt?: boolean;
}

interface FakeRepo {
  files: Record<string, FakeFile>;
  token?: string;
  sha?: string;
}

function blobSha1(b: Buffer): string {
  return createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}

async function fakeHub(repos: Record<string, FakeRepo>) {
  const log: { url: string; range?: string; auth?: string }[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    log.push({ url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = api?.[1] ?? resolve?.[1];
    const repo = repoId ? repos[repoId] : undefined;
    if (!repo) {
      res.writeHead(404).end('{"error":"Repository not found"}');
      return;
    }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      res.writeHead(401).end('{"error":"Invalid credentials"}');
      return;
    }
    if (api) {
      const siblings = Object.entries(repo.files).map(([name, f]) => ({
        rfilename: name,
        size: f.data.length,
        blobId: f.lfs ? 'ffff' : blobSha1(f.data),
        ...(f.lfs
          ? {
              lfs: {
                sha256: createHash('sha256').update(f.data).digest('hex'),
                size: f.data.length,
              },
            }
          : {}),
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: repoId, sha: repo.sha ?? 'abc123', siblings }));
      return;
    }
    const name = decodeURIComponent(resolve![3]);
    const f = repo.files[name];
    if (!f) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    let body = f.corrupt ? Buffer.from(f.data).fill(0x41, 0, 4) : f.data;
    let status = 200;
    const headers: Record<string, string | number> = {};
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      body = body.subarray(start);
      status = 206;
    }
    headers['content-length'] = body.length;
    res.writeHead(status, headers);
    if (f.dropAfter !== undefined && (f.dropTimes ?? 1) > 0) {
      f.dropTimes = (f.dropTimes ?? 1) - 1;
      res.write(body.subarray(0, f.dropAfter), () => res.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { endpoint, log, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-hub-'));
}

const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) & 0xff));

test('glob patterns', () => {
  assert.ok(globToRegExp('*.safetensors').test('model-00001-of-00002.safetensors'));
  assert.ok(!globToRegExp('*.safetensors').test('sub/model.safetensors'));
  assert.ok(globToRegExp('**/*.json').test('a/b/c.json'));
  assert.ok(globToRegExp('**/*.json').test('c.json'));
  assert.ok(globToRegExp('config.json').test('config.json'));
  assert.ok(!globToRegExp('config.json').test('configXjson'));
});

test('pull: default files, resume after a dropped connection, checksums, cache reuse, offline', async () => {
  const hub = await fakeHub({
    'org/tiny': {
      files: {
        'config.json': { data: Buffer.from('{"model_type":"llama"}') },
        'tokenizer.json': { data: Buffer.from('{"model":{}}') },
        'model.safetensors': { data: big, lfs: true, dropAfter: 100_000 },
        'pytorch_model.bin': { data: Buffer.from('not wanted') },
        'README.md': { data: Buffer.from('# hi') },
      },
    },
  });
  const cacheDir = tmp();
  const events: PullProgress[] = [];
  try {
    const r = await pullModel({
      repo: 'org/tiny',
      endpoint: hub.endpoint,
      cacheDir,
      onProgress: (p) => events.push(p),
    });
    assert.equal(r.commit, 'abc123');
    assert.deepEqual(r.files.map((f) => path.basename(f.path)).sort(), [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    const model = path.join(r.dir, 'model.safetensors');
    assert.deepEqual(fs.readFileSync(model), big);
    assert.equal(fs.existsSync(`${model}.partial`), false);
    // The second request for the weights resumed where the dropped one stopped.
    const gets = hub.log.filter((l) => l.url.endsWith('/model.safetensors'));
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, undefined);
    assert.equal(gets[1].range, 'bytes=100000-');
    assert.ok(events.some((e) => e.phase === 'retry' && e.file === 'model.safetensors'));
    assert.ok(hub.log.every((l) => l.auth === undefined));

    // Second pull: everything verified from the cache, no file downloads.
    const before = hub.log.length;
    const r2 = await pullModel({ repo: 'org/tiny', endpoint: hub.endpoint, cacheDir });
    assert.ok(r2.files.every((f) => f.cached));
    assert.equal(hub.log.length, before + 1, 'only the file list was requested');
  } finally {
    await hub.close();
  }
  // Offline (nothing listening) but already pulled: served from the cache.
  const r3 = await pullModel({ repo: 'org/tiny', endpoint: hub.endpoint, cacheDir });
  assert.ok(r3.files.every((f) => f.cached));
  fs.rmSync(cacheDir, { recursive: true });
});

test('pull resumes a .partial left by an interrupted run', async () => {
  const hub = await fakeHub({
    'org/w': { files: { 'model.safetensors': { data: big, lfs: true } } },
  });
  const cacheDir = tmp();
  try {
    const dir = path.join(cacheDir, 'org--w', 'main');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.safetensors.partial'), big.subarray(0, 123_456));
    const r = await pullModel({ repo: 'org/w', endpoint: hub.endpoint, cacheDir });
    assert.deepEqual(fs.readFileSync(r.files[0].path), big);
    const gets = hub.log.filter((l) => l.url.endsWith('/model.safetensors'));
    assert.deepEqual(
      gets.map((g) => g.range),
      ['bytes=123456-'],
    );
  } finally {
    await hub.close();
    fs.rmSync(cacheDir, { recursive: true });
  }
});

test('pull: checksum mismatch, 401 without token, token sent, 404, include patterns', async () => {
  const hub = await fakeHub({
    'org/bad': { files: { 'model.safetensors': { data: big, lfs: true, corrupt: true } } },
    'org/badsmall': { files: { 'config.json': { data: Buffer.from('{"a":1}'), corrupt: true } } },
    'org/private': { token: 's3cret', files: { 'config.json': { data: Buffer.from('{}') } } },
    'org/gguf': {
      files: {
        'config.json': { data: Buffer.from('{}') },
        'q/model-q4.gguf': { data: Buffer.from('GGUF....'), lfs: true },
      },
    },
  });
  const cacheDir = tmp();
  try {
    await assert.rejects(
      pullModel({ repo: 'org/bad', endpoint: hub.endpoint, cacheDir, attempts: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError);
        assert.match(e.message, /checksum mismatch for model\.safetensors/);
        assert.match(e.expected ?? '', /^sha256 [0-9a-f]{64}$/);
        return true;
      },
    );
    assert.equal(
      fs.existsSync(path.join(cacheDir, 'org--bad', 'main', 'model.safetensors.partial')),
      false,
    );
    await assert.rejects(
      pullModel({ repo: 'org/badsmall', endpoint: hub.endpoint, cacheDir }),
      /checksum mismatch for config\.json[\s\S]*git blob sha1/,
    );
    await assert.rejects(
      pullModel({ repo: 'org/private', endpoint: hub.endpoint, cacheDir, token: '' }),
      (e: unknown) => {
        assert.ok(e instanceof NetworkError);
        assert.match(e.message, /refused access .*HTTP 401/);
        assert.match(e.hint ?? '', /HF_TOKEN/);
        return true;
      },
    );
    const ok = await pullModel({
      repo: 'org/private',
      endpoint: hub.endpoint,
      cacheDir,
      token: 's3cret',
    });
    assert.equal(fs.readFileSync(ok.files[0].path, 'utf8'), '{}');
    assert.ok(hub.log.some((l) => l.auth === 'Bearer s3cret'));
    await assert.rejects(
      pullModel({ repo: 'org/missing', endpoint: hub.endpoint, cacheDir }),
      NotFoundError,
    );
    const d = await pullModel({
      repo: 'org/gguf',
      endpoint: hub.endpoint,
      cacheDir,
      revision: 'v1',
    });
    assert.deepEqual(
      d.files.map((f) => path.basename(f.path)),
      ['config.json'],
      'default include: no GGUF',
    );
    assert.ok(d.dir.endsWith(path.join('org--gguf', 'v1')));
    const g = await pullModel({
      repo: 'org/gguf',
      endpoint: hub.endpoint,
      cacheDir,
      include: ['**/*.gguf'],
    });
    assert.deepEqual(
      g.files.map((f) => path.relative(g.dir, f.path)),
      [path.join('q', 'model-q4.gguf')],
    );
    await assert.rejects(
      pullModel({ repo: 'org/gguf', endpoint: hub.endpoint, cacheDir, include: ['*.bin'] }),
      /no files of the repository match/,
    );
    await assert.rejects(
      pullModel({ repo: '../etc', endpoint: hub.endpoint, cacheDir }),
      /invalid repository id/,
    );
  } finally {
    await hub.close();
    fs.rmSync(cacheDir, { recursive: true });
  }
});

test('pull offline names the file and how to provide it', async () => {
  const cacheDir = tmp();
  const closed = await fakeHub({});
  await closed.close(); // nothing listens on its port any more
  await assert.rejects(
    pullModel({ repo: 'org/none', endpoint: closed.endpoint, cacheDir }),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.match(e.message, /cannot reach the Hub/);
      assert.match(e.message, /org\/none@main/);
      assert.match(e.hint ?? '', /copy the files into .*org--none.main by hand/);
      return true;
    },
  );
  fs.rmSync(cacheDir, { recursive: true });
});
