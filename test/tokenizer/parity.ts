// The parity checks every tokenizer source runs against its transformers fixture.
import assert from 'node:assert/strict';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import { idsHash, listHash, REGENERATE, type Expected } from './helpers.js';

export interface ParityOptions {
  /** Added tokens transformers has and we deliberately do not (see docs/tokenizer.md). */
  phantomIds?: number[];
  /** Whether decode(encode(text)) must give the text back for every hand-written case (default true). */
  roundTrip?: boolean;
}

/** tokenizer.json components, vocabulary and merges hashes, size and special ids. */
export function checkSkeleton(tok: Tokenizer, exp: Expected, opts: ParityOptions = {}): void {
  const phantom = new Set(opts.phantomIds ?? []);
  const sk = exp.skeleton;
  assert.deepEqual(
    tok.json.added_tokens,
    sk.added_tokens.filter((t) => !phantom.has(t.id)),
    `added_tokens differ; ${REGENERATE}`,
  );
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const) {
    assert.deepEqual(tok.json[k], sk[k], `${k} differs; ${REGENERATE}`);
  }
  const { vocab, merges, ...params } = tok.json.model as Record<string, unknown>;
  assert.deepEqual(params, sk.model, 'BPE model parameters differ');
  const byId: (string | null)[] = new Array<string | null>(sk.vocab_size).fill(null);
  for (const [t, i] of Object.entries(vocab as Record<string, number>)) byId[i] = t;
  assert.equal(Object.keys(vocab as object).length, sk.vocab_size, 'vocabulary size');
  assert.equal(listHash(byId), sk.vocab_sha256, 'vocabulary (tokens by id) differs');
  if (sk.merges_sha256 !== undefined) {
    const pairs = (merges as (string | [string, string])[]).map((m) =>
      typeof m === 'string' ? m.split(' ') : m,
    );
    assert.equal(pairs.length, sk.merges_count, 'merge count');
    assert.equal(listHash(pairs), sk.merges_sha256, 'merges differ');
  }
  assert.equal(tok.vocabSize, exp.len - phantom.size, 'vocabSize vs len(tokenizer)');
  const ours: Record<string, number | undefined> = {
    bos_token: tok.bos?.id,
    eos_token: tok.eos?.id,
    unk_token: tok.unk?.id,
    pad_token: tok.pad?.id,
  };
  for (const [k, id] of Object.entries(ours)) {
    assert.equal(id, exp.special_ids[k], `${k} id`);
  }
}

/** Hand-written texts: ids with and without special tokens, decode and decode without specials. */
export function checkExtra(tok: Tokenizer, exp: Expected, opts: ParityOptions = {}): number {
  const phantom = new Set(opts.phantomIds ?? []);
  let checked = 0;
  for (const c of exp.extra) {
    if (c.ids.some((id) => phantom.has(id))) {
      // transformers matched a token that does not exist in the model; we must not produce it.
      assert.ok(tok.encode(c.text).every((id) => id < tok.vocabSize));
      continue;
    }
    const label = JSON.stringify(c.text.slice(0, 60));
    assert.deepEqual(tok.encode(c.text), c.ids, `encode ${label}; ${REGENERATE}`);
    assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_special, label);
    assert.equal(tok.decode(c.ids), c.decoded, `decode ${label}`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special, label);
    const plain = tok.encode(c.text, { addSpecialTokens: false });
    assert.equal(tok.decode(plain), c.decoded_no_special, `decode without specials ${label}`);
    // Byte-level BPE round-trips everything; a Llama-2-style normalizer (prepend '▁' to every
    // segment between added tokens) does not, in transformers either: then only parity counts.
    if (c.decoded_no_special === c.text || opts.roundTrip !== false) {
      assert.equal(tok.decode(plain), c.text, `round trip ${label}`);
    }
    checked++;
  }
  return checked;
}

/** Decoding prefixes/suffixes of multi-byte characters (incomplete UTF-8 in a token run). */
export function checkPartialDecodes(tok: Tokenizer, exp: Expected): void {
  assert.ok(exp.partial_decodes.length > 0);
  for (const c of exp.partial_decodes) {
    assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.ids)}; ${REGENERATE}`);
  }
}

/** DS-1000 prompts: every prompt's ids hash, full ids where kept, and decode round trip. */
export function checkDs1000(tok: Tokenizer, exp: Expected, prompts: string[]): void {
  const n = exp.ds1000.count;
  assert.ok(prompts.length >= n, `need ${n} DS-1000 prompts, have ${prompts.length}`);
  const bad: string[] = [];
  for (let i = 0; i < n; i++) {
    const ids = tok.encode(prompts[i]);
    const full = exp.ds1000.full[String(i)];
    if (full !== undefined) {
      if (JSON.stringify(ids) !== JSON.stringify(full)) {
        const at = ids.findIndex((id, k) => id !== full[k]);
        bad.push(`prompt ${i}: first difference at token ${at}: ours ${ids[at]}, HF ${full[at]}`);
      }
    } else if (idsHash(ids) !== exp.ds1000.hashes[i]) {
      bad.push(`prompt ${i}: ids hash differs`);
    }
    // Without a BOS/EOS template the two encodings are the same: skip the second pass.
    const plain =
      tok.addsBos || tok.addsEos ? tok.encode(prompts[i], { addSpecialTokens: false }) : ids;
    const back = tok.decode(plain);
    if (back !== prompts[i]) bad.push(`prompt ${i}: decode does not round-trip`);
  }
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} DS-1000 mismatches; ${REGENERATE}`);
}

/** apply_chat_template: rendered text and its ids, every conversation × add_generation_prompt. */
export function checkChats(tok: Tokenizer, exp: Expected): void {
  assert.ok(exp.chats.length > 0, 'fixture has chats');
  for (const c of exp.chats) {
    const text = tok.applyChatTemplate(c.messages, {
      addGenerationPrompt: c.add_generation_prompt,
      tools: c.tools,
    });
    const label = `${c.messages.map((m) => m.role).join('+')} agp=${c.add_generation_prompt}`;
    assert.equal(text, c.text, `chat ${label}; ${REGENERATE}`);
    assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), c.ids, `chat ids ${label}`);
  }
}
