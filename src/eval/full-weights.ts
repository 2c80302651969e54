// A refiner fine-tuned in full (adapter.kind 'full'): its checkpoint holds every weight of the
// model (checkpoints/step-N/weights/model.safetensors, Hugging Face names, float32; written by
// train/checkpoint.ts), not a LoRA delta. Evaluation loads the base model with the local engine
// (in-process, float32 as training had it), checks that the checkpoint has exactly the model's
// weights with the model's shapes, and replaces them all before the first request. The base
// model must be the run's (runs.ts refuses another before any model call): the checkpoint's
// weights say nothing about the architecture around them (RoPE, norms' epsilon, tokenizer).
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import {
  LocalEngineGenerator,
  type GenerationRequest,
  type GenerationResult,
  type Generator,
  type GeneratorIdentity,
  type GeneratorRequestOptions,
  type LocalEngine,
  type LocalEngineGeneratorOptions,
} from '../generators/index.js';
import { SafetensorsCheckpoint } from '../io/safetensors/index.js';
import { loadWeights } from '../models/index.js';
import { FormatError, ShapeError } from '../util/errors.js';

/** sha256 of a file's whole content, read in 8 MiB pieces (a trained model: every byte counts). */
function fileSha256(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The safetensors files of a checkpoint's weights/ directory (one file, or an index's shards). */
function weightFiles(ck: SafetensorsCheckpoint): string[] {
  return [...new Set(ck.tensorNames.map((n) => ck.info(n).file))].sort();
}

/**
 * Opens the weights of a full fine-tuning checkpoint and checks what can be checked without the
 * model: readable safetensors with float32 tensors. Returns the cache identity of the weights.
 */
export function fullWeightsDigest(weightsDir: string): string {
  const ck = SafetensorsCheckpoint.open(weightsDir);
  try {
    if (ck.tensorNames.length === 0)
      throw new FormatError('the full fine-tuning checkpoint holds no weights', {
        where: weightsDir,
        expected: 'model.safetensors with every weight of the model',
      });
    for (const n of ck.tensorNames) {
      const dt = ck.info(n).dtype;
      if (dt !== 'F32')
        throw new FormatError('a full fine-tuning weight is not float32', {
          where: `${weightsDir}: ${n}`,
          expected: 'F32 (what the trainer writes)',
          found: dt,
        });
    }
    const h = createHash('sha256');
    for (const f of weightFiles(ck)) h.update(`${path.basename(f)}:${fileSha256(f)}\n`);
    return h.digest('hex');
  } finally {
    ck.close();
  }
}

export interface FullWeightsGeneratorOptions {
  /** The local engine's options for the base model (adapter and worker are not allowed). */
  local: Omit<LocalEngineGeneratorOptions, 'adapter' | 'worker'>;
  /** The checkpoint's weights/ directory. */
  weightsDir: string;
}

/** The base model with every weight replaced by a full fine-tuning checkpoint's. */
export class FullWeightsGenerator implements Generator {
  readonly identity: GeneratorIdentity;
  readonly weightsDir: string;
  private readonly inner: LocalEngineGenerator;
  private loading: Promise<void> | undefined;

  constructor(opts: FullWeightsGeneratorOptions) {
    this.weightsDir = path.resolve(opts.weightsDir);
    // float32: the weights replace the base's anyway, and training had them in float32.
    this.inner = new LocalEngineGenerator({ ...opts.local, weights: 'float32', worker: false });
    const digest = fullWeightsDigest(this.weightsDir);
    this.identity = {
      ...this.inner.identity,
      // The full content hash: two checkpoints never share cached answers.
      model: `${this.inner.identity.model}+full:${this.weightsDir}:${digest.slice(0, 16)}`,
    };
  }

  /** Loads the base and puts the checkpoint's weights in (otherwise the first request does). */
  load(): Promise<void> {
    this.loading ??= this.doLoad();
    return this.loading;
  }

  private async doLoad(): Promise<void> {
    const E = await this.inner.engine();
    const ck = SafetensorsCheckpoint.open(this.weightsDir);
    try {
      const slots = E.model.slots();
      // Everything is checked before the first weight is replaced: a bad checkpoint leaves no
      // half-replaced model behind.
      const names = new Set(slots.map((s) => s.name));
      const extra = ck.tensorNames.filter((n) => !names.has(n));
      if (extra.length > 0)
        throw new FormatError('the checkpoint has weights this model does not have', {
          where: this.weightsDir,
          expected: `the ${slots.length} weights of ${path.basename(this.inner.modelPath)}`,
          found: `${extra.length} others: ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}`,
          hint: 'pass the base model the run was trained on as --refiner',
        });
      for (const s of slots) {
        if (!ck.has(s.name))
          throw new FormatError(`weight ${s.name} is missing from the checkpoint`, {
            where: this.weightsDir,
            expected: `every weight of ${path.basename(this.inner.modelPath)}`,
            hint: 'the checkpoint is not a full fine-tuning checkpoint of this model',
          });
        const shape = ck.info(s.name).shape;
        if (shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i]))
          throw new ShapeError(`weight ${s.name} has another shape in the checkpoint`, {
            where: `${this.weightsDir}: ${s.name}`,
            expected: `[${s.shape.join(', ')}]`,
            found: `[${shape.join(', ')}]`,
            hint: 'pass the base model the run was trained on as --refiner',
          });
      }
      loadWeights(
        E.model,
        (name) =>
          ck.has(name) ? { data: ck.readF32(name), shape: ck.info(name).shape } : undefined,
        this.weightsDir,
      );
    } finally {
      ck.close();
    }
  }

  /** The loaded model with the checkpoint's weights (tests, callers that score with it). */
  async engine(): Promise<LocalEngine> {
    await this.load();
    return this.inner.engine();
  }

  async generate(
    requests: readonly GenerationRequest[],
    opts?: GeneratorRequestOptions,
  ): Promise<GenerationResult[]> {
    await this.load();
    return this.inner.generate(requests, opts);
  }

  dispose(): Promise<void> {
    return this.inner.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
