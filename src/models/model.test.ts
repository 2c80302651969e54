// runLayers under the tape with activation trimming (tensor.ts trimActivations): on the tiny
// Llama and Qwen2 fixtures with LoRA on q, k, v, o (frozen base), on every backend, the loss and
// every LoRA gradient equal those with trimming off bit for bit, and the live bytes after the
// forward drop by exactly the buffers no backward reads (counted per layer below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  backendInfo,
  reshape,
  scale,
  setBackend,
  setTrimActivations,
  sum,
  tokenLogProbs,
  type BackendName,
  type Tensor,
} from '../tensor/index.js';
import { nativeStatus } from '../backend/index.js';
import { SafetensorsFile } from '../io/safetensors/index.js';
import { loadSafetensorsModel } from './load.js';
import { addLora, type CausalLM } from './model.js';
import type { ModelConfig } from './config.js';
import { Rng } from '../util/rng.js';

const FIXTURES = path.join('test', 'fixtures', 'models');
const NAMES = ['tiny-llama', 'tiny-qwen2'] as const;
const backends: BackendName[] = ['reference'];
if (nativeStatus().backend) backends.push('native');

interface Run {
  loss: number;
  grads: Map<string, Float32Array>;
  /** Live backend bytes held by the forward's activations (after it minus before it). */
  forwardBytes: number;
}

/** Two rows of 24 tokens (the parity fixture's shape), next-token targets. */
const B = 2;
const T = 24;
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % 256);
const targets = Int32Array.from({ length: B * T }, (_, i) =>
  i % T === T - 1 ? -1 : (ids[i + 1] as number),
);

function step(model: CausalLM, params: Map<string, Tensor>): Run {
  for (const p of params.values()) p.zeroGrad();
  const before = backendInfo().liveBytes;
  const hidden = model.forward({ ids, shape: [B, T] }); // [B, T, D]
  const forwardBytes = backendInfo().liveBytes - before;
  const flat = reshape(hidden, [B * T, model.config.hiddenSize]); // [B·T, D]
  const lp = tokenLogProbs(flat, model.headWeight(), targets); // [B·T]
  const loss = scale(sum(lp), -1 / (B * (T - 1)));
  const value = loss.item();
  loss.backward();
  loss.release();
  const grads = new Map<string, Float32Array>();
  for (const [n, p] of params) grads.set(n, Float32Array.from(p.grad?.data ?? []));
  return { loss: value, grads, forwardBytes };
}

/**
 * Bytes trimmed per decoder layer, from the rules' reads with a frozen base and LoRA (rank r) on
 * q, k, v, o: per projection its base output, bias-added output, LoRA down output and LoRA up
 * output (the scaled down output stays: dB reads it); the q, k and o sums (RoPE and add read
 * nothing; v's sum stays, attention reads its view); the post-attention norm output (frozen gate
 * and up read only their weights); the SwiGLU product (frozen down reads its weight) and the
 * down output. Layer 0's input needs no gradient, so with a bias there its base outputs come
 * from ops with no node, which trimming never frees.
 */
function trimmedBytesPerLayer(c: ModelConfig, r: number, layer: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const D = c.hiddenSize;
  const proj = (out: number, bias: boolean, sumFreed: boolean): number => {
    const baseFreed = !(bias && layer === 0);
    return (baseFreed ? out : 0) + (bias ? out : 0) + r + out + (sumFreed ? out : 0);
  };
  const perRow =
    proj(q, c.qkvBias, true) +
    proj(kv, c.qkvBias, true) +
    proj(kv, c.qkvBias, false) +
    proj(D, c.outBias, true) +
    D +
    c.intermediateSize +
    D;
  return perRow * B * T * 4;
}

for (const backend of backends) {
  for (const name of NAMES) {
    test(`${name} (${backend}): trimmed activations give bit-identical LoRA gradients, minus the unread bytes`, () => {
      setBackend(backend);
      const { model, config } = loadSafetensorsModel(path.join(FIXTURES, name));
      assert.equal(config.mlpBias, false, 'the byte count below assumes no MLP bias');
      try {
        const r = 8;
        const params = addLora(model, {
          r,
          alpha: 16,
          targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
          rng: new Rng(0),
        });
        // The fixture's non-zero B, so that every A gets a gradient too.
        const f = SafetensorsFile.open(path.join(FIXTURES, name, 'lora.safetensors'));
        try {
          for (const [n, t] of params) {
            const info = f.tensors.find((x) => x.name === n);
            assert.ok(info, `the fixture lacks ${n}`);
            t.data.set(f.readF32(info));
          }
        } finally {
          f.close();
        }

        setTrimActivations(false);
        const off = step(model, params);
        setTrimActivations(true);
        const on = step(model, params);

        assert.equal(on.loss, off.loss);
        for (const [n, g] of off.grads) {
          const h = on.grads.get(n) as Float32Array;
          assert.ok(
            g.some((v) => v !== 0),
            `${n}: a zero gradient would prove nothing`,
          );
          assert.deepEqual(h, g, `${n}: gradient differs with trimming on`);
        }
        let expected = 0;
        for (let l = 0; l < config.numLayers; l++) expected += trimmedBytesPerLayer(config, r, l);
        if (Number.isFinite(off.forwardBytes)) {
          assert.equal(off.forwardBytes - on.forwardBytes, expected);
          // The share of the forward's bytes that goes (reported for the record).
          const share = expected / off.forwardBytes;
          assert.ok(share > 0.4, `only ${(share * 100).toFixed(0)}% of the activations trimmed`);
        }
      } finally {
        setTrimActivations(true);
        model.release();
        setBackend('reference');
      }
    });
  }
}
