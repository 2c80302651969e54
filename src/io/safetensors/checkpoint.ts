// A safetensors checkpoint: one file, or shards listed by model.safetensors.index.json
// ({"metadata": {...}, "weight_map": {tensor: shard file}}) as transformers writes them.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, FormatError, NotFoundError } from '../../util/errors.js';
import {
  SafetensorsFile,
  writeSafetensors,
  type SafetensorsTensorInfo,
  type SafetensorsWriteSpec,
} from './safetensors.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

const indexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), z.string()),
});

export class SafetensorsCheckpoint {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, SafetensorsFile>();

  private constructor(readonly source: string) {}

  /**
   * Open a checkpoint: a directory (with model.safetensors.index.json or model.safetensors), an
   * index file, or a single .safetensors file. Every shard is opened and validated, and every
   * tensor of the index must be in the shard the index names.
   */
  static open(p: string): SafetensorsCheckpoint {
    let target = p;
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) {
      if (fs.existsSync(path.join(p, INDEX_FILE))) target = path.join(p, INDEX_FILE);
      else if (fs.existsSync(path.join(p, SINGLE_FILE))) target = path.join(p, SINGLE_FILE);
      else {
        throw new NotFoundError('no safetensors checkpoint in directory', {
          where: p,
          expected: `${INDEX_FILE} or ${SINGLE_FILE}`,
          found: fs.readdirSync(p).slice(0, 10).join(', ') || 'an empty directory',
        });
      }
    } else if (!fs.existsSync(p)) {
      throw new NotFoundError('checkpoint not found', {
        where: p,
        expected: 'a file or directory',
      });
    }
    const ck = new SafetensorsCheckpoint(target);
    try {
      if (target.endsWith('.json')) ck.openIndex(target);
      else {
        const f = SafetensorsFile.open(target);
        ck.files.set(path.basename(target), f);
        for (const t of f.tensors) ck.where.set(t.name, f);
      }
    } catch (e) {
      ck.close();
      throw e;
    }
    return ck;
  }

  private openIndex(indexPath: string): void {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new FormatError('index is not valid JSON', {
        where: indexPath,
        found: e instanceof Error ? e.message : String(e),
      });
    }
    const idx = indexSchema.safeParse(json);
    if (!idx.success) {
      throw new FormatError('invalid safetensors index', {
        where: indexPath,
        expected: '{"metadata": {...}, "weight_map": {"tensor": "shard.safetensors"}}',
        found: idx.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      });
    }
    const dir = path.dirname(indexPath);
    for (const [tensor, shard] of Object.entries(idx.data.weight_map)) {
      // Shards are plain file names next to the index: refuse paths that escape the directory.
      if (shard !== path.basename(shard) || shard === '..' || shard === '.') {
        throw new FormatError('shard name is not a plain file name', {
          where: `${indexPath}: weight_map.${tensor}`,
          expected: 'a file name in the same directory',
          found: shard,
        });
      }
      let f = this.files.get(shard);
      if (!f) {
        const sp = path.join(dir, shard);
        if (!fs.existsSync(sp)) {
          throw new NotFoundError('shard listed in the index is missing', {
            where: `${indexPath}: weight_map.${tensor}`,
            expected: sp,
            found: 'no such file',
            hint: 'download the complete checkpoint (rl4qe pull REPO) or copy the shard there',
          });
        }
        f = SafetensorsFile.open(sp);
        this.files.set(shard, f);
      }
      if (!f.hasTensor(tensor)) {
        throw new FormatError('tensor listed in the index is not in its shard', {
          where: `${indexPath}: ${tensor}`,
          expected: `in ${shard}`,
          found: 'absent',
        });
      }
      this.where.set(tensor, f);
    }
  }

  /** All tensor names (index order, or file order for a single file). */
  get tensorNames(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) {
      throw new NotFoundError('tensor not in checkpoint', {
        where: `${this.source}: ${name}`,
        expected: `a tensor named ${name}`,
        found: `${this.where.size} tensors`,
      });
    }
    return f;
  }

  info(name: string): SafetensorsTensorInfo & { file: string } {
    const f = this.fileOf(name);
    return { ...f.tensor(name), file: f.path };
  }

  readF32(name: string, out?: Float32Array): Float32Array {
    return this.fileOf(name).readF32(name, out);
  }

  readBytes(name: string, dest?: Uint8Array): Uint8Array {
    return this.fileOf(name).readBytes(name, dest);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

export interface ShardOptions {
  /** Start a new shard when the current one would exceed this many data bytes (default 5 GB). */
  maxShardBytes?: number;
  /** File name prefix (default "model"). */
  prefix?: string;
}

/**
 * Write a checkpoint into `dir` as transformers does: `model.safetensors` when it fits in one
 * shard, else `model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json`.
 * Returns the written file names.
 */
export function writeSafetensorsCheckpoint(
  dir: string,
  spec: SafetensorsWriteSpec,
  opts: ShardOptions = {},
): string[] {
  const max = opts.maxShardBytes ?? 5e9;
  const prefix = opts.prefix ?? 'model';
  if (!(max > 0)) throw new ConfigError('maxShardBytes must be positive', { found: String(max) });
  fs.mkdirSync(dir, { recursive: true });
  const shards: SafetensorsWriteSpec['tensors'][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of spec.tensors) {
    const bytes = t.raw?.length ?? (t.data?.length ?? 0) * (t.dtype === 'F32' ? 4 : 2);
    if (size > 0 && size + bytes > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += bytes;
    total += bytes;
  }
  if (shards.length === 1) {
    writeSafetensors(path.join(dir, `${prefix}.safetensors`), spec);
    return [`${prefix}.safetensors`];
  }
  const n = shards.length;
  const pad = (k: number) => String(k).padStart(5, '0');
  const names: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((tensors, i) => {
    const name = `${prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(path.join(dir, name), { tensors, metadata: spec.metadata });
    for (const t of tensors) weightMap[t.name] = name;
    names.push(name);
  });
  const indexName = `${prefix}.safetensors.index.json`;
  fs.writeFileSync(
    path.join(dir, indexName),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n',
  );
  names.push(indexName);
  return names;
}
