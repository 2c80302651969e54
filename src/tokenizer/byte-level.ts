// GPT-2's byte-level alphabet (`bytes_to_unicode` in transformers/tokenizers): every byte gets a
// printable character, so a byte-level BPE vocabulary is plain text. Printable Latin-1 bytes map to
// themselves; the other 68 bytes map to U+0100.. in byte order (space 0x20 becomes 'Ġ').

function buildByteToChar(): string[] {
  const keep = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + next++);
  }
  return out;
}

/** byte value → its character in the byte-level alphabet. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The 256 characters of the byte-level alphabet. */
export const BYTE_ALPHABET: ReadonlySet<string> = new Set(BYTE_TO_CHAR);

// Membership by char code (the alphabet lies within U+0021..U+0143): a table beats a Set of strings
// on the 150k-token vocabularies this runs over at load time.
const IN_ALPHABET = new Uint8Array(0x144);
for (const ch of BYTE_TO_CHAR) IN_ALPHABET[ch.charCodeAt(0)] = 1;

/** True when every character of `token` is in the byte-level alphabet. */
export function isByteLevelSpelled(token: string): boolean {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c >= IN_ALPHABET.length || IN_ALPHABET[c] === 0) return false;
  }
  return true;
}

/** Spell arbitrary text in the byte-level alphabet (its UTF-8 bytes, one character each). */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += BYTE_TO_CHAR[b];
  return out;
}
