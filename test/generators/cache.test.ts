// The on-disk generator cache with real processes: hits across process restarts, several
// processes writing at once, a process killed mid-write, failures never cached.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  CachedGenerator,
  GenerationCache,
  OpenAIGenerator,
  cacheKey,
  type GenerationRequest,
  type GenerationResult,
} from '../../src/generators/index.js';
import { startFaultServer, type FaultServer } from './fault-server.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cache-child.js');
const require = createRequire(import.meta.url);

interface ChildOut {
  results: GenerationResult[];
  stats: { hits: number; misses: number; writes: number };
  size: number;
}

function runChild(env: Record<string, string>): Promise<ChildOut> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, 'gen'], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as ChildOut)
        : reject(new Error(`child exit ${code}: ${err}`)),
    );
  });
}

describe('GenerationCache', () => {
  let fs: FaultServer;
  let dir: string;
  before(async () => {
    fs = await startFaultServer();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-cache-'));
  });
  after(async () => {
    await fs.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the key covers backend, model, effective params and the full prompt — not the id', () => {
    const id = { backend: 'b', model: 'm', params: { temperature: 0 } };
    const r = {
      id: 'a',
      system: 's',
      messages: [{ role: 'user' as const, content: 'q' }],
      params: { maxTokens: 5 },
    };
    const k = cacheKey(id, r);
    assert.equal(k, cacheKey(id, { ...r, id: 'other' }));
    assert.equal(
      k,
      cacheKey(id, { ...r, params: { maxTokens: 5, temperature: 0 } }),
      'explicit default = implicit default',
    );
    assert.notEqual(k, cacheKey({ ...id, model: 'm2' }, r));
    assert.notEqual(k, cacheKey({ ...id, backend: 'c' }, r));
    assert.notEqual(k, cacheKey(id, { ...r, system: 't' }));
    assert.notEqual(k, cacheKey(id, { ...r, params: { maxTokens: 6 } }));
    assert.notEqual(k, cacheKey(id, { ...r, params: { maxTokens: 5, seed: 1 } }));
    assert.notEqual(k, cacheKey(id, { ...r, messages: [{ role: 'user', content: 'q ' }] }));
  });

  it('answers survive the process: a second process gets hits and makes no call', async () => {
    const env = {
      CACHE_FILE: path.join(dir, 'restart.sqlite'),
      BASE_URL: `${fs.url}/ok/v1`,
      IDS: 'a,b,c',
    };
    const first = await runChild(env);
    assert.equal(fs.count('ok'), 3);
    assert.deepEqual(first.stats, { hits: 0, misses: 3, writes: 3, writeErrors: 0 });
    const second = await runChild({ ...env, IDS: 'a,b,c,d' });
    assert.equal(fs.count('ok'), 4, 'only the new request d reached the server');
    assert.deepEqual(second.stats, { hits: 3, misses: 1, writes: 1, writeErrors: 0 });
    for (let i = 0; i < 3; i++) {
      const a = first.results[i]!;
      const b = second.results[i]!;
      assert.ok(a.ok && b.ok);
      assert.equal(b.text, a.text);
      assert.equal(b.cached, true);
      assert.equal(b.costUsd, 0);
      assert.equal(b.attempts, 0);
    }
    assert.equal(second.size, 4);
  });

  it('several processes writing the same file at once lose nothing', async () => {
    const file = path.join(dir, 'concurrent.sqlite');
    const runs = await Promise.all(
      ['p0,p1,p2,p3,s0,s1', 'p4,p5,p6,p7,s0,s1', 'p8,p9,p10,p11,s0,s1'].map((IDS) =>
        runChild({ CACHE_FILE: file, BASE_URL: `${fs.url}/ok/v1`, IDS }),
      ),
    );
    for (const r of runs) assert.ok(r.results.every((x) => x.ok));
    const c = new GenerationCache({ file });
    assert.equal(c.size(), 14, '12 distinct + 2 shared keys');
    c.close();
  });

  it('a process killed mid-write leaves a consistent, readable cache', async () => {
    const file = path.join(dir, 'crash.sqlite');
    const p = spawn(process.execPath, [child, 'hammer'], {
      env: { ...process.env, CACHE_FILE: file },
    });
    await new Promise<void>((res) => p.stdout.once('data', () => res()));
    await new Promise((r) => setTimeout(r, 100));
    p.kill('SIGKILL');
    await new Promise((r) => p.once('close', r));
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const db = new Database(file);
    assert.equal(
      (db.pragma('integrity_check') as { integrity_check: string }[])[0]!.integrity_check,
      'ok',
    );
    const rows = db.prepare('SELECT text FROM completions').all() as { text: string }[];
    db.close();
    assert.ok(rows.length >= 50);
    for (const r of rows) assert.equal(r.text.length, 4000, 'no half-written row');
    const c = new GenerationCache({ file });
    assert.equal(c.size(), rows.length);
    c.close();
  });

  it('failures are not cached: the next run asks again', async () => {
    const cache = new GenerationCache({ file: path.join(dir, 'fail.sqlite') });
    const g = new CachedGenerator(
      new OpenAIGenerator({
        baseUrl: `${fs.url}/always-503/v1`,
        model: 'm1',
        retry: { maxRetries: 0 },
      }),
      cache,
    );
    const req = { id: 'f', messages: [{ role: 'user' as const, content: 'q' }] };
    const [a] = await g.generate([req]);
    const [b] = await g.generate([req]);
    assert.ok(!a!.ok && !b!.ok && !('text' in b!));
    assert.equal(fs.count('always-503'), 2);
    assert.equal(cache.size(), 0);
    cache.close();
  });

  it('a sampled request without a seed is never replayed: each one reaches the generator', async () => {
    const cache = new GenerationCache({ file: path.join(dir, 'sampled.sqlite') });
    const g = new CachedGenerator(
      new OpenAIGenerator({ baseUrl: `${fs.url}/ok/v1`, model: 'sampled' }),
      cache,
    );
    const msgs = [{ role: 'user' as const, content: 'sample me' }];
    const count = async (params: GenerationRequest['params'], n: number): Promise<number> => {
      const before = fs.count('ok');
      for (let i = 0; i < 2; i++) {
        const rs = await g.generate(
          Array.from({ length: n }, (_, j) => ({ id: `s${i}-${j}`, messages: msgs, params })),
        );
        assert.ok(rs.every((r) => r.ok && !r.cached));
      }
      return fs.count('ok') - before;
    };
    // temperature > 0 without a seed, and no temperature at all on an HTTP backend (its
    // default is the server's, OpenAI's is 1): 2 rounds × 2 duplicates = 4 calls, none stored.
    assert.equal(await count({ temperature: 0.8 }, 2), 4);
    assert.equal(await count(undefined, 2), 4);
    assert.equal(cache.size(), 0);
    // Seeded or greedy: reproducible, so answered once and then replayed.
    const before = fs.count('ok');
    for (const params of [{ temperature: 0.8, seed: 7 }, { temperature: 0 }]) {
      const [a] = await g.generate([{ id: 'a', messages: msgs, params }]);
      const [b] = await g.generate([{ id: 'b', messages: msgs, params }]);
      assert.ok(a!.ok && b!.ok && !a.cached && b.cached && a.text === b.text);
    }
    assert.equal(fs.count('ok') - before, 2);
    assert.equal(cache.size(), 2);
    // An HTTP backend whose configured default temperature is 0 counts as greedy.
    const greedy = new CachedGenerator(
      new OpenAIGenerator({
        baseUrl: `${fs.url}/ok/v1`,
        model: 'sampled',
        defaultParams: { temperature: 0 },
      }),
      cache,
    );
    await greedy.generate([{ id: 'g1', messages: msgs }]);
    const [h] = await greedy.generate([{ id: 'g2', messages: msgs }]);
    assert.ok(h!.ok && h.cached);
    cache.close();
  });

  it('duplicates in one batch are sent once', async () => {
    const cache = new GenerationCache({ file: path.join(dir, 'dup.sqlite') });
    const g = new CachedGenerator(
      new OpenAIGenerator({ baseUrl: `${fs.url}/ok/v1`, model: 'dup' }),
      cache,
    );
    const before = fs.count('ok');
    const q = {
      messages: [{ role: 'user' as const, content: 'same' }],
      params: { temperature: 0 },
    };
    const rs = await g.generate([
      { id: 'x', ...q },
      { id: 'y', ...q },
    ]);
    assert.equal(fs.count('ok') - before, 1);
    assert.ok(
      rs[0]!.ok && rs[1]!.ok && rs[0].text === rs[1].text && rs[1].id === 'y' && rs[1].cached,
    );
    cache.close();
  });
});
