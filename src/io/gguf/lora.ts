// GGUF LoRA adapter export in llama.cpp's format (convert_lora_to_gguf.py / llama-adapter.cpp):
// general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (float32), and for each
// adapted weight `<base>.lora_a` with ggml dims [n_in, r] and `<base>.lora_b` with [r, n_out]
// — i.e. PEFT's lora_A.weight [r, n_in] and lora_B.weight [n_out, r] in row-major order, as is.
// llama.cpp checks a.ne[0] == base.ne[0], b.ne[1] == base.ne[1] and a.ne[1] == b.ne[0]
// (recent llama.cpp flips A and B for token_embd.weight; this helper does not special-case it).
import { ShapeError } from '../../util/errors.js';
import { GgmlType } from './types.js';
import { kv, writeGguf, type GgufTensorInput } from './writer.js';
import type { GgufKV } from './types.js';

export interface GgufLoraPair {
  /** GGUF name of the adapted weight, e.g. "blk.0.attn_q.weight". */
  base: string;
  /** lora_A, row-major [r, nIn]. */
  a: Float32Array;
  /** lora_B, row-major [nOut, r]. */
  b: Float32Array;
  r: number;
  nIn: number;
  nOut: number;
}

export interface GgufLoraSpec {
  /** general.architecture of the base model (llama.cpp refuses a mismatch). */
  architecture: string;
  alpha: number;
  pairs: GgufLoraPair[];
  /** F32 (default) or F16. */
  type?: GgmlType.F32 | GgmlType.F16;
  name?: string;
}

export function writeGgufLoraAdapter(path: string, spec: GgufLoraSpec): void {
  const type = spec.type ?? GgmlType.F32;
  const tensors: GgufTensorInput[] = [];
  for (const p of spec.pairs) {
    if (p.a.length !== p.r * p.nIn || p.b.length !== p.nOut * p.r) {
      throw new ShapeError('LoRA pair sizes do not match r, nIn, nOut', {
        where: p.base,
        expected: `a ${p.r}x${p.nIn} = ${p.r * p.nIn}, b ${p.nOut}x${p.r} = ${p.nOut * p.r}`,
        found: `a ${p.a.length}, b ${p.b.length}`,
      });
    }
    tensors.push({ name: `${p.base}.lora_a`, shape: [p.r, p.nIn], type, data: p.a });
    tensors.push({ name: `${p.base}.lora_b`, shape: [p.nOut, p.r], type, data: p.b });
  }
  const metadata: [string, GgufKV][] = [
    ['general.architecture', kv.str(spec.architecture)],
    ['general.type', kv.str('adapter')],
    ['adapter.type', kv.str('lora')],
    ['adapter.lora.alpha', kv.f32(spec.alpha)],
  ];
  if (spec.name) metadata.push(['general.name', kv.str(spec.name)]);
  writeGguf(path, { metadata, tensors });
}
