import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configFromGguf, configFromHf } from './config.js';
import { ConfigError, FormatError, UnsupportedError } from '../util/errors.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(`test/fixtures/models/${name}/config.json`, 'utf8'));

test('config: transformers-5 tiny Llama fixture (rope_parameters)', () => {
  const c = configFromHf(fixture('tiny-llama'));
  assert.equal(c.architecture, 'llama');
  assert.equal(c.hiddenSize, 64);
  assert.equal(c.numHeads, 4);
  assert.equal(c.numKvHeads, 2);
  assert.equal(c.headDim, 16);
  assert.equal(c.rmsNormEps, 1e-5);
  assert.equal(c.ropeTheta, 10000);
  assert.deepEqual(c.ropeScaling, { type: 'none' });
  assert.equal(c.tieEmbeddings, false);
  assert.equal(c.qkvBias, false);
  assert.equal(c.contextLength, 256);
  assert.deepEqual(c.eosTokenIds, [2]);
});

test('config: tiny Qwen2 fixture has QKV bias, tied embeddings, theta 1e6', () => {
  const c = configFromHf(fixture('tiny-qwen2'));
  assert.equal(c.architecture, 'qwen2');
  assert.equal(c.qkvBias, true);
  assert.equal(c.outBias, false);
  assert.equal(c.tieEmbeddings, true);
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.rmsNormEps, 1e-6);
});

test('config: older config.json with rope_theta and rope_scaling (DeepSeek-Coder, Llama 3.2)', () => {
  const base = {
    model_type: 'llama',
    vocab_size: 32256,
    hidden_size: 2048,
    intermediate_size: 5504,
    num_hidden_layers: 24,
    num_attention_heads: 16,
    max_position_embeddings: 16384,
    rope_theta: 100000,
    bos_token_id: 32013,
    eos_token_id: [32014, 32021],
  };
  const ds = configFromHf({ ...base, rope_scaling: { type: 'linear', factor: 4.0 } });
  assert.deepEqual(ds.ropeScaling, { type: 'linear', factor: 4 });
  assert.equal(ds.ropeTheta, 100000);
  assert.equal(ds.numKvHeads, 16, 'num_key_value_heads defaults to num_attention_heads');
  assert.equal(ds.rmsNormEps, 1e-6, 'LlamaConfig default');
  assert.deepEqual(ds.eosTokenIds, [32014, 32021]);
  assert.equal(ds.bosTokenId, 32013);
  const l3 = configFromHf({
    ...base,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    head_dim: 64,
    num_attention_heads: 32,
  });
  assert.deepEqual(l3.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  });
  assert.equal(l3.headDim, 64, 'explicit head_dim wins over hidden/heads');
  const yarn = configFromHf({
    ...base,
    model_type: 'qwen2',
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
  });
  assert.equal(yarn.ropeScaling.type, 'yarn');
  if (yarn.ropeScaling.type === 'yarn') {
    assert.ok(Math.abs(yarn.ropeScaling.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-12);
    assert.equal(yarn.ropeScaling.betaFast, 32);
  }
});

test('config: bad input gives typed errors that name the field', () => {
  assert.throws(
    () => configFromHf({ model_type: 'qwen', vocab_size: 10 }),
    (e: unknown) => e instanceof FormatError && /hidden_size|field/.test(e.message),
  );
  const ok = fixture('tiny-llama') as Record<string, unknown>;
  assert.throws(
    () => configFromHf({ ...ok, model_type: 'qwen' }),
    (e: unknown) => e instanceof UnsupportedError && /Qwen1\.5/.test(e.message),
  );
  assert.throws(
    () => configFromHf({ ...ok, num_key_value_heads: 3 }),
    (e: unknown) => e instanceof ConfigError && /numKvHeads/.test(e.message),
  );
  assert.throws(
    () => configFromHf({ ...ok, rope_parameters: { rope_type: 'longrope', rope_theta: 1 } }),
    UnsupportedError,
  );
});

test('config: GGUF metadata (SmolLM2-135M keys, bigint values, tied by missing output.weight)', () => {
  const meta = {
    'general.architecture': 'llama',
    'general.name': 'SmolLM2 135M Instruct',
    'llama.context_length': 8192n,
    'llama.embedding_length': 576,
    'llama.feed_forward_length': 1536,
    'llama.block_count': 30,
    'llama.attention.head_count': 9,
    'llama.attention.head_count_kv': 3,
    'llama.attention.layer_norm_rms_epsilon': 1e-5,
    'llama.rope.freq_base': 100000,
    'llama.rope.dimension_count': 64,
    'llama.vocab_size': 49152,
    'tokenizer.ggml.bos_token_id': 1,
    'tokenizer.ggml.eos_token_id': 2,
  };
  const c = configFromGguf(meta, {
    tensorNames: ['token_embd.weight', 'blk.0.attn_q.weight', 'output_norm.weight'],
  });
  assert.equal(c.architecture, 'llama');
  assert.equal(c.contextLength, 8192);
  assert.equal(c.headDim, 64);
  assert.equal(c.numKvHeads, 3);
  assert.equal(c.tieEmbeddings, true);
  assert.equal(c.qkvBias, false);
  assert.equal(c.ropeTheta, 100000);
  assert.deepEqual(c.eosTokenIds, [2]);
  const q = configFromGguf(
    {
      ...meta,
      'general.architecture': 'qwen2',
      'qwen2.embedding_length': 896,
      'qwen2.feed_forward_length': 4864,
      'qwen2.block_count': 24,
      'qwen2.attention.head_count': 14,
      'qwen2.attention.head_count_kv': 2,
      'tokenizer.ggml.tokens': new Array(151936).fill('x'),
    },
    { tensorNames: ['output.weight', 'blk.0.attn_q.bias'] },
  );
  assert.equal(q.vocabSize, 151936, 'vocab size from the token list when the key is absent');
  assert.equal(q.tieEmbeddings, false);
  assert.equal(q.qkvBias, true);
  assert.equal(q.contextLength, 32768, 'qwen2 default');
  assert.throws(
    () => configFromGguf({ ...meta, 'llama.block_count': undefined }),
    (e: unknown) => e instanceof FormatError && /llama\.block_count/.test(e.message),
  );
  assert.throws(
    () => configFromGguf({ ...meta, 'general.architecture': 'gemma3' }),
    UnsupportedError,
  );
});
