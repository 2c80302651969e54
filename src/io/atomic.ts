// Atomic outputs: a directory (or file) is written under a temporary sibling name, fsynced and
// renamed into place, so a reader or a crash sees the old state or the complete new one, never a
// half-written export or checkpoint.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../util/errors.js';

export function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a directory (its entries), where the platform allows it. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the data files are synced already.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes the files `fill(tmp)` creates into a fresh sibling directory, fsyncs them, then renames
 * it to `dir`: a reader (or a crash) sees the old directory or the complete new one, never half.
 * With overwrite an existing `dir` is moved aside first and removed after the rename.
 */
export function writeDirAtomic(
  dir: string,
  fill: (tmp: string) => void,
  opts: { overwrite?: boolean; where?: string } = {},
): string[] {
  const where = opts.where ?? dir;
  const target = path.resolve(dir);
  if (fs.existsSync(target) && !opts.overwrite) {
    throw new ConfigError('output already exists', {
      where,
      expected: 'a path that does not exist yet',
      found: fs.statSync(target).isDirectory() ? 'a directory' : 'a file',
      hint: 'choose another output, remove it, or pass overwrite (--force)',
    });
  }
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.partial-`));
  let files: string[];
  try {
    fill(tmp);
    files = fs.readdirSync(tmp).sort();
    for (const f of files) {
      const p = path.join(tmp, f);
      if (fs.statSync(p).isFile()) fsyncFile(p);
    }
    fsyncDir(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | undefined;
  if (fs.existsSync(target)) {
    old = `${tmp}.old`;
    fs.renameSync(target, old);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    if (old !== undefined) fs.renameSync(old, target);
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(parent);
  if (old !== undefined) fs.rmSync(old, { recursive: true, force: true });
  return files;
}

/**
 * Writes the file `fill(tmp)` creates at a temporary sibling path, fsyncs it and renames it to
 * `file` (replacing an existing one only with overwrite).
 */
export function writeFileAtomic(
  file: string,
  fill: (tmp: string) => void,
  opts: { overwrite?: boolean; where?: string } = {},
): void {
  const target = path.resolve(file);
  if (fs.existsSync(target) && !opts.overwrite) {
    throw new ConfigError('output already exists', {
      where: opts.where ?? file,
      expected: 'a path that does not exist yet',
      found: fs.statSync(target).isDirectory() ? 'a directory' : 'a file',
      hint: 'choose another output, remove it, or pass overwrite (--force)',
    });
  }
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) {
    throw new ConfigError('output is a directory', {
      where: opts.where ?? file,
      expected: 'a file path',
      found: 'a directory',
    });
  }
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(target)}.${process.pid}.partial`);
  try {
    fill(tmp);
    fsyncFile(tmp);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(parent);
}
