// Tokenisers that reproduce Python's string operations exactly, so the text rewards equal the
// reference packages (nltk, rouge, the RL4QE authors' code) on every input, Unicode included.

/**
 * The characters Python's str.split() / str.strip() treat as whitespace (str.isspace()): JS's \s
 * minus U+FEFF, plus the separators U+001C–U+001F and U+0085.
 */
const PY_WS_CLASS =
  '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_EDGES = new RegExp(`^[${PY_WS_CLASS}]+|[${PY_WS_CLASS}]+$`, 'g');

/** str.isspace() for one UTF-16 code unit (all Python whitespace is in the BMP). */
export function isPyWhitespace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Python's `s.split()`: split on runs of whitespace, no empty strings. (A scan loop: ~30% faster than a regex split.) */
export function pySplit(s: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (isPyWhitespace(s.charCodeAt(i))) {
      if (start >= 0) {
        out.push(s.slice(start, i));
        start = -1;
      }
    } else if (start < 0) start = i;
  }
  if (start >= 0) out.push(s.slice(start));
  return out;
}

/** `set(s.split())` without the intermediate array (F1 and Overlap only need the set). */
export function pySplitSet(s: string): Set<string> {
  const out = new Set<string>();
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (isPyWhitespace(s.charCodeAt(i))) {
      if (start >= 0) {
        out.add(s.slice(start, i));
        start = -1;
      }
    } else if (start < 0) start = i;
  }
  if (start >= 0) out.add(s.slice(start));
  return out;
}

/** Python's `s.strip()`. */
export function pyStrip(s: string): string {
  return s.replace(PY_WS_EDGES, '');
}

/**
 * Python's `s.lower()`. JS's toLowerCase applies the same full Unicode lower-case mapping
 * (including final sigma); the Unicode versions of Node and Python may differ on recently added
 * characters only.
 */
export function pyLower(s: string): string {
  return s.toLowerCase();
}

/** The paper's text tokens: `s.lower().split()`. */
export function paperTokens(s: string): string[] {
  return pySplit(pyLower(s));
}

/**
 * The authors' code-token regex (utils/code_metric.py), translated from Python's `re` on str:
 *   [a-zA-Z_]\w*  |  [-+*\/=<>!&|^%(){}[\],.;:]  |  \d+(?:\.\d+)?
 * Python's \w on str is [\p{L}\p{N}_] (str.isalnum() or '_'); \d is \p{Nd}.
 */
const CODE_TOKEN_RE = /[a-zA-Z_][\p{L}\p{N}_]*|[-+*/=<>!&|^%(){}[\],.;:]|\p{Nd}+(?:\.\p{Nd}+)?/gu;

/** Code tokens exactly as the authors' evaluation: `re.findall(RE, code.strip().lower())`. */
export function codeTokens(s: string): string[] {
  return pyLower(pyStrip(s)).match(CODE_TOKEN_RE) ?? [];
}

/** Maps strings to small integers so the metric kernels compare numbers, not strings. */
export class Interner {
  private readonly ids = new Map<string, number>();
  id(s: string): number {
    let v = this.ids.get(s);
    if (v === undefined) {
      v = this.ids.size;
      this.ids.set(s, v);
    }
    return v;
  }
  ids32(tokens: readonly string[]): Int32Array {
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) out[i] = this.id(tokens[i]!);
    return out;
  }
  get size(): number {
    return this.ids.size;
  }
}
