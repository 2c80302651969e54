// Cheap, stable identities for multi-GiB model files: hashing the first and the last MiB (the
// header with every tensor's name, type and offset, and the tail of the data) tells two model
// files apart without reading gigabytes. Used by the cache identities of the file-based backends.
import { closeSync, openSync, readSync } from 'node:fs';
import type { Hash } from 'node:crypto';

/** Feeds the first and last MiB of `file` (of `size` bytes) into `h`. */
export function hashHeadAndTail(h: Hash, file: string, size: number): void {
  const fd = openSync(file, 'r');
  try {
    const n = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 0);
    h.update(buf);
    readSync(fd, buf, 0, n, Math.max(0, size - n));
    h.update(buf);
  } finally {
    closeSync(fd);
  }
}
