// The one model resolver (io/hub/resolve.ts): a path stays a path; a Hub repo id (with @revision
// or opts.revision, a GGUF file inside a repository, hf://) resolves to its snapshot in the
// Hugging Face cache, downloading in a child process when missing; offline and not-found errors.
// And interop with Python's huggingface_hub (oracle venv): each finds what the other downloaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, FormatError, NetworkError, NotFoundError } from '../../src/util/errors.js';
import { downloadSnapshot, parseHubModelRef, resolveModelPath } from '../../src/io/hub/index.js';
import { fakeHubProcess, gitBlobSha1 } from './fake-hub.js';
import { isolatedHfHome } from '../helpers/hf-env.js';

const hf = isolatedHfHome('rl4qe-resolve-');

const CKPT = path.join('test', 'fixtures', 'io', 'hf-checkpoint', 'tiny-llama-bf16');
const modelFiles = () =>
  Object.fromEntries(
    fs
      .readdirSync(CKPT)
      .map((f) => [f, { path: path.join(CKPT, f), lfs: f.endsWith('.safetensors') }]),
  );

test('parseHubModelRef: repo ids, @revision, GGUF files, hf://; paths are not refs', () => {
  assert.deepEqual(parseHubModelRef('Qwen/Qwen2.5-Coder-0.5B-Instruct'), {
    repo: 'Qwen/Qwen2.5-Coder-0.5B-Instruct',
  });
  assert.deepEqual(parseHubModelRef('Qwen/Qwen2.5-Coder-0.5B-Instruct@v1.0'), {
    repo: 'Qwen/Qwen2.5-Coder-0.5B-Instruct',
    revision: 'v1.0',
  });
  assert.deepEqual(parseHubModelRef('org/m@refs/pr/1'), { repo: 'org/m', revision: 'refs/pr/1' });
  assert.deepEqual(parseHubModelRef('org/m-GGUF/q4/m-q4_k_m.gguf'), {
    repo: 'org/m-GGUF',
    file: 'q4/m-q4_k_m.gguf',
  });
  assert.deepEqual(parseHubModelRef('org/m-GGUF@abc/m.gguf'), {
    repo: 'org/m-GGUF',
    revision: 'abc',
    file: 'm.gguf',
  });
  assert.deepEqual(parseHubModelRef('hf://org/m'), { repo: 'org/m' });
  for (const p of [
    './org/m',
    '/abs/path',
    '~/models/x',
    'model.gguf',
    'a/b/c',
    'org/m/config.json',
    'org--x/m',
    '-org/m',
  ])
    assert.equal(parseHubModelRef(p), undefined, p);
  assert.throws(() => parseHubModelRef('hf://nonsense'), ConfigError);
});

test('a local path wins; a non-ref that does not exist comes back for the caller to report', () => {
  assert.equal(resolveModelPath(CKPT), path.resolve(CKPT));
  assert.equal(resolveModelPath('no/such/dir/model.bin'), path.resolve('no/such/dir/model.bin'));
  // Looks like a Hub file: tried there, and the error still says no such local path exists.
  process.env.HF_HUB_OFFLINE = '1';
  assert.throws(
    () => resolveModelPath('no/such/dir/model.gguf'),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.match(
        e.message,
        /no local path .*no\/such\/dir\/model\.gguf, and as a Hub repo id: no\/such@main\/dir\/model\.gguf is not in the Hugging Face cache/,
      );
      return true;
    },
  );
  assert.throws(
    () => resolveModelPath(CKPT, { revision: 'v1' }),
    ConfigError,
    'a revision for a local path',
  );
});

test('a repo id downloads once into the HF cache (child process), then resolves from the cache', async () => {
  const commit = 'a'.repeat(40);
  const hub = await fakeHubProcess({
    repos: {
      'org/tiny': {
        sha: commit,
        revisions: ['v2'],
        files: { ...modelFiles(), 'README.md': { text: 'hi' } },
      },
      'org/tiny-GGUF': {
        sha: commit,
        files: { 'tiny-q8_0.gguf': { text: 'GGUF-bytes', lfs: true } },
      },
      'org/broken': { sha: commit, files: { 'config.json': { text: '{}' } } },
    },
  });
  try {
    process.env.HF_ENDPOINT = hub.endpoint;
    const snap = path.join(hf.home, 'hub', 'models--org--tiny', 'snapshots', commit);
    assert.equal(resolveModelPath('org/tiny'), snap);
    assert.ok(fs.existsSync(path.join(snap, 'model-00001-of-00002.safetensors')));
    assert.ok(!fs.existsSync(path.join(snap, 'README.md')));
    assert.equal(
      fs.readFileSync(path.join(hf.home, 'hub', 'models--org--tiny', 'refs', 'main'), 'utf8'),
      commit,
    );
    const n = (await hub.log()).length;
    // Cached: no request at all, whether by branch, by commit or forced hf://.
    assert.equal(resolveModelPath('org/tiny@main'), snap);
    assert.equal(resolveModelPath('org/tiny', { revision: commit }), snap);
    assert.equal(resolveModelPath('hf://org/tiny'), snap);
    assert.equal((await hub.log()).length, n);
    // Another revision: refs/v2.
    assert.equal(resolveModelPath('org/tiny@v2'), snap);
    assert.equal(
      fs.readFileSync(path.join(hf.home, 'hub', 'models--org--tiny', 'refs', 'v2'), 'utf8'),
      commit,
    );
    assert.throws(
      () => resolveModelPath('org/tiny@v2', { revision: 'main' }),
      /two revisions for one model/,
    );
    // One GGUF file of a repository.
    const g = resolveModelPath('org/tiny-GGUF/tiny-q8_0.gguf');
    assert.equal(
      g,
      path.join(hf.home, 'hub', 'models--org--tiny-GGUF', 'snapshots', commit, 'tiny-q8_0.gguf'),
    );
    assert.equal(fs.readFileSync(g, 'utf8'), 'GGUF-bytes');
    // Not a model directory; not on the Hub; unknown revision.
    assert.throws(
      () => resolveModelPath('org/broken'),
      (e: unknown) => {
        assert.ok(e instanceof FormatError);
        assert.match(e.message, /org\/broken@main is not a complete Hugging Face model directory/);
        assert.match(e.found ?? '', /model\.safetensors/);
        return true;
      },
    );
    assert.throws(
      () => resolveModelPath('models/qwen'),
      (e: unknown) => {
        assert.ok(e instanceof NotFoundError);
        assert.match(e.message, /models\/qwen is neither a local path nor a model on the Hub/);
        return true;
      },
    );
    assert.throws(() => resolveModelPath('org/tiny@nope'), NotFoundError);
  } finally {
    await hub.close();
  }
  // Offline: the cache only.
  process.env.HF_HUB_OFFLINE = '1';
  assert.equal(
    resolveModelPath('org/tiny'),
    path.join(hf.home, 'hub', 'models--org--tiny', 'snapshots', commit),
  );
  assert.throws(
    () => resolveModelPath('org/other'),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.match(
        e.message,
        /no local path .*, and as a Hub repo id: org\/other@main is not in the Hugging Face cache and HF_HUB_OFFLINE is set/,
      );
      assert.match(e.hint ?? '', /rl4qe pull org\/other/);
      return true;
    },
  );
  // Hub unreachable (nothing listens) and not cached: which URL, and the offline hint.
  delete process.env.HF_HUB_OFFLINE;
  assert.throws(
    () => resolveModelPath('org/other'),
    (e: unknown) => {
      assert.ok(e instanceof NetworkError);
      assert.match(e.message, /as a Hub repo id: cannot reach the Hub to download org\/other@main/);
      assert.match(
        e.where ?? '',
        /^http:\/\/127\.0\.0\.1:\d+\/api\/models\/org\/other\/revision\/main/,
      );
      assert.match(e.hint ?? '', /HF_HUB_OFFLINE=1/);
      return true;
    },
  );
});

// ---- interop with Python's huggingface_hub (the oracle venv) ----

const PY = path.join(os.homedir(), '.cache', 'rl4qe', 'oracle', 'bin', 'python');
const havePy = fs.existsSync(PY);

function py(
  code: string,
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(PY, ['-c', code], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('exit', (code) => resolve({ code: code ?? 1, out, err }));
  });
}

test(
  "interop: Python's huggingface_hub and rl4qe each use what the other downloaded",
  { skip: havePy ? false : `no oracle venv at ${PY} (bash scripts/setup-oracle.sh)` },
  async () => {
    const pyCommit = 'c'.repeat(40);
    const jsCommit = 'd'.repeat(40);
    const hub = await fakeHubProcess({
      repos: {
        'org/from-python': { sha: pyCommit, files: modelFiles() },
        'org/from-rl4qe': { sha: jsCommit, files: modelFiles() },
      },
    });
    try {
      const env = { HF_HOME: hf.home, HF_ENDPOINT: hub.endpoint, HF_HUB_DISABLE_TELEMETRY: '1' };
      // Python downloads (snapshot_download, as transformers' from_pretrained does) ...
      const r = await py(
        "from huggingface_hub import snapshot_download; print(snapshot_download('org/from-python', allow_patterns=['*.json', '*.safetensors', '*.jinja']))",
        env,
      );
      assert.equal(r.code, 0, r.err);
      const pySnap = r.out.trim().split('\n').pop()!;
      assert.equal(
        pySnap,
        path.join(hf.home, 'hub', 'models--org--from-python', 'snapshots', pyCommit),
      );
      const before = (await hub.log()).filter((l) => l.url.includes('/resolve/')).length;
      // ... rl4qe finds it: the resolver with no request at all, and a pull with no file download.
      assert.equal(resolveModelPath('org/from-python'), pySnap);
      process.env.HF_ENDPOINT = hub.endpoint;
      const s = await downloadSnapshot({
        repo: 'org/from-python',
        include: ['*.json', '*.safetensors'],
      });
      assert.ok(s.files.every((f) => f.cached));
      assert.equal((await hub.log()).filter((l) => l.url.includes('/resolve/')).length, before);
      // Blob names agree: git blob sha1 of config.json.
      const cfg = fs.readFileSync(path.join(CKPT, 'config.json'));
      assert.ok(
        fs.existsSync(
          path.join(hf.home, 'hub', 'models--org--from-python', 'blobs', gitBlobSha1(cfg)),
        ),
      );

      // rl4qe downloads; Python offline finds the snapshot and single files.
      const jsSnap = resolveModelPath('org/from-rl4qe');
      const r2 = await py(
        [
          'from huggingface_hub import snapshot_download, hf_hub_download',
          "print(snapshot_download('org/from-rl4qe'))",
          "print(hf_hub_download('org/from-rl4qe', 'model-00002-of-00002.safetensors'))",
        ].join('\n'),
        { ...env, HF_HUB_OFFLINE: '1' },
      );
      assert.equal(r2.code, 0, r2.err);
      const [a, b] = r2.out.trim().split('\n').slice(-2);
      assert.equal(a, jsSnap);
      assert.equal(b, path.join(jsSnap, 'model-00002-of-00002.safetensors'));
      // And transformers loads it by repo id, offline, from rl4qe's download.
      const r3 = await py(
        "from transformers import AutoConfig; print(AutoConfig.from_pretrained('org/from-rl4qe').model_type)",
        { ...env, HF_HUB_OFFLINE: '1' },
      );
      assert.equal(r3.code, 0, r3.err);
      assert.equal(r3.out.trim().split('\n').pop(), 'llama');
    } finally {
      await hub.close();
    }
  },
);
