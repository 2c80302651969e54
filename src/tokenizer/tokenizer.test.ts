import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BYTE_TO_CHAR, BYTE_ALPHABET, toByteLevel, isByteLevelSpelled } from './byte-level.js';
import { ChatTemplate } from './chat-template.js';
import { Tokenizer, checkCompatible, VocabMismatchError } from './tokenizer.js';
import { ConfigError, FormatError, NotFoundError, ShapeError } from '../util/errors.js';

// A tiny byte-level BPE: the 256 byte characters, 'Ġt' 'he' 'Ġthe', and a control token that
// exists only in added_tokens.
function tiny(extra: { config?: unknown } = {}): Tokenizer {
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, i) => (vocab[c] = i));
  vocab['Ġt'] = 256;
  vocab['he'] = 257;
  vocab['Ġthe'] = 258;
  // Like Qwen's and Llama 3's tokenizer.json: the added token is not in model.vocab.
  return Tokenizer.fromTokenizerJson(
    {
      added_tokens: [{ id: 259, content: '<|end|>', special: true, normalized: false }],
      normalizer: null,
      pre_tokenizer: {
        type: 'ByteLevel',
        add_prefix_space: false,
        trim_offsets: true,
        use_regex: true,
      },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', vocab, merges: ['Ġ t', 'h e', 'Ġt he'] },
    },
    { source: 'tiny.json', config: extra.config },
  );
}

test('byte-level alphabet matches GPT-2 bytes_to_unicode', () => {
  assert.equal(BYTE_ALPHABET.size, 256);
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x09], 'ĉ');
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0xad], 'Ń'); // the soft hyphen is remapped (U+0143)
  assert.equal(toByteLevel(' é'), 'ĠÃ©');
  assert.equal(isByteLevelSpelled('Ġthe'), true);
  assert.equal(isByteLevelSpelled('a b'), false);
});

test('encode, decode, specials and ids on a hand-made BPE', () => {
  const tok = tiny({ config: { eos_token: '<|end|>', add_eos_token: true } });
  assert.deepEqual(tok.encode(' the', { addSpecialTokens: false }), [258]);
  assert.deepEqual(tok.encode(' the'), [258, 259], 'add_eos_token appends EOS');
  assert.equal(tok.addsEos, true);
  assert.equal(tok.addsBos, false);
  assert.deepEqual(tok.encode('x<|end|>y', { addSpecialTokens: false }), [0x78, 259, 0x79]);
  assert.equal(tok.decode([258, 259]), ' the<|end|>');
  assert.equal(tok.decode([258, 259], { skipSpecialTokens: true }), ' the');
  assert.equal(tok.decode([]), '');
  assert.equal(tok.decode([258, 5000]), ' the', 'ids without a token are skipped');
  assert.throws(() => tok.decode([1.5]), ShapeError);
  assert.throws(() => tok.decode([-1]), ShapeError);
  assert.equal(tok.idToToken(258), 'Ġthe');
  assert.equal(tok.tokenToId('Ġthe'), 258);
  assert.equal(tok.vocabSize, 260);
  assert.deepEqual(tok.specialTokens, [{ id: 259, content: '<|end|>' }]);
  assert.equal(tok.isSpecial(259), true);
  assert.equal(tok.isSpecial(258), false);
  const text = 'Ünïcødé 😀 \t\t  x\n';
  assert.equal(tok.decode(tok.encode(text)), text + '<|end|>');
});

test('addsBos/addsEos read the template correctly when bos and eos are the same token', () => {
  const both = tiny({
    config: { bos_token: '<|end|>', eos_token: '<|end|>', add_eos_token: true },
  });
  assert.equal(both.addsBos, false);
  assert.equal(both.addsEos, true);
  const bos = tiny({ config: { bos_token: '<|end|>', eos_token: '<|end|>', add_bos_token: true } });
  assert.equal(bos.addsBos, true);
  assert.equal(bos.addsEos, false);
  assert.deepEqual(bos.encode(' the'), [259, 258]);
});

test('checkCompatible: more model rows than ids is fine, fewer is a typed error', () => {
  const tok = tiny();
  checkCompatible(tok, 260);
  checkCompatible(tok, 384);
  assert.throws(
    () => checkCompatible(tok, 259, { where: 'model.gguf' }),
    (e: unknown) => {
      assert.ok(e instanceof VocabMismatchError && e instanceof FormatError);
      assert.match((e as Error).message, /model\.gguf/);
      assert.match((e as Error).message, /260 token ids/);
      return true;
    },
  );
});

test('chat templates: render, missing template, parse and render errors', () => {
  const ct = new ChatTemplate(
    '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}',
    'test',
    { bos_token: '<s>' },
  );
  const msgs = [
    { role: 'system', content: 'sys' },
    { role: 'user', content: 'hi' },
  ];
  assert.equal(ct.render(msgs), '<s>[system] sys\n[user] hi\n');
  assert.equal(
    ct.render(msgs, { addGenerationPrompt: true }),
    '<s>[system] sys\n[user] hi\n[assistant]',
  );
  assert.equal(ct.render(msgs, { extra: { bos_token: 'B' } }).slice(0, 1), 'B');

  // Absent tools/documents are None as in transformers (checked: this template gives 'FDdNx').
  const probe = new ChatTemplate(
    "{{ 'T' if tools is not none else 'F' }}{{ 'D' if tools is defined else 'U' }}" +
      "{{ 'd' if documents is defined else 'u' }}{{ 'N' if documents is none else 'n' }}" +
      "{{ 'X' if foo is defined else 'x' }}",
    'probe',
  );
  assert.equal(probe.render(msgs), 'FDdNx');
  assert.equal(probe.render(msgs, { tools: [] }).slice(0, 2), 'TD');

  assert.throws(() => tiny().applyChatTemplate(msgs), NotFoundError);
  assert.throws(
    () => new ChatTemplate('{% for %}', 'bad.json: chat_template'),
    (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match((e as Error).message, /bad\.json: chat_template/);
      return true;
    },
  );
  const strict = new ChatTemplate(
    "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok",
    'strict.gguf: tokenizer.chat_template',
  );
  assert.equal(strict.render([{ role: 'user', content: 'x' }]), 'ok');
  assert.throws(
    () => strict.render(msgs),
    (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match((e as Error).message, /first message must be user/);
      assert.match((e as Error).message, /strict\.gguf/);
      return true;
    },
  );
  assert.throws(() => strict.render([{ role: 'user' } as never]), ConfigError);
});
