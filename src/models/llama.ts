// Llama (Llama 2/3, SmolLM2, DeepSeek-Coder): pre-norm decoder blocks with RMSNorm, rotary
// grouped-query attention and a SwiGLU MLP. Read top to bottom; shapes in the comments use
// B batch, T new tokens, Tk keys so far, D hidden, H heads, KVH KV heads, Dh head dim, V vocab.
// Weight names are Hugging Face's (model.layers.N.self_attn.q_proj.weight, ...).
import { add, type QTensor, type Tensor } from '../tensor/index.js';
import { CausalSelfAttention, SwiGluMlp, type AttentionCall } from '../nn/attention.js';
import { Embedding, RMSNorm, Rope } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import type { ModelConfig } from './config.js';
import {
  defaultPositions,
  headOf,
  runLayers,
  slot,
  type CausalLM,
  type ForwardInput,
  type WeightSlot,
} from './model.js';

export interface ModelOptions {
  /** Longest position the RoPE table covers (default: min(contextLength, 32768)). */
  maxPositions?: number;
}

export class LlamaBlock {
  readonly inputNorm: RMSNorm;
  readonly attn: CausalSelfAttention;
  readonly postNorm: RMSNorm;
  readonly mlp: SwiGluMlp;

  constructor(c: ModelConfig) {
    this.inputNorm = new RMSNorm({ dim: c.hiddenSize, eps: c.rmsNormEps });
    this.attn = new CausalSelfAttention({
      hidden: c.hiddenSize,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      qkvBias: c.qkvBias,
      outBias: c.outBias,
    });
    this.postNorm = new RMSNorm({ dim: c.hiddenSize, eps: c.rmsNormEps });
    this.mlp = new SwiGluMlp({ hidden: c.hiddenSize, inner: c.intermediateSize, bias: c.mlpBias });
  }

  /** x [B, T, D] → [B, T, D]. */
  forward(x: Tensor, rope: Rope, call: AttentionCall): Tensor {
    const a = this.attn.forward(this.inputNorm.forward(x), rope, call); // [B, T, D]
    const h = add(x, a); // [B, T, D]
    const m = this.mlp.forward(this.postNorm.forward(h), call); // [B, T, D]
    return add(h, m); // [B, T, D]
  }
}

export class Llama implements CausalLM {
  readonly config: ModelConfig;
  readonly embed: Embedding;
  readonly layers: LlamaBlock[];
  readonly norm: RMSNorm;
  /** null when the head is tied to the embedding. */
  readonly lmHead: Linear | null;
  readonly rope: Rope;

  constructor(config: ModelConfig, opts: ModelOptions = {}) {
    const c = config;
    this.config = c;
    this.embed = new Embedding({ vocab: c.vocabSize, dim: c.hiddenSize });
    this.layers = Array.from({ length: c.numLayers }, () => new LlamaBlock(c));
    this.norm = new RMSNorm({ dim: c.hiddenSize, eps: c.rmsNormEps });
    this.lmHead = c.tieEmbeddings
      ? null
      : new Linear({ inFeatures: c.hiddenSize, outFeatures: c.vocabSize });
    this.rope = new Rope({
      headDim: c.headDim,
      theta: c.ropeTheta,
      maxPositions: opts.maxPositions ?? Math.min(c.contextLength, 32768),
      scaling: c.ropeScaling,
    });
  }

  get maxPositions(): number {
    return this.rope.maxPositions;
  }

  forward(input: ForwardInput): Tensor {
    const [B, T] = input.shape;
    const positions = input.positions ?? defaultPositions(B, T);
    let x = this.embed.forward(input.ids, [B, T]); // [B, T, D]
    x = runLayers(x, this.layers.length, (h, i) =>
      (this.layers[i] as LlamaBlock).forward(h, this.rope, { ...input, positions, layer: i }),
    ); // [B, T, D]
    return this.norm.forward(x); // [B, T, D]
  }

  headWeight(): Tensor | QTensor {
    return this.lmHead ? headOf(this.lmHead.weight, 'lm_head') : this.embed.weight; // [V, D]
  }

  linears(): Map<string, Linear> {
    const m = new Map<string, Linear>();
    this.layers.forEach((l, i) => {
      const p = `model.layers.${i}`;
      for (const [k, lin] of Object.entries(l.attn.projections())) {
        m.set(`${p}.self_attn.${k}_proj`, lin);
      }
      for (const [k, lin] of Object.entries(l.mlp.projections())) m.set(`${p}.mlp.${k}_proj`, lin);
    });
    if (this.lmHead) m.set('lm_head', this.lmHead);
    return m;
  }

  slots(): WeightSlot[] {
    const c = this.config;
    const s: WeightSlot[] = [
      slot('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize], this.embed, 'weight'),
    ];
    this.layers.forEach((l, i) => {
      const p = `model.layers.${i}`;
      s.push(slot(`${p}.input_layernorm.weight`, [c.hiddenSize], l.inputNorm, 'weight'));
      s.push(slot(`${p}.post_attention_layernorm.weight`, [c.hiddenSize], l.postNorm, 'weight'));
    });
    for (const [name, lin] of this.linears()) {
      s.push(slot(`${name}.weight`, [lin.outFeatures, lin.inFeatures], lin, 'weight'));
      if (lin.bias) s.push(slot(`${name}.bias`, [lin.outFeatures], lin, 'bias'));
    }
    s.push(slot('model.norm.weight', [c.hiddenSize], this.norm, 'weight'));
    return s;
  }

  release(): void {
    this.embed.release();
    for (const l of this.layers) {
      l.inputNorm.release();
      l.attn.release();
      l.postNorm.release();
      l.mlp.release();
    }
    this.norm.release();
    this.lmHead?.release();
  }
}
