// What every architecture file provides (llama.ts, qwen2.ts), and the pieces they share that are
// not model code: weight slots by Hugging Face name, loading them, and adding LoRA by target.
import {
  type BTensor,
  fromBuf,
  getBackend,
  isGradEnabled,
  QTensor,
  tensor,
  tidy,
  trimActivations,
  type Tensor,
} from '../tensor/index.js';
import { decodeBlocks } from '../backend/quant.js';
import { Embedding } from '../nn/layers.js';
import type { KvCacheLike } from '../nn/attention.js';
import { Linear, type LoraAdapter, type LoraOptions } from '../nn/linear.js';
import type { Rng } from '../util/rng.js';
import { NotFoundError, ShapeError } from '../util/errors.js';
import type { ModelConfig } from './config.js';

export interface ForwardInput {
  /** Token ids, row-major [B, T]. */
  ids: Int32Array;
  /** [B, T]. */
  shape: readonly [number, number];
  /** Absolute positions (B·T); default 0..T−1 for every row. */
  positions?: Int32Array;
  /** KV cache for incremental decoding. */
  cache?: KvCacheLike;
  /** Per-sequence first valid key position (left padding). */
  keyStart?: Int32Array;
  /** Enables LoRA dropout. */
  training?: boolean;
  rng?: Rng;
}

/** A decoder-only causal LM. forward() returns the final normed hidden states; the LM head is
 * applied by the caller only where logits are needed (chunked log-probs, last position). */
export interface CausalLM {
  readonly config: ModelConfig;
  /** Positions the RoPE table covers: a sequence may hold at most this many tokens. */
  readonly maxPositions: number;
  /** → hidden [B, T, hidden] after the final RMSNorm. */
  forward(input: ForwardInput): Tensor;
  /** LM head weight [vocab, hidden] (the embedding table when tied); a QTensor when the model
   * keeps its GGUF blocks. */
  headWeight(): Tensor | QTensor;
  /** Every base weight by its Hugging Face name. */
  slots(): WeightSlot[];
  /** Every linear layer by its Hugging Face module name (model.layers.0.self_attn.q_proj, …). */
  linears(): Map<string, Linear>;
  release(): void;
}

/**
 * Runs the decoder layers over x [B, T, D]. Without a gradient tape (generation, scoring under
 * noGrad) each layer's intermediates and the previous hidden state are freed as soon as the next
 * hidden state exists, so a forward holds one layer's activations instead of every layer's: a
 * 256-row prefill chunk of SmolLM2 keeps ≈ 15 MB rather than ≈ 450 MB, which lets generation
 * prefill in GEMM-sized chunks. With the tape an activation must live until backward only if a
 * backward reads it: after each layer, trimActivations frees the buffers of the layer's
 * intermediates that none reads (with a frozen base: projection outputs feeding add, RoPE's
 * inputs, the down projection's input, the post-attention norm's output: 28.5 of the 59 KB per
 * token per layer on SmolLM2 with LoRA on q, k, v, o). A layer's intermediates are never read
 * outside it except through its output and its graph (a KV cache under the tape holds k and v,
 * which attention reads, so they stay).
 */
export function runLayers(x: Tensor, n: number, layer: (x: Tensor, i: number) => Tensor): Tensor {
  if (isGradEnabled()) {
    for (let i = 0; i < n; i++) {
      const prev = x;
      x = trimActivations(() => layer(prev, i));
    }
    return x;
  }
  for (let i = 0; i < n; i++) {
    const prev = x;
    x = tidy(() => layer(prev, i));
    prev.release();
  }
  return x;
}

/**
 * The LM head weight as the head ops take it. The bf16 compute mode leaves the head in float32
 * (models/compute.ts), so a BTensor here is a converted head that no op can use: an error.
 */
export function headOf(w: Tensor | QTensor | BTensor, where: string): Tensor | QTensor {
  if ('layout' in w) {
    throw new ShapeError('the LM head is a bf16 tensor; the head ops take float32 or GGUF blocks', {
      where,
      expected: 'a float32 or quantised lm_head',
      found: `a bf16 weight [${w.shape.join(', ')}]`,
      hint: 'convert the model with useBf16Compute (it keeps lm_head in float32)',
    });
  }
  return w;
}

/** A named weight of a model that a loader can fill. */
export interface WeightSlot {
  name: string;
  shape: readonly number[];
  /** Whether the slot may hold GGUF blocks as they are (a linear or embedding weight). */
  quantizable: boolean;
  /** A BTensor once the model is converted to the bf16 compute mode (models/compute.ts). */
  get(): Tensor | QTensor | BTensor;
  set(t: Tensor | QTensor | BTensor): void;
}

export function slot<H extends object, K extends keyof H & string>(
  name: string,
  shape: readonly number[],
  holder: H,
  key: K,
): WeightSlot {
  const h = holder as unknown as Record<string, Tensor | QTensor | BTensor | null>;
  return {
    name,
    shape,
    quantizable: key === 'weight' && (holder instanceof Linear || holder instanceof Embedding),
    get: () => h[key] as Tensor | QTensor | BTensor,
    set: (t: Tensor | QTensor | BTensor) => {
      h[key]?.release();
      h[key] = t;
    },
  };
}

export type { WeightSource } from './weight-source.js';
import type { WeightSource } from './weight-source.js';

/** Fills every slot from `source`; missing or mis-shaped weights are typed errors. */
export function loadWeights(model: CausalLM, source: WeightSource, where = 'weights'): void {
  for (const s of model.slots()) {
    // Free the zero placeholder the model was built with (and return it from the native pool)
    // before reading its replacement: keeping one while its replacement is read added the
    // largest tensor (the embedding) to the load's peak, and pooled it held the model twice.
    s.get().release();
    getBackend().trimPool?.();
    const w = source(s.name);
    if (!w) {
      throw new NotFoundError(`weight ${s.name} is missing`, {
        where,
        expected: `a tensor ${s.name} of shape [${s.shape.join(', ')}]`,
        found: 'nothing',
        hint: 'check that the checkpoint matches the architecture in its config',
      });
    }
    const same = w.shape.length === s.shape.length && w.shape.every((d, i) => d === s.shape[i]);
    if (!same) {
      throw new ShapeError(`weight ${s.name} has the wrong shape`, {
        where: `${where} (${s.name})`,
        expected: `[${s.shape.join(', ')}]`,
        found: `[${w.shape.join(', ')}]`,
      });
    }
    if ('quant' in w) {
      // GGUF blocks kept as they are (weights: 'quantized'), where the slot can hold them; a
      // norm or bias handed over quantised is decoded (GGUF stores those in F32 anyway).
      if (s.quantizable) {
        s.set(new QTensor(w.quant, s.name));
      } else {
        const f = new Float32Array(w.quant.rows * w.quant.cols);
        decodeBlocks(w.quant.type, w.quant.data, f.length, f, 0);
        s.set(fromBuf(f, [...s.shape], { name: s.name }));
      }
      continue;
    }
    // A standalone Float32Array (what the GGUF and safetensors loaders hand over) becomes the
    // weight as it is: the native backend works zero-copy on any Float32Array, and a copy would
    // hold every weight twice until the garbage collector runs (peak RSS of a model load ≈ 2×).
    // A view into a larger buffer is copied, so the rest of that buffer can be freed.
    const standalone = w.data.byteOffset === 0 && w.data.byteLength === w.data.buffer.byteLength;
    s.set(
      standalone
        ? fromBuf(w.data, [...s.shape], { name: s.name })
        : tensor(w.data, [...s.shape], { name: s.name }),
    );
  }
}

export interface AddLoraOptions extends LoraOptions {
  /** Module-name suffixes as PEFT's target_modules: q_proj, k_proj, v_proj, o_proj, gate_proj, … */
  targets: readonly string[];
}

/** Adds LoRA to every linear whose name ends with a target; returns params by PEFT name. */
export function addLora(model: CausalLM, opts: AddLoraOptions): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  let hits = 0;
  for (const [name, lin] of model.linears()) {
    const leaf = name.slice(name.lastIndexOf('.') + 1);
    if (!opts.targets.includes(leaf)) continue;
    const a = lin.addLora(opts);
    hits += 1;
    a.a.name = `${name}.lora_A.weight`;
    a.b.name = `${name}.lora_B.weight`;
    out.set(a.a.name, a.a);
    out.set(a.b.name, a.b);
  }
  if (hits === 0) {
    throw new NotFoundError('no linear layer matches the LoRA targets', {
      where: 'addLora',
      expected:
        'target names such as q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj',
      found: opts.targets.join(', '),
    });
  }
  return out;
}

/** LoRA parameters currently on the model, by PEFT name (…q_proj.lora_A.weight). */
export function loraParameters(model: CausalLM): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, lin] of model.linears()) {
    if (!lin.lora) continue;
    out.set(`${name}.lora_A.weight`, lin.lora.a);
    out.set(`${name}.lora_B.weight`, lin.lora.b);
  }
  return out;
}

/**
 * Runs fn with every LoRA adapter detached (the frozen base model: the KL penalty's reference
 * policy) and puts each back afterwards, also when fn throws. fn must be synchronous (the
 * adapters return when it returns, not when a promise it returns settles); an adapter added
 * inside fn to a layer that had one is replaced by the original on the way out.
 */
export function withAdaptersDisabled<T>(model: CausalLM, fn: () => T): T {
  const detached: [Linear, LoraAdapter][] = [];
  for (const lin of model.linears().values()) {
    if (!lin.lora) continue;
    detached.push([lin, lin.lora]);
    lin.lora = null;
  }
  try {
    return fn();
  } finally {
    for (const [lin, lora] of detached) lin.lora = lora;
  }
}

/** Default positions 0..T−1 for every row of a [B, T] batch. */
export function defaultPositions(B: number, T: number): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = t;
  return p;
}
