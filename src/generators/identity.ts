// Cache identities of the file-based backends (local engine, llama.cpp): what names a model's
// answers in the generator cache. Cheap for multi-GiB files (name, size, first and last MiB via
// file-digest.ts) and stable across runs; the exact strings are part of every stored cache key,
// so changing a format here orphans existing cache entries.
import { createHash, type Hash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { hashHeadAndTail } from './file-digest.js';

/** Feeds a file's name, size and first/last MiB into `h`. */
function digestFile(h: Hash, file: string): void {
  const size = statSync(file).size;
  h.update(`${path.basename(file)}:${size}:`);
  hashHeadAndTail(h, file, size);
}

/** llama.cpp backend: `name:size:hash16` of a GGUF file. */
export function ggufFileIdentity(file: string): string {
  const size = statSync(file).size;
  const h = createHash('sha256');
  hashHeadAndTail(h, file, size);
  return `${path.basename(file)}:${size}:${h.digest('hex').slice(0, 16)}`;
}

/** Local engine: `name:hash16` of a GGUF file, or of config.json + every safetensors file of a directory. */
export function localModelIdentity(p: string): string {
  const h = createHash('sha256');
  if (statSync(p).isDirectory()) {
    h.update(readFileSync(path.join(p, 'config.json')));
    for (const f of readdirSync(p).sort()) {
      if (f.endsWith('.safetensors')) digestFile(h, path.join(p, f));
    }
  } else digestFile(h, p);
  return `${path.basename(p)}:${h.digest('hex').slice(0, 16)}`;
}

/** A tokenizer override: its tokenizer files (directory) or the GGUF it is read from. */
export function tokenizerIdentity(p: string): string {
  const h = createHash('sha256');
  if (statSync(p).isDirectory()) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
      const q = path.join(p, f);
      if (existsSync(q)) h.update(readFileSync(q));
    }
  } else digestFile(h, p);
  return h.digest('hex').slice(0, 16);
}

/** A short content hash of a text (chat template override). */
export function textIdentity(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}
