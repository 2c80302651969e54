// Malformed tokenizer.json / tokenizer_config.json / GGUF vocabulary: a typed error that names the
// file and the field, never a TypeError from deep inside the engine or a silently wrong tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FormatError, NotFoundError, Rl4qeError, UnsupportedError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { openGguf } from '../../src/io/gguf/index.js';
import { FIXTURES } from './helpers.js';

const SRC = '/models/x/tokenizer.json';
const GGUF = '/models/x/model.gguf';
type Json = Record<string, unknown> & { model: Record<string, unknown> };

function baseJson(): Json {
  return JSON.parse(
    readFileSync(path.join(FIXTURES, 'synthetic', 'tokenizer.json'), 'utf8'),
  ) as Json;
}
function baseKv(): Map<string, unknown> {
  // Plain values (the reader's {type, value} unwrapped), so the cases can damage them freely.
  const f = openGguf(path.join(FIXTURES, 'synthetic-gguf', 'synthetic.gguf'));
  try {
    return new Map([...f.metadata].map(([k, v]) => [k, v.value as unknown]));
  } finally {
    f.close();
  }
}

/** Asserts a FormatError (or subclass `cls`) whose message names the file and the field. */
function expectError(fn: () => unknown, field: string, cls: typeof Rl4qeError = FormatError): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    const msg = (e as Error).message;
    assert.ok(msg.includes('/models/x/'), `message names the file: ${msg}`);
    assert.ok(msg.includes(field), `message names ${field}: ${msg}`);
    return true;
  });
}

test('tokenizer.json defects are FormatErrors naming file and field', () => {
  const cases: [string, (j: Json) => void, string][] = [
    ['no model', (j) => delete (j as Partial<Json>).model, 'model'],
    ['no merges', (j) => delete j.model.merges, 'model.merges'],
    ['merges not an array', (j) => (j.model.merges = 'a b'), 'model.merges'],
    [
      'merge of unknown token',
      (j) => ((j.model.merges as unknown[])[3] = ['Ġ', '@@x']),
      'model.merges[3]',
    ],
    ['merge of 3 parts', (j) => ((j.model.merges as unknown[])[2] = 'a b c'), 'model.merges[2]'],
    [
      'vocab id is a string',
      (j) => ((j.model.vocab as Record<string, unknown>).a = '7'),
      'model.vocab.a',
    ],
    [
      'vocab id negative',
      (j) => ((j.model.vocab as Record<string, unknown>).a = -1),
      'model.vocab.a',
    ],
    ['unknown model type', (j) => (j.model.type = 'Magic'), 'model.type'],
    [
      'added token id out of range',
      (j) => ((j.added_tokens as { id: number }[])[0].id = 10_000),
      'added_tokens[0].id',
    ],
    [
      'added token without content',
      (j) => delete (j.added_tokens as { content?: string }[])[1].content,
      'added_tokens.1.content',
    ],
    ['pre_tokenizer not an object', (j) => (j.pre_tokenizer = 3), 'pre_tokenizer'],
    ['unk_token not in vocab', (j) => (j.model.unk_token = '<nope>'), 'model.unk_token'],
  ];
  for (const [what, mutate, field] of cases) {
    const j = baseJson();
    mutate(j);
    expectError(() => Tokenizer.fromTokenizerJson(j, { source: SRC }), field);
    void what;
  }
});

test('tokenizer_config.json defects name the config file and field', () => {
  const cfg = '/models/x/tokenizer_config.json';
  const load = (config: unknown) => () =>
    Tokenizer.fromTokenizerJson(baseJson(), { source: SRC, config, configSource: cfg });
  expectError(load({ add_bos_token: 'yes' }), 'add_bos_token');
  expectError(load({ bos_token: 5 }), 'bos_token');
  expectError(load({ chat_template: 42 }), 'chat_template');
  // A special token the vocabulary does not have.
  expectError(
    () => Tokenizer.fromTokenizerJson(baseJson(), { source: SRC, config: { eos_token: '<eos>' } }),
    'eos_token',
  );
});

test('GGUF vocabulary defects are FormatErrors naming file and key', () => {
  const cases: [(m: Map<string, unknown>) => void, string, typeof Rl4qeError?][] = [
    [(m) => m.delete('tokenizer.ggml.tokens'), 'tokenizer.ggml.tokens'],
    [(m) => m.set('tokenizer.ggml.tokens', 7), 'tokenizer.ggml.tokens'],
    [(m) => m.set('tokenizer.ggml.tokens', []), 'tokenizer.ggml.tokens'],
    [(m) => ((m.get('tokenizer.ggml.tokens') as unknown[])[5] = 5), 'tokenizer.ggml.tokens[5]'],
    [(m) => m.delete('tokenizer.ggml.merges'), 'tokenizer.ggml.merges'],
    [(m) => m.set('tokenizer.ggml.merges', []), 'tokenizer.ggml.merges'],
    [(m) => ((m.get('tokenizer.ggml.merges') as string[])[0] = 'ab'), 'tokenizer.ggml.merges[0]'],
    [
      (m) => ((m.get('tokenizer.ggml.merges') as string[])[4] = 'Ġ zzzq'),
      'tokenizer.ggml.merges[4]',
    ],
    [(m) => m.set('tokenizer.ggml.bos_token_id', 600), 'tokenizer.ggml.bos_token_id'],
    [(m) => m.set('tokenizer.ggml.eos_token_id', -1), 'tokenizer.ggml.eos_token_id'],
    [(m) => m.set('tokenizer.ggml.padding_token_id', 'x'), 'tokenizer.ggml.padding_token_id'],
    [(m) => m.set('tokenizer.ggml.token_type', [1, 2, 3]), 'tokenizer.ggml.token_type'],
    [(m) => m.set('tokenizer.ggml.add_bos_token', 1), 'tokenizer.ggml.add_bos_token'],
    [(m) => m.set('tokenizer.ggml.model', 7), 'tokenizer.ggml.model'],
    [(m) => m.delete('tokenizer.ggml.model'), 'tokenizer.ggml.model'],
    [(m) => m.set('tokenizer.ggml.model', 'llama'), 'tokenizer.ggml.model', UnsupportedError],
    [(m) => m.set('tokenizer.chat_template', ['x']), 'tokenizer.chat_template'],
  ];
  for (const [mutate, key, cls] of cases) {
    const m = baseKv();
    mutate(m);
    expectError(() => Tokenizer.fromGgufMetadata(m, { source: GGUF }), key, cls);
  }
  // bigint ids (a u64 GGUF value) are accepted.
  const m = baseKv();
  m.set('tokenizer.ggml.eos_token_id', 4n);
  assert.equal(Tokenizer.fromGgufMetadata(m, { source: GGUF }).eos?.id, 4);
});

test('missing and unparsable files', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-tok-'));
  try {
    await assert.rejects(Tokenizer.fromDirectory(dir), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.ok((e as Error).message.includes(path.join(dir, 'tokenizer.json')));
      return true;
    });
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    await assert.rejects(Tokenizer.fromDirectory(dir), FormatError);
    copyFileSync(
      path.join(FIXTURES, 'synthetic', 'tokenizer.json'),
      path.join(dir, 'tokenizer.json'),
    );
    writeFileSync(path.join(dir, 'tokenizer_config.json'), '[1,');
    await assert.rejects(Tokenizer.fromDirectory(dir), (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.ok((e as Error).message.includes('tokenizer_config.json'));
      return true;
    });
    // chat_template.jinja beside the config wins over the config's template.
    writeFileSync(path.join(dir, 'tokenizer_config.json'), '{"chat_template": "A"}');
    writeFileSync(path.join(dir, 'chat_template.jinja'), 'B{{ messages[0].content }}');
    const tok = await Tokenizer.fromDirectory(dir);
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'x' }]), 'Bx');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fuzz: random damage to tokenizer.json and GGUF metadata gives typed errors only', () => {
  const rng = new Rng(1234);
  const junk = (): unknown =>
    [null, 0, -3, 1e9, 'x', '', [], {}, true, [1, 'a'], { type: 'BPE' }][rng.int(11)];
  // Walks to a random node of a JSON value and replaces or deletes it.
  const damage = (root: unknown): void => {
    let node = root as Record<string, unknown>;
    for (let depth = 0; depth < 4; depth++) {
      const keys = Object.keys(node);
      if (keys.length === 0) return;
      const k = keys[rng.int(Math.min(keys.length, 50))];
      const child = node[k];
      if (child !== null && typeof child === 'object' && rng.next() < 0.6) {
        node = child as Record<string, unknown>;
        continue;
      }
      if (rng.next() < 0.3 && !Array.isArray(node)) delete node[k];
      else node[k] = junk();
      return;
    }
  };
  let typed = 0;
  let ok = 0;
  const json0 = JSON.stringify(baseJson());
  for (let i = 0; i < 300; i++) {
    const j = JSON.parse(json0) as Json;
    damage(j);
    try {
      Tokenizer.fromTokenizerJson(j, { source: SRC }).encode('def f(x):\n\treturn x  # 😀');
      ok++;
    } catch (e) {
      assert.ok(e instanceof Rl4qeError, `untyped error: ${String(e)}`);
      typed++;
    }
  }
  const kv0 = baseKv();
  const keys = [...kv0.keys()].filter((k) => k.startsWith('tokenizer.'));
  for (let i = 0; i < 300; i++) {
    const m = new Map(kv0);
    const k = keys[rng.int(keys.length)];
    const v = m.get(k);
    if (Array.isArray(v) && rng.next() < 0.7) {
      const copy = [...v];
      copy[rng.int(copy.length)] = junk();
      m.set(k, copy);
    } else if (rng.next() < 0.3) m.delete(k);
    else m.set(k, junk());
    try {
      Tokenizer.fromGgufMetadata(m, { source: GGUF }).encode('x = 1');
      ok++;
    } catch (e) {
      assert.ok(e instanceof Rl4qeError, `untyped error: ${String(e)}`);
      typed++;
    }
  }
  assert.ok(typed > 100, `most damage is detected (${typed} typed errors, ${ok} loads)`);
});
