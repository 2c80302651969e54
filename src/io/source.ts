// Random-access byte sources for the format readers: a file read by offset (never copied whole;
// multi-GB models stay on disk until a tensor is asked for) or an in-memory buffer (tests, fuzz).
import fs from 'node:fs';
import { FormatError, NotFoundError, ShapeError } from '../util/errors.js';

export interface ByteSource {
  /** Name used in error messages (the file path). */
  readonly name: string;
  readonly size: number;
  /** Read exactly `length` bytes at `position` into dst[dstOffset..]. Throws FormatError if short. */
  readInto(dst: Uint8Array, dstOffset: number, length: number, position: number): void;
  close(): void;
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | undefined;

  constructor(readonly name: string) {
    try {
      this.fd = fs.openSync(name, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new NotFoundError(code === 'ENOENT' ? 'file not found' : 'cannot open file', {
        where: name,
        expected: 'a readable file',
        found: code ?? String(e),
        cause: e,
      });
    }
    const st = fs.fstatSync(this.fd);
    if (!st.isFile()) {
      fs.closeSync(this.fd);
      throw new FormatError('not a regular file', {
        where: name,
        expected: 'a file',
        found: 'a directory or device',
      });
    }
    this.size = st.size;
  }

  readInto(dst: Uint8Array, dstOffset: number, length: number, position: number): void {
    if (this.fd === undefined) throw new Error(`${this.name}: read after close()`);
    checkRange(this, length, position);
    let done = 0;
    while (done < length) {
      // fs.readSync caps one read at 2 GiB; loop until everything arrived.
      const n = fs.readSync(
        this.fd,
        dst,
        dstOffset + done,
        Math.min(length - done, 1 << 30),
        position + done,
      );
      if (n === 0) {
        throw new FormatError('file shrank while reading', {
          where: this.name,
          expected: `${length} bytes at offset ${position}`,
          found: `${done}`,
        });
      }
      done += n;
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly buf: Uint8Array,
    readonly name = '<buffer>',
  ) {
    this.size = buf.length;
  }
  readInto(dst: Uint8Array, dstOffset: number, length: number, position: number): void {
    checkRange(this, length, position);
    dst.set(this.buf.subarray(position, position + length), dstOffset);
  }
  close(): void {}
}

function checkRange(src: ByteSource, length: number, position: number): void {
  if (
    !Number.isSafeInteger(length) ||
    !Number.isSafeInteger(position) ||
    length < 0 ||
    position < 0 ||
    position + length > src.size
  ) {
    throw new FormatError('read outside the file', {
      where: src.name,
      expected: `range inside [0, ${src.size})`,
      found: `${length} bytes at offset ${position}`,
    });
  }
}

/** A tensor's raw bytes (`nBytes` at `offset`) into `dest` (allocated when absent); `where` names the file. */
export function readTensorBytesFrom(
  src: ByteSource,
  t: { name: string; nBytes: number; offset: number },
  where: string,
  dest?: Uint8Array,
): Uint8Array {
  const out = dest ?? new Uint8Array(t.nBytes);
  if (out.length < t.nBytes) {
    throw new ShapeError('destination too small for tensor bytes', {
      where: `${where}: ${t.name}`,
      expected: `${t.nBytes} bytes`,
      found: `${out.length}`,
    });
  }
  src.readInto(out, 0, t.nBytes, t.offset);
  return out;
}
