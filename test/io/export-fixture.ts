// The LoRA adapter of the export fixtures (scripts/fixtures_export.py builds the same one): rank 2
// on q_proj and v_proj of every SmolLM2-135M layer, values from the integer hash both languages
// compute bit for bit (models/block-fixture.ts hashUniform), so nothing random is committed twice.
import fs from 'node:fs';
import path from 'node:path';
import { writePeftAdapter, type LoraTensor } from '../../src/io/peft.js';
import { writeSafetensors } from '../../src/io/safetensors/index.js';
import { hashUniform } from '../../src/models/block-fixture.js';
import { RUN_VERSION, type RunInfo } from '../../src/train/records.js';
import { modelDigest } from '../../src/train/run-dir.js';
import { cachePaths } from '../../src/util/paths.js';

export const EXPORT_FIXTURES = path.join('test', 'fixtures', 'export');
export const REGEN_EXPORT = '~/.cache/rl4qe/oracle/bin/python scripts/fixtures_export.py';
export const SMOLLM2 = 'smollm2-135m-instruct-q4_1.gguf';
export const smollm2Path = (): string => path.join(cachePaths.testModels(), SMOLLM2);

export const ADAPTER = {
  r: 2,
  alpha: 4,
  targets: ['q_proj', 'v_proj'],
  layers: 30,
  hidden: 576,
  /** Output widths: q 9 heads × 64, v 3 KV heads × 64. */
  out: { q_proj: 576, v_proj: 192 } as Record<string, number>,
  /**
   * Bounds of the uniform values (A and B alike) per module. q_proj dominates on purpose: its
   * lora_b rows are the ones llama.cpp needs permuted, and with this q adapter a GGUF LoRA left in
   * Hugging Face row order decodes different tokens (the llama.cpp test checks that too). Both
   * change SmolLM2's greedy tokens while keeping clear top-2 margins.
   */
  bound: { q_proj: 0.3, v_proj: 0.05 } as Record<string, number>,
} as const;

/** Salt of one tensor: 1 + 4·layer + (q 0 | v 2) + (A 0 | B 1). */
export function adapterSalt(layer: number, module: string, which: 'A' | 'B'): number {
  return 1 + 4 * layer + (module === 'q_proj' ? 0 : 2) + (which === 'A' ? 0 : 1);
}

/** The adapter by rl4qe module name (model.layers.N.self_attn.q_proj.lora_A.weight). */
export function exportAdapterParams(): Map<string, LoraTensor> {
  const out = new Map<string, LoraTensor>();
  const { r, hidden } = ADAPTER;
  for (let l = 0; l < ADAPTER.layers; l++) {
    for (const m of ADAPTER.targets) {
      const name = `model.layers.${l}.self_attn.${m}`;
      const nOut = ADAPTER.out[m] as number;
      out.set(`${name}.lora_A.weight`, {
        data: hashUniform(r * hidden, adapterSalt(l, m, 'A'), ADAPTER.bound[m] as number),
        shape: [r, hidden],
      });
      out.set(`${name}.lora_B.weight`, {
        data: hashUniform(nOut * r, adapterSalt(l, m, 'B'), ADAPTER.bound[m] as number),
        shape: [nOut, r],
      });
    }
  }
  return out;
}

export interface RunDirOptions {
  base: string;
  /** run.json base fields (default: SmolLM2-135M's). */
  baseInfo?: Partial<RunInfo['base']>;
  version?: number;
}

function writeRunFiles(runDir: string, o: RunDirOptions, adapter: Record<string, unknown>): string {
  const info: RunInfo = {
    version: o.version ?? RUN_VERSION,
    rl4qe: '0.1.0',
    createdAt: '2026-12-04T00:00:00.000Z',
    base: {
      model: o.base,
      digest: modelDigest(o.base),
      architecture: 'llama',
      hiddenSize: ADAPTER.hidden,
      numLayers: ADAPTER.layers,
      ...o.baseInfo,
    },
    adapter: adapter.kind as 'lora' | 'full',
  };
  fs.mkdirSync(path.join(runDir, 'checkpoints', 'step-000001'), { recursive: true });
  fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify(info, null, 2) + '\n');
  const config = { refiner: { model: o.base }, adapter };
  fs.writeFileSync(path.join(runDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  fs.writeFileSync(path.join(runDir, 'checkpoints', 'latest'), 'step-000001\n');
  return path.join(runDir, 'checkpoints', 'step-000001');
}

/**
 * A run directory as the trainer leaves it (src/train/records.ts), with one LoRA checkpoint
 * `step-000001` holding `params` and `latest` pointing at it. Only what export reads is written.
 */
export function makeLoraRunDir(
  runDir: string,
  opts: RunDirOptions & {
    params: ReadonlyMap<string, LoraTensor>;
    r?: number;
    alpha?: number;
    targets?: readonly string[];
  },
): string {
  const r = opts.r ?? ADAPTER.r;
  const alpha = opts.alpha ?? ADAPTER.alpha;
  const targets = opts.targets ?? ADAPTER.targets;
  const ck = writeRunFiles(runDir, opts, { kind: 'lora', r, alpha, dropout: 0, targets });
  writePeftAdapter(path.join(ck, 'adapter'), {
    params: opts.params,
    r,
    alpha,
    dropout: 0,
    targets,
    baseModel: opts.base,
  });
  return runDir;
}

/** The same with a full fine-tuning checkpoint: weights/model.safetensors by HF name. */
export function makeFullRunDir(
  runDir: string,
  opts: RunDirOptions & { weights: ReadonlyMap<string, LoraTensor> },
): string {
  const ck = writeRunFiles(runDir, opts, { kind: 'full' });
  fs.mkdirSync(path.join(ck, 'weights'));
  writeSafetensors(path.join(ck, 'weights', 'model.safetensors'), {
    metadata: { format: 'pt' },
    tensors: [...opts.weights].map(([name, t]) => ({
      name,
      shape: [...t.shape],
      dtype: 'F32' as const,
      data: t.data,
    })),
  });
  return runDir;
}
