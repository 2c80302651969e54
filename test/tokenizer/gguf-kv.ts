// TEMPORARY minimal GGUF metadata (key/value) reader for the tokenizer tests, until the io
// helper's validated reader (src/io/gguf) lands; then delete this file and use that one.
// Reads only the header and the KV section, on demand from the file descriptor (a 500 MB model
// is never read whole). Not hardened: the real reader validates; this is test scaffolding.
import { openSync, readSync, closeSync } from 'node:fs';

class FileCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(private readonly fd: number) {}
  private ensure(n: number): void {
    const end = this.pos + n;
    if (this.pos >= this.bufStart && end <= this.bufStart + this.buf.length) return;
    const size = Math.max(n, 1 << 20);
    const b = Buffer.alloc(size);
    const got = readSync(this.fd, b, 0, size, this.pos);
    if (got < n) throw new Error(`GGUF truncated at byte ${this.pos}`);
    this.buf = b.subarray(0, got);
    this.bufStart = this.pos;
  }
  bytes(n: number): Buffer {
    this.ensure(n);
    const off = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(off, off + n);
  }
  u32(): number {
    return this.bytes(4).readUInt32LE(0);
  }
  u64(): bigint {
    return this.bytes(8).readBigUInt64LE(0);
  }
  str(): string {
    const n = Number(this.u64());
    return this.bytes(n).toString('utf8');
  }
}

function readValue(c: FileCursor, type: number): unknown {
  switch (type) {
    case 0:
      return c.bytes(1).readUInt8(0);
    case 1:
      return c.bytes(1).readInt8(0);
    case 2:
      return c.bytes(2).readUInt16LE(0);
    case 3:
      return c.bytes(2).readInt16LE(0);
    case 4:
      return c.u32();
    case 5:
      return c.bytes(4).readInt32LE(0);
    case 6:
      return c.bytes(4).readFloatLE(0);
    case 7:
      return c.bytes(1).readUInt8(0) !== 0;
    case 8:
      return c.str();
    case 9: {
      const t = c.u32();
      const n = Number(c.u64());
      const out: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, t);
      return out;
    }
    case 10:
      return c.u64();
    case 11:
      return c.bytes(8).readBigInt64LE(0);
    case 12:
      return c.bytes(8).readDoubleLE(0);
    default:
      throw new Error(`GGUF: unknown value type ${type}`);
  }
}

/** The key/value metadata of a GGUF file (v2/v3). */
export function readGgufKv(file: string): Map<string, unknown> {
  const fd = openSync(file, 'r');
  try {
    const c = new FileCursor(fd);
    if (c.bytes(4).toString('latin1') !== 'GGUF') throw new Error(`${file}: not a GGUF file`);
    const version = c.u32();
    if (version !== 2 && version !== 3) throw new Error(`${file}: GGUF version ${version}`);
    c.u64(); // tensor count
    const kvCount = Number(c.u64());
    const out = new Map<string, unknown>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.str();
      out.set(key, readValue(c, c.u32()));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
