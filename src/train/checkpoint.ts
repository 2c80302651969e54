// Checkpoints of a training run, written so that a kill at any moment (SIGKILL, power loss, a
// full disk) leaves the previous checkpoint loadable, and read so that a resumed run continues
// bit for bit.
//
//   checkpoints/step-000010/
//     adapter/                 PEFT LoRA (adapter_config.json + adapter_model.safetensors)
//     weights/model.safetensors  instead, for full fine-tuning (HF names)
//     optimizer.safetensors    AdamW moments m/<name>, v/<name> (float32, exact)
//     state.json               CheckpointState
//   checkpoints/latest         name of the newest COMPLETE checkpoint
//   checkpoints/best           name of the best checkpoint by the validation metric
//
// A checkpoint is written into a temporary sibling directory, every file fsynced, the directory
// renamed into place and its parent fsynced; only then does `latest` move (its own temp file,
// fsync, rename). A crash before the rename of `latest` leaves the old pointer, which names a
// complete directory.
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors/index.js';
import { readPeftAdapterTensors, writePeftAdapter, type PeftAdapterSpec } from '../io/peft.js';
import { fsyncFile, writeDirAtomic, writeFileAtomic as writeAtomic } from '../io/atomic.js';
import type { AdamWState } from '../nn/optim.js';
import { FormatError, NotFoundError } from '../util/errors.js';
import type { BaselineState } from './reinforce.js';
import { RUN_VERSION } from './records.js';

export interface CheckpointState {
  version: number;
  /** Optimiser steps completed. */
  step: number;
  /** configDigest() of the resolved config that made the run (resume refuses another). */
  configDigest: string;
  baseline: BaselineState;
  optimizer: { step: number; lr: number };
  /** Seconds of training before this checkpoint (a resumed run keeps counting). */
  elapsed: number;
  /** Consecutive failed generator requests when the checkpoint was taken. */
  consecutiveFailures: number;
  best: { step: number; value: number; checkpoint: string } | null;
  /** Cumulative generator counters. */
  generator: { calls: number; cached: number; failures: number; costUsd: number };
}

export interface CheckpointParams {
  /** Trainable parameters by PEFT / HF name, in optimiser order. */
  names: string[];
  shapes: number[][];
  data: Float32Array[];
}

export interface SaveCheckpointOptions {
  runDir: string;
  state: CheckpointState;
  params: CheckpointParams;
  optimizer: AdamWState;
  /** LoRA: the PEFT adapter description (params are written through it); absent: full weights. */
  peft?: Omit<PeftAdapterSpec, 'params'>;
  keep: number;
}

export const checkpointName = (step: number): string => `step-${String(step).padStart(6, '0')}`;

/** Writes `text` to `file` atomically (temp file, fsync, rename), replacing it. */
export function writeFileAtomic(file: string, text: string): void {
  writeAtomic(file, (tmp) => fs.writeFileSync(tmp, text), { overwrite: true });
}

export function saveCheckpoint(o: SaveCheckpointOptions): string {
  const root = path.join(o.runDir, 'checkpoints');
  fs.mkdirSync(root, { recursive: true });
  const name = checkpointName(o.state.step);
  // A replayed step after a resume rewrites its checkpoint (overwrite).
  writeDirAtomic(
    path.join(root, name),
    (tmp) => {
      const { names, shapes, data } = o.params;
      if (o.peft) {
        writePeftAdapter(path.join(tmp, 'adapter'), {
          ...o.peft,
          params: new Map(names.map((n, i) => [n, { data: data[i]!, shape: shapes[i]! }])),
        });
      } else {
        fs.mkdirSync(path.join(tmp, 'weights'));
        writeSafetensors(path.join(tmp, 'weights', 'model.safetensors'), {
          tensors: names.map((n, i) => ({
            name: n,
            shape: shapes[i]!,
            dtype: 'F32' as const,
            data: data[i]!,
          })),
          metadata: { format: 'pt' },
        });
        fsyncFile(path.join(tmp, 'weights', 'model.safetensors'));
      }
      writeSafetensors(path.join(tmp, 'optimizer.safetensors'), {
        tensors: names.flatMap((n, i) => [
          { name: `m/${n}`, shape: shapes[i]!, dtype: 'F32' as const, data: o.optimizer.m[i]! },
          { name: `v/${n}`, shape: shapes[i]!, dtype: 'F32' as const, data: o.optimizer.v[i]! },
        ]),
        metadata: {
          step: String(o.optimizer.step),
          lr: String(o.optimizer.lr),
          beta1: String(o.optimizer.beta1),
          beta2: String(o.optimizer.beta2),
          eps: String(o.optimizer.eps),
          weightDecay: String(o.optimizer.weightDecay),
        },
      });
      fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(o.state, null, 2) + '\n');
    },
    { overwrite: true, where: `checkpoint ${name}` },
  );
  writeFileAtomic(path.join(root, 'latest'), name + '\n');
  prune(root, o.keep);
  return name;
}

/** Marks a checkpoint as the best one. */
export function markBest(runDir: string, name: string): void {
  writeFileAtomic(path.join(runDir, 'checkpoints', 'best'), name + '\n');
}

function readPointer(root: string, which: string): string | undefined {
  const p = path.join(root, which);
  if (!fs.existsSync(p)) return undefined;
  return fs.readFileSync(p, 'utf8').trim() || undefined;
}

/** Keeps the newest `keep` checkpoints (and whichever `best` and `latest` name). */
function prune(root: string, keep: number): void {
  const pinned = new Set([readPointer(root, 'best'), readPointer(root, 'latest')]);
  const all = fs
    .readdirSync(root)
    .filter((n) => /^step-\d+$/.test(n))
    .sort();
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const n of old)
    if (!pinned.has(n)) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  // Temporary directories of a process that died mid-write (writeDirAtomic's `.NAME.partial-*`).
  for (const n of fs.readdirSync(root)) {
    if (n.startsWith('.') && n.includes('.partial-'))
      fs.rmSync(path.join(root, n), { recursive: true, force: true });
  }
}

/** The directory of a checkpoint: 'latest', 'best', or a name; undefined when there is none. */
export function checkpointDir(runDir: string, which = 'latest'): string | undefined {
  const root = path.join(runDir, 'checkpoints');
  const name = which === 'latest' || which === 'best' ? readPointer(root, which) : which;
  if (!name) return undefined;
  const dir = path.join(root, name);
  if (!fs.existsSync(path.join(dir, 'state.json'))) {
    throw new NotFoundError('checkpoint is missing or incomplete', {
      where: dir,
      expected: 'state.json, optimizer.safetensors and adapter/ or weights/',
      hint: `checkpoints/${which} names a directory that does not exist; pick another with --checkpoint`,
    });
  }
  return dir;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  /** Parameter values by name. */
  params: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  optimizerStep: number;
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const statePath = path.join(dir, 'state.json');
  let state: CheckpointState;
  try {
    state = JSON.parse(fs.readFileSync(statePath, 'utf8')) as CheckpointState;
  } catch (e) {
    throw new FormatError('unreadable checkpoint state', {
      where: statePath,
      found: (e as Error).message,
      cause: e,
    });
  }
  if (state.version !== RUN_VERSION) {
    throw new FormatError('checkpoint from another rl4qe run format', {
      where: statePath,
      expected: `version ${RUN_VERSION}`,
      found: `version ${String(state.version)}`,
      hint: 'resume it with the rl4qe version that wrote it, or start a new run',
    });
  }
  const params = new Map<string, Float32Array>();
  const adapterDir = path.join(dir, 'adapter');
  if (fs.existsSync(path.join(adapterDir, 'adapter_model.safetensors'))) {
    for (const [n, t] of readPeftAdapterTensors(adapterDir)) params.set(n, t.data);
  } else {
    const f = SafetensorsFile.open(path.join(dir, 'weights', 'model.safetensors'));
    try {
      for (const t of f.tensors) params.set(t.name, f.readF32(t));
    } finally {
      f.close();
    }
  }
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  const of = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  let optimizerStep = 0;
  try {
    for (const t of of.tensors) {
      if (t.name.startsWith('m/')) m.set(t.name.slice(2), of.readF32(t));
      else if (t.name.startsWith('v/')) v.set(t.name.slice(2), of.readF32(t));
    }
    optimizerStep = Number(of.metadata?.step ?? state.optimizer.step);
  } finally {
    of.close();
  }
  return { dir, state, params, m, v, optimizerStep };
}
