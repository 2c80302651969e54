import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ggufNameOfHf, hfNameOfGguf, permuteQK, unpermuteQK } from './gguf-names.js';

test('gguf names: map both ways for every tensor a Llama/Qwen2 model uses', () => {
  const pairs: Array<[string, string]> = [
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', 'lm_head.weight'],
    ['blk.3.attn_norm.weight', 'model.layers.3.input_layernorm.weight'],
    ['blk.3.ffn_norm.weight', 'model.layers.3.post_attention_layernorm.weight'],
    ['blk.12.attn_q.bias', 'model.layers.12.self_attn.q_proj.bias'],
    ['blk.0.attn_output.weight', 'model.layers.0.self_attn.o_proj.weight'],
    ['blk.0.ffn_gate.weight', 'model.layers.0.mlp.gate_proj.weight'],
    ['blk.0.ffn_down.weight', 'model.layers.0.mlp.down_proj.weight'],
  ];
  for (const [g, h] of pairs) {
    assert.equal(hfNameOfGguf(g), h);
    assert.equal(ggufNameOfHf(h), g);
  }
  assert.equal(hfNameOfGguf('rope_freqs.weight'), null);
  assert.equal(ggufNameOfHf('model.layers.0.self_attn.rotary_emb.inv_freq'), null);
});

test('gguf names: Q/K permutation matches convert_hf_to_gguf.py and inverts', () => {
  // 2 heads, Dh = 4, 1 column: HF rows [h0: a0 a1 b0 b1 | h1: ...] → GGUF [a0 b0 a1 b1 | ...].
  const hf = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
  const gguf = permuteQK(hf, 2, 1);
  assert.deepEqual([...gguf], [0, 2, 1, 3, 10, 12, 11, 13]);
  const wide = Float32Array.from({ length: 2 * 8 * 3 }, (_, i) => i);
  assert.deepEqual([...unpermuteQK(permuteQK(wide, 2, 3), 2, 3)], [...wide]);
});
