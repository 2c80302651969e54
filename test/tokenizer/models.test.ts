// Token-id parity with transformers' GGUF tokenizer loading on the offline test models: all 1000
// DS-1000 prompts (hashes; full ids for every 10th), hand-written hard cases, decode round trip,
// special tokens, and apply_chat_template. Needs the models: `node scripts/fetch-test-models.mjs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer, checkCompatible, VocabMismatchError } from '../../src/tokenizer/index.js';
import { openGguf } from '../../src/io/gguf/index.js';
import { loadDs1000Prompts, loadExpected, testModelPath } from './helpers.js';
import {
  checkChats,
  checkDs1000,
  checkExtra,
  checkPartialDecodes,
  checkSkeleton,
} from './parity.js';

const MODELS = [
  { fixture: 'smollm2-135m', pre: 'smollm', arch: 'llama', rows: 49152 },
  { fixture: 'qwen2.5-coder-0.5b', pre: 'qwen2', arch: 'qwen2', rows: 151936 },
];

for (const m of MODELS) {
  test(`${m.fixture}: GGUF tokenizer matches transformers on DS-1000 and hard cases`, () => {
    const exp = loadExpected(m.fixture);
    const file = testModelPath(exp.model_file!);
    const gguf = openGguf(file);
    let tok: Tokenizer;
    try {
      assert.equal(gguf.getString('general.architecture'), m.arch);
      assert.equal(gguf.getString('tokenizer.ggml.pre'), m.pre);
      tok = Tokenizer.fromGguf(gguf);
    } finally {
      gguf.close();
    }
    checkSkeleton(tok, exp);
    assert.equal(checkExtra(tok, exp), exp.extra.length);
    checkDs1000(tok, exp, loadDs1000Prompts(exp.ds1000_sha256));
    checkPartialDecodes(tok, exp);
    checkChats(tok, exp);
    // The model's embedding has exactly as many rows as the tokenizer has ids.
    checkCompatible(tok, m.rows);
    assert.throws(() => checkCompatible(tok, m.rows - 1), VocabMismatchError);
  });
}
