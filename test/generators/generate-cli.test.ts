// rl4qe generate: --dry-run estimates before spending (and counts cache hits), a real run writes
// one result per request and fills the cache, bad JSONL names file:line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFaultServer, type FaultServer } from './fault-server.js';
import { runGenerateCli } from './run-cli.js';

describe('rl4qe generate', () => {
  let fs: FaultServer;
  let dir: string;
  const run = (...args: string[]) => runGenerateCli(dir, ...args);
  before(async () => {
    fs = await startFaultServer();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-gen-cli-'));
    writeFileSync(
      path.join(dir, 'reqs.jsonl'),
      [1, 2, 3]
        .map((i) =>
          JSON.stringify({
            id: `r${i}`,
            messages: [{ role: 'user', content: 'x'.repeat(396) }],
            params: { maxTokens: 100, seed: i },
          }),
        )
        .join('\n') + '\n',
    );
    writeFileSync(
      path.join(dir, 'gen.json'),
      JSON.stringify({
        backend: 'openai',
        baseUrl: `${fs.url}/ok/v1`,
        model: 'm1',
        prices: { m1: { inputPerMTok: 10, outputPerMTok: 20 } },
      }),
    );
  });
  after(async () => {
    await fs.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--dry-run sends nothing and estimates calls, tokens, cost; after a run the cache answers', async () => {
    const reqs = path.join(dir, 'reqs.jsonl');
    const cfg = path.join(dir, 'gen.json');
    const d1 = await run(reqs, '--config', cfg, '--dry-run', '--json');
    assert.equal(d1.status, 0, d1.stderr);
    const e1 = JSON.parse(d1.stdout) as {
      calls: number;
      promptTokens: number;
      maxCostUsd: number;
      cachedCalls: number;
    };
    assert.equal(fs.hits.length, 0, 'a dry run sends nothing');
    assert.equal(e1.calls, 3);
    assert.equal(e1.promptTokens, 3 * 106); // 3 framing + 4 per message + 99 content tokens
    assert.ok(Math.abs(e1.maxCostUsd - (3 * 106 * 10 + 300 * 20) / 1e6) < 1e-12);
    const out = path.join(dir, 'out.jsonl');
    const r = await run(reqs, '--config', cfg, '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; id: string });
    assert.deepEqual(
      lines.map((l) => [l.ok, l.id]),
      [
        [true, 'r1'],
        [true, 'r2'],
        [true, 'r3'],
      ],
    );
    assert.equal(fs.hits.length, 3);
    const d2 = JSON.parse((await run(reqs, '--config', cfg, '--dry-run', '--json')).stdout) as {
      calls: number;
      cachedCalls: number;
    };
    assert.deepEqual([d2.calls, d2.cachedCalls], [0, 3]);
  });

  it('writes each result as it finishes and exits 5 when a request failed', async () => {
    const reqs = path.join(dir, 'mixed.jsonl');
    // The last request is invalid (both messages and prompt): it fails at once, before the
    // others have their answers, so finishing order puts it first.
    writeFileSync(
      reqs,
      [
        { id: 'm1', messages: [{ role: 'user', content: 'a' }], params: { seed: 1 } },
        { id: 'm2', messages: [{ role: 'user', content: 'b' }], params: { seed: 1 } },
        { id: 'bad', messages: [{ role: 'user', content: 'c' }], prompt: 'c' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const out = path.join(dir, 'mixed-out.jsonl');
    const r = await run(reqs, '--config', path.join(dir, 'gen.json'), '--out', out, '--json');
    assert.equal(r.status, 5, r.stderr);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; id: string; kind?: string });
    assert.deepEqual(lines[0], { ...lines[0], ok: false, id: 'bad', kind: 'bad_request' });
    assert.deepEqual(lines.map((l) => l.id).sort(), ['bad', 'm1', 'm2']);
    // --json: the summary is stdout's last line (the results went to --out).
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      completions: number;
      failures: number;
    };
    assert.deepEqual([summary.completions, summary.failures], [2, 1]);
  });

  it('a bad request line is an error naming file:line and the field', async () => {
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(
      bad,
      '{"id":"a","prompt":"x"}\n{"id":"b","prompt":"x","params":{"maxTokens":-1}}\n',
    );
    const r = await run(bad, '--config', path.join(dir, 'gen.json'), '--dry-run');
    assert.equal(r.status, 3);
    assert.match(r.stderr, /bad\.jsonl:2: params\.maxTokens/);
  });
});
