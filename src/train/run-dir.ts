// The run directory's files (layout in records.ts): JSONL appenders that survive a kill (whole
// lines, appended and fsynced at each checkpoint, so a checkpoint never refers to records that
// are not on disk), and readers that refuse another version.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { hashHeadAndTail } from '../generators/file-digest.js';
import { resolveModel } from '../models/load.js';
import { FormatError, NotFoundError, type ErrorDetails } from '../util/errors.js';
import { RUN_VERSION, type MetricsRecord, type RunInfo, type SampleRecord } from './records.js';

export const METRICS_FILE = 'metrics.jsonl';
export const SAMPLES_FILE = 'samples.jsonl';

class JsonlAppender {
  private fd: number;
  private buf: string[] = [];
  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a');
  }
  push(rec: unknown): void {
    this.buf.push(JSON.stringify(rec) + '\n');
    // Keep the memory bounded on long steps with many samples.
    if (this.buf.length >= 256) this.flush(false);
  }
  flush(sync = true): void {
    if (this.buf.length > 0) {
      fs.writeSync(this.fd, this.buf.join(''));
      this.buf = [];
    }
    if (sync) fs.fsyncSync(this.fd);
  }
  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Keeps the lines whose `step` is ≤ maxStep (a torn last line of a killed run is dropped). */
function truncateJsonl(file: string, maxStep: number): void {
  if (!fs.existsSync(file)) return;
  const keep: string[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let rec: { step?: unknown };
    try {
      rec = JSON.parse(line) as { step?: unknown };
    } catch {
      continue; // torn line from a kill mid-write
    }
    if (typeof rec.step === 'number' && rec.step <= maxStep) keep.push(line);
  }
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, keep.length > 0 ? keep.join('\n') + '\n' : '');
  fs.renameSync(tmp, file);
}

export class RunFiles {
  private metrics: JsonlAppender;
  private samples: JsonlAppender;
  constructor(readonly dir: string) {
    this.metrics = new JsonlAppender(path.join(dir, METRICS_FILE));
    this.samples = new JsonlAppender(path.join(dir, SAMPLES_FILE));
  }
  metric(r: MetricsRecord): void {
    this.metrics.push(r);
  }
  sample(r: SampleRecord): void {
    this.samples.push(r);
  }
  flush(): void {
    this.metrics.flush();
    this.samples.flush();
  }
  /** Drops records of steps after `step` (they will be replayed from the checkpoint). */
  truncateAfter(step: number): void {
    this.metrics.close();
    this.samples.close();
    truncateJsonl(path.join(this.dir, METRICS_FILE), step);
    truncateJsonl(path.join(this.dir, SAMPLES_FILE), step);
    this.metrics = new JsonlAppender(path.join(this.dir, METRICS_FILE));
    this.samples = new JsonlAppender(path.join(this.dir, SAMPLES_FILE));
  }
  close(): void {
    this.metrics.close();
    this.samples.close();
  }
}

/** run.json's schema (RunInfo); other fields pass through (later versions may add some). */
export const runInfoSchema = z
  .object({
    version: z.number().int(),
    rl4qe: z.string(),
    createdAt: z.string(),
    base: z
      .object({
        model: z.string(),
        digest: z.string(),
        architecture: z.string(),
        hiddenSize: z.number().int(),
        numLayers: z.number().int(),
      })
      .passthrough(),
    adapter: z.enum(['lora', 'full']),
    compute: z
      .object({
        requested: z.enum(['fp32', 'bf16']),
        used: z.enum(['fp32', 'bf16']),
        units: z.string(),
        converted: z.number().int(),
        note: z.string().optional(),
      })
      .passthrough()
      .optional(),
    commit: z.string().optional(),
  })
  .passthrough() satisfies z.ZodType<RunInfo>;

/**
 * run.json, checked against this version of rl4qe (before its shape: another version may have
 * another one) and validated. `versionError` lets a caller raise its own error class for a
 * version mismatch (eval refuses with EvalRefusedError); the details are the same.
 */
export function readRunInfo(
  dir: string,
  opts: { versionError?: (message: string, details: ErrorDetails) => Error } = {},
): RunInfo {
  const file = path.join(dir, 'run.json');
  if (!fs.existsSync(file)) {
    throw new NotFoundError('not a run directory (no run.json)', {
      where: dir,
      hint: 'pass the directory `rl4qe train` wrote (run.dir in its config)',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('unreadable run.json', { where: file, found: (e as Error).message });
  }
  const version = (raw as { version?: unknown } | null)?.version;
  if (version !== RUN_VERSION) {
    const message = 'run directory from an incompatible rl4qe version';
    const details: ErrorDetails = {
      where: `${file} field version`,
      expected: `version ${RUN_VERSION}`,
      found: `version ${JSON.stringify(version)}`,
      hint: 'use the rl4qe release that wrote it, or train again with this one',
    };
    throw opts.versionError
      ? opts.versionError(message, details)
      : new FormatError(message, details);
  }
  const r = runInfoSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new FormatError(`invalid run.json: ${issue.message}`, {
      where: `${file} field ${issue.path.join('.') || '(root)'}`,
    });
  }
  return r.data as RunInfo;
}

/** A base model's identity: file size plus sha256 of its first and last MiB (GGUF file), or of
 * config.json and every safetensors file's head and tail (HF directory). `spec` is a path or a
 * Hub repo id (`org/name[@rev]`, resolved through the Hugging Face cache as the loaders do, so
 * a run trained from a repo id and one trained from its snapshot folder get the same digest). */
export function modelDigest(spec: string): string {
  const p = fs.existsSync(spec) ? spec : resolveModel(spec);
  const h = createHash('sha256');
  const fileDigest = (f: string): void => {
    const size = fs.statSync(f).size;
    h.update(`${path.basename(f)}:${size}:`);
    hashHeadAndTail(h, f, size);
  };
  if (fs.statSync(p).isDirectory()) {
    const cfg = path.join(p, 'config.json');
    if (fs.existsSync(cfg)) h.update(fs.readFileSync(cfg));
    for (const f of fs.readdirSync(p).sort())
      if (f.endsWith('.safetensors')) fileDigest(path.join(p, f));
  } else fileDigest(p);
  return h.digest('hex').slice(0, 16);
}

/** Reads a JSONL file of records, skipping a torn last line (a killed run); returns the records and how many lines were unreadable. */
export function readJsonlRecords<T>(file: string): { records: T[]; bad: number } {
  if (!fs.existsSync(file)) return { records: [], bad: 0 };
  const records: T[] = [];
  let bad = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      records.push(JSON.parse(line) as T);
    } catch {
      bad += 1;
    }
  }
  return { records, bad };
}
