// The Llama-style block of the engine issue (hidden 576, 9 heads, 3 KV heads, MLP 1536 — one
// SmolLM2-135M layer — with LoRA r=8 on q,k,v,o), with deterministic weights from an integer hash
// that scripts/fixtures_models.py and scripts/bench_block_torch.py reproduce exactly. Shared by
// test/models/block.test.ts (parity with PyTorch+PEFT, every backend) and `rl4qe bench block`.
import { mean, mul, tensor, type Tensor } from '../tensor/index.js';
import { Rope } from '../nn/layers.js';
import type { Linear } from '../nn/linear.js';
import { Rng } from '../util/rng.js';
import { validateConfig, type ModelConfig } from './config.js';
import { LlamaBlock } from './llama.js';
import { defaultPositions } from './model.js';

export const BLOCK_SHAPE = {
  hidden: 576,
  heads: 9,
  kvHeads: 3,
  inner: 1536,
  eps: 1e-5,
  theta: 100000,
  r: 8,
  alpha: 16,
} as const;

/**
 * n values in [−bound, bound): h = i + salt·0x9E3779B9 (mod 2³²), murmur3 fmix32, then
 * (h/2³² − 0.5)·2·bound in float64 rounded to float32 — bit-identical to the Python version.
 */
export function hashUniform(n: number, salt: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  const s = Math.imul(salt, 0x9e3779b9);
  for (let i = 0; i < n; i++) {
    let h = (i + s) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    out[i] = (h / 4294967296 - 0.5) * 2 * bound;
  }
  return out;
}

export interface BlockFixture {
  block: LlamaBlock;
  rope: Rope;
  /** [1, T, hidden] input. */
  x: Tensor;
  /** [1, T, hidden] fixed weights of the loss mean(y ⊙ R). */
  r: Tensor;
  positions: Int32Array;
  /** LoRA parameters by PEFT-style name (self_attn.q_proj.lora_A.weight, …). */
  lora: Map<string, Tensor>;
  /** Forward: y [1, T, hidden]. */
  forward(): Tensor;
  /** mean(y ⊙ R), a scalar. */
  loss(): Tensor;
}

export function blockConfig(): ModelConfig {
  const b = BLOCK_SHAPE;
  return validateConfig({
    architecture: 'llama',
    name: 'block-fixture',
    vocabSize: 256,
    hiddenSize: b.hidden,
    intermediateSize: b.inner,
    numLayers: 1,
    numHeads: b.heads,
    numKvHeads: b.kvHeads,
    headDim: b.hidden / b.heads,
    rmsNormEps: b.eps,
    ropeTheta: b.theta,
    ropeScaling: { type: 'none' },
    tieEmbeddings: false,
    qkvBias: false,
    outBias: false,
    mlpBias: false,
    contextLength: 4096,
    bosTokenId: null,
    eosTokenIds: [],
  });
}

/** Builds the block for a sequence of `seq` tokens (batch 1) on the active backend. */
export function buildBlockFixture(opts: { seq: number }): BlockFixture {
  const c = blockConfig();
  const T = opts.seq;
  const D = c.hiddenSize;
  const block = new LlamaBlock(c);
  const rope = new Rope({ headDim: c.headDim, theta: c.ropeTheta, maxPositions: Math.max(T, 256) });
  const attn = block.attn.projections();
  const lora = new Map<string, Tensor>();
  for (const k of ['q', 'k', 'v', 'o'] as const) {
    const a = attn[k].addLora({ r: BLOCK_SHAPE.r, alpha: BLOCK_SHAPE.alpha, rng: new Rng(0) });
    lora.set(`self_attn.${k}_proj.lora_A.weight`, a.a);
    lora.set(`self_attn.${k}_proj.lora_B.weight`, a.b);
  }
  const mlp = block.mlp.projections();
  // Salt order = sorted PyTorch parameter names (see scripts/fixtures_models.py, saltOrder).
  const lin = (l: Linear): { t: Tensor; bound: number } => ({
    t: l.weight as Tensor, // the fixture block is built in float32
    bound: 1 / Math.sqrt(l.inFeatures),
  });
  const order: Array<{ t: Tensor; bound: number; offset?: number }> = [
    { t: block.inputNorm.weight, bound: 0.2, offset: 1 },
    lin(mlp.down),
    lin(mlp.gate),
    lin(mlp.up),
    { t: block.postNorm.weight, bound: 0.2, offset: 1 },
  ];
  for (const k of ['k', 'o', 'q', 'v'] as const) {
    const l = attn[k];
    order.push(lin(l));
    order.push({ t: l.lora!.a, bound: 1 / Math.sqrt(l.inFeatures) });
    order.push({ t: l.lora!.b, bound: 0.05 });
  }
  order.forEach((e, i) => {
    const v = hashUniform(e.t.size, i + 1, e.bound);
    if (e.offset !== undefined)
      for (let j = 0; j < v.length; j++) v[j] = (v[j] as number) + e.offset;
    e.t.data.set(v);
  });
  const x = tensor(hashUniform(T * D, 1000, 1), [1, T, D]); // [1, T, D]
  const r = tensor(hashUniform(T * D, 1001, 1), [1, T, D]); // [1, T, D]
  const positions = defaultPositions(1, T);
  const forward = (): Tensor => block.forward(x, rope, { positions, layer: 0 }); // [1, T, D]
  return {
    block,
    rope,
    x,
    r,
    positions,
    lora,
    forward,
    loss: () => mean(mul(forward(), r)), // []
  };
}
