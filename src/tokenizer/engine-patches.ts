// Small, local replacements inside @huggingface/tokenizers (pinned 0.2.0; re-check on upgrade).
// Each one is either a parity fix our transformers fixtures caught, or a speed-up that cannot
// change a token id (the parity suites run through all of them).
import * as hfTokenizers from '@huggingface/tokenizers';
import { BYTE_TO_CHAR } from './byte-level.js';

// @huggingface/tokenizers 0.2.0's ByteFallback decoder differs from the Rust library in two ways
// our parity fixtures caught: its TextDecoder drops a leading U+FEFF (BOM), and it replaces an
// invalid byte run per WHATWG rules, where Rust emits one U+FFFD per byte token. Replace its
// decode_chain (the same for every instance) with the Rust semantics (tokenizers
// src/decoders/byte_fallback.rs). Pinned version: re-check on upgrade.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
function byteFallbackDecodeChain(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
    }
    bytes = [];
  };
  for (const token of tokens) {
    const byte =
      token.length === 6 && token.startsWith('<0x') && token.endsWith('>')
        ? parseInt(token.slice(3, 5), 16)
        : NaN;
    if (Number.isNaN(byte)) {
      flush();
      out.push(token);
    } else bytes.push(byte);
  }
  flush();
  return out;
}
// The class is exported at runtime (not in the .d.ts): patch it when present.
const ByteFallbackDecoder = (hfTokenizers as unknown as Record<string, unknown>)
  .ByteFallbackDecoder as
  { prototype: { decode_chain: typeof byteFallbackDecodeChain } } | undefined;
if (ByteFallbackDecoder) ByteFallbackDecoder.prototype.decode_chain = byteFallbackDecodeChain;

// ByteLevel pre-tokenizer: the original maps every piece through TextEncoder + Array.from + join
// (a fifth of encode time on DS-1000). Same output: ASCII pieces map char by char, others go
// through their UTF-8 bytes.
interface ByteLevelPreTokenizerThis {
  add_prefix_space: boolean;
  use_regex: boolean;
  pattern: RegExp;
}
function byteLevelPiece(piece: string): string {
  let out = '';
  for (let i = 0; i < piece.length; i++) {
    const c = piece.charCodeAt(i);
    if (c >= 0x80) {
      out = '';
      for (const b of Buffer.from(piece, 'utf8')) out += BYTE_TO_CHAR[b];
      return out;
    }
    out += BYTE_TO_CHAR[c];
  }
  return out;
}
function byteLevelPreTokenizeText(this: ByteLevelPreTokenizerThis, text: string): string[] {
  if (this.add_prefix_space && !text.startsWith(' ')) text = ' ' + text;
  const pieces = this.use_regex ? (text.match(this.pattern) ?? []) : [text];
  return pieces.map(byteLevelPiece);
}

type Patchable = { prototype: Record<string, unknown> } | undefined;
let installed = false;

/** Installs the class-level replacements once (they apply to every tokenizer instance). */
export function installEnginePatches(): void {
  if (installed) return;
  installed = true;
  const lib = hfTokenizers as unknown as Record<string, Patchable>;
  // Both classes are exported at runtime (not in the .d.ts); patch only what is there.
  const bf = lib.ByteFallbackDecoder;
  if (bf && typeof bf.prototype.decode_chain === 'function') {
    bf.prototype.decode_chain = byteFallbackDecodeChain;
  }
  const bl = lib.ByteLevelPreTokenizer;
  if (bl && typeof bl.prototype.pre_tokenize_text === 'function') {
    bl.prototype.pre_tokenize_text = byteLevelPreTokenizeText;
  }
}

/**
 * The BPE model memoises words in an LRU cache whose every hit is a Map delete + set (the top
 * entry of an encode profile). A plain Map that is emptied when full gives the same ids faster.
 */
export function speedUpBpeCache(tok: hfTokenizers.Tokenizer, capacity = 100_000): void {
  const model = tok.model as unknown as { cache?: { get?: unknown; put?: unknown } } | null;
  if (
    !model?.cache ||
    typeof model.cache.get !== 'function' ||
    typeof model.cache.put !== 'function'
  ) {
    return;
  }
  const map = new Map<string, unknown>();
  model.cache = {
    get: (k: string) => map.get(k),
    put: (k: string, v: unknown) => {
      if (map.size >= capacity) map.clear();
      map.set(k, v);
    },
    clear: () => map.clear(),
  } as typeof model.cache;
}
