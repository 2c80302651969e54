// GGUF LoRA adapter export in llama.cpp's format (convert_lora_to_gguf.py / llama-adapter.cpp):
// general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (float32), and for each
// adapted weight `<base>.lora_a` with ggml dims [n_in, r] and `<base>.lora_b` with [r, n_out]
// — i.e. PEFT's lora_A.weight [r, n_in] and lora_B.weight [n_out, r] in row-major order, as is.
// llama.cpp checks a.ne[0] == base.ne[0], b.ne[1] == base.ne[1] and a.ne[1] == b.ne[0]
// (recent llama.cpp flips A and B for token_embd.weight; this helper does not special-case it).
// readGgufLoraAdapter reads such a file back as plain data (the inverse), for attaching it to
// rl4qe's own model. The tensor names stay GGUF names here: mapping them to Hugging Face module
// names (and undoing the Llama Q/K row order of lora_b) is models/ work (models/adapter-export.ts).
import { FormatError, ShapeError, UnsupportedError } from '../../util/errors.js';
import { GgufFile } from './reader.js';
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

export interface GgufLoraAdapter {
  /** general.architecture the adapter was made for. */
  architecture: string;
  /**
   * adapter.lora.alpha; 0 when the file has none. llama.cpp scales each pair by alpha / r, or
   * by 1 when alpha is 0 (llama-adapter.cpp), and so must a reader.
   */
  alpha: number;
  name?: string;
  /** One pair per adapted weight, in file order. */
  pairs: GgufLoraPair[];
}

/**
 * Reads a llama.cpp LoRA adapter GGUF (general.type "adapter", adapter.type "lora") as float32
 * pairs, validated: every `<base>.lora_a` has its `<base>.lora_b`, a is [r, n_in], b [n_out, r]
 * with the same r. LoRA on token_embd (whose A/B llama.cpp stores transposed) is refused.
 */
export function readGgufLoraAdapter(path: string): GgufLoraAdapter {
  const f = GgufFile.open(path);
  try {
    const type = f.getString('general.type', '');
    if (type !== 'adapter') {
      throw new FormatError('this GGUF is not an adapter', {
        where: `${path}: general.type`,
        expected: '"adapter" (a LoRA written by rl4qe export or convert_lora_to_gguf.py)',
        found: type === '' ? 'absent (a model file?)' : JSON.stringify(type),
        hint: 'pass the base model as the model and the LoRA GGUF as the adapter',
      });
    }
    const atype = f.getString('adapter.type', '');
    if (atype !== 'lora') {
      throw new UnsupportedError('only LoRA adapters are supported', {
        where: `${path}: adapter.type`,
        expected: '"lora"',
        found: JSON.stringify(atype),
      });
    }
    const alpha = f.getNumber('adapter.lora.alpha', 0);
    const name = f.getString('general.name', '') || undefined;
    const byBase = new Map<string, { a?: string; b?: string }>();
    for (const t of f.tensors) {
      const m = /^(.+)\.lora_([ab])$/.exec(t.name);
      if (!m) {
        throw new FormatError('unexpected tensor in a LoRA adapter GGUF', {
          where: `${path}: ${t.name}`,
          expected: '<base weight>.lora_a or <base weight>.lora_b',
          found: t.name,
        });
      }
      const base = m[1] as string;
      if (base.startsWith('token_embd.')) {
        throw new UnsupportedError('LoRA on the token embedding is not supported', {
          where: `${path}: ${t.name}`,
          found: t.name,
          hint: 'train without the embedding in the LoRA targets',
        });
      }
      const e = byBase.get(base) ?? {};
      e[m[2] as 'a' | 'b'] = t.name;
      byBase.set(base, e);
    }
    const pairs: GgufLoraPair[] = [];
    for (const [base, e] of byBase) {
      if (!e.a || !e.b) {
        throw new FormatError(`LoRA ${e.a ? 'lora_b' : 'lora_a'} of ${base} is missing`, {
          where: path,
          expected: `${base}.lora_a and ${base}.lora_b`,
          found: e.a ?? e.b,
        });
      }
      const ta = f.tensor(e.a);
      const tb = f.tensor(e.b);
      if (ta.shape.length !== 2 || tb.shape.length !== 2 || ta.shape[0] !== tb.shape[1]) {
        throw new ShapeError(`LoRA pair of ${base} has inconsistent shapes`, {
          where: `${path}: ${base}`,
          expected: 'lora_a dims [n_in, r] and lora_b dims [r, n_out]',
          found: `lora_a dims [${ta.dims.join(', ')}], lora_b dims [${tb.dims.join(', ')}]`,
        });
      }
      const [r, nIn] = ta.shape as [number, number];
      const nOut = tb.shape[0] as number;
      pairs.push({ base, a: f.readTensorF32(ta), b: f.readTensorF32(tb), r, nIn, nOut });
    }
    if (pairs.length === 0)
      throw new FormatError('the LoRA adapter GGUF holds no tensors', { where: path });
    return { architecture: f.architecture, alpha, name, pairs };
  } finally {
    f.close();
  }
}
