// Parity with transformers for the two model-free sources: a small tokenizer.json (+ config and
// chat template) and the same vocabulary stored as GGUF metadata (qwen2 pre-tokenizer, add_bos).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { FIXTURES, loadDs1000Prompts, loadExpected } from './helpers.js';
import {
  checkChats,
  checkDs1000,
  checkExtra,
  checkPartialDecodes,
  checkSkeleton,
} from './parity.js';

test('synthetic tokenizer.json matches transformers (ids, decode, specials, chat template)', async () => {
  const exp = loadExpected('synthetic');
  const tok = await Tokenizer.fromDirectory(path.join(FIXTURES, 'synthetic'));
  checkSkeleton(tok, exp);
  assert.equal(tok.addsBos, true, 'the post-processor prepends <s>');
  assert.equal(checkExtra(tok, exp), exp.extra.length);
  checkDs1000(tok, exp, loadDs1000Prompts());
  checkPartialDecodes(tok, exp);
  checkChats(tok, exp);
});

test('synthetic Llama-2-style tokenizer.json (byte fallback, Metaspace-like) matches transformers', async () => {
  const exp = loadExpected('synthetic-spm');
  const tok = await Tokenizer.fromDirectory(path.join(FIXTURES, 'synthetic-spm'));
  checkSkeleton(tok, exp);
  assert.equal(tok.addsBos, true);
  // CJK is not in the 700-token vocabulary: '数' (E6 95 B0) must come out as three byte tokens.
  const ids = tok.encode('数', { addSpecialTokens: false });
  assert.deepEqual(
    ids.slice(-3).map((id) => tok.idToToken(id)),
    ['<0xE6>', '<0x95>', '<0xB0>'],
  );
  checkExtra(tok, exp, { roundTrip: false });
  checkDs1000(tok, exp, loadDs1000Prompts());
  checkPartialDecodes(tok, exp);
  // Byte-fallback decode as the Rust library does it (checked with transformers 5.24): an
  // incomplete UTF-8 run gives one U+FFFD per byte token, and a BOM is kept.
  const b = (hex: string): number => tok.tokenToId(`<0x${hex}>`)!;
  assert.equal(tok.decode([b('E6'), b('95')]), '\uFFFD\uFFFD');
  assert.equal(tok.decode([b('E6'), b('95'), b('B0')]), '数');
  assert.equal(tok.decode([b('EF'), b('BB'), b('BF')]), '\uFEFF');
  assert.equal(tok.decode([b('E6'), b('EF'), b('BB'), b('BF')]), '\uFFFD'.repeat(4));
});

test('synthetic GGUF vocabulary matches transformers, except the phantom <|endoftext|>', () => {
  const exp = loadExpected('synthetic-gguf');
  const file = path.join(FIXTURES, 'synthetic-gguf', 'synthetic.gguf');
  const tok = Tokenizer.fromGgufFile(file);
  // transformers' GPT2Tokenizer defaults add '<|endoftext|>' as a new token (id 600) when the
  // vocabulary lacks it: an id the model has no row for. We do not (docs/tokenizer.md).
  const phantom = exp.skeleton.added_tokens.filter((t) => t.id >= tok.vocabSize).map((t) => t.id);
  assert.deepEqual(phantom, [600]);
  checkSkeleton(tok, exp, { phantomIds: phantom });
  assert.equal(tok.addsBos, true, 'add_bos_token = true in the GGUF');
  assert.equal(tok.encode('hi')[0], 1);
  assert.equal(tok.encode('hi', { addSpecialTokens: false })[0] === 1, false);
  checkExtra(tok, exp, { phantomIds: phantom });
  checkDs1000(tok, exp, loadDs1000Prompts());
  checkPartialDecodes(tok, exp);
  checkChats(tok, exp);
});
